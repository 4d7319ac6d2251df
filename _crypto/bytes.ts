// Copyright 2026 the aesm authors. MIT license.
/** Byte helpers shared by the modules. Private: not exported from the package. */

/** Bytes backed by a plain `ArrayBuffer`, as WebCrypto requires. */
export type Bytes = Uint8Array<ArrayBuffer>;

/** An empty byte string. Never written to. */
export const EMPTY: Bytes = new Uint8Array(0);

/** Concatenates byte strings into a new one. */
export function concat(...parts: Uint8Array[]): Bytes {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Returns a copy of `bytes` that owns its own `ArrayBuffer`. */
export function copy(bytes: Uint8Array): Bytes {
  return new Uint8Array(bytes);
}

/** Compares two byte strings in time independent of where they differ. */
export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Checks that `value` is a `Uint8Array` of `length` bytes. */
export function assertBytes(
  value: unknown,
  name: string,
  length?: number,
): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Cannot use ${name}: expected a Uint8Array`);
  }
  if (length !== undefined && value.length !== length) {
    throw new RangeError(
      `Cannot use ${name}: expected ${length} bytes, got ${value.length}`,
    );
  }
}

/** Encodes bytes as lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** Decodes lowercase or uppercase hex. */
export function fromHex(hex: string): Bytes {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError("Cannot decode hex: expected an even number of hex digits");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}
