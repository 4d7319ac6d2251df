// Copyright 2026 the aesm authors. MIT license.
// What the examples use: the package itself and a hex helper.
export * from "../mod.ts";

/** Lowercase hex of some bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
