// Copyright 2026 the aesm authors. MIT license.
// What the examples use: the package itself and hex helpers.
export * from "../mod.ts";

/** Lowercase hex of some bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Bytes from hex; throws a TypeError naming what it got for anything else. */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) {
    throw new TypeError(`Cannot read hex: expected pairs of hex digits, got "${hex.slice(0, 20)}"`);
  }
  return new Uint8Array(hex.match(/../g)?.map((byte) => parseInt(byte, 16)) ?? []);
}
