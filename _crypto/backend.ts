// Copyright 2026 the aesm authors. MIT license.
/**
 * What a crypto backend implements: the Noise functions for 25519, AESGCM
 * and SHA256, each either synchronous or asynchronous. `_crypto/webcrypto.ts` and
 * `_crypto/node_crypto.ts` implement it; `_crypto/primitives.ts` chooses between them.
 * Private: bytes in, bytes out, no I/O.
 *
 * @module
 */

import type { Bytes } from "./bytes.ts";

/** A value now, or later. */
export type MaybePromise<T> = T | Promise<T>;

/** Length of an X25519 key or shared secret (Noise `DHLEN`). */
export const DHLEN = 32;
/** Length of a SHA-256 digest (Noise `HASHLEN`). */
export const HASHLEN = 32;
/** Length of an AES-GCM tag. */
export const TAGLEN = 16;

/** DER prefix of a PKCS#8 PrivateKeyInfo holding a raw X25519 scalar (RFC 8410). */
export const PKCS8_X25519_PREFIX: Bytes = new Uint8Array([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x04,
  0x22,
  0x04,
  0x20,
]);

/** DER prefix of a SubjectPublicKeyInfo holding a raw X25519 public key (RFC 8410). */
export const SPKI_X25519_PREFIX: Bytes = new Uint8Array([
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x03,
  0x21,
  0x00,
]);

/** An X25519 key pair as Noise uses it: the private half stays inside the backend. */
export interface DhKeyPair<PrivateKey = unknown> {
  readonly publicKey: Bytes;
  readonly privateKey: PrivateKey;
}

/** A static key pair as raw bytes. */
export interface RawKeyPair {
  readonly publicKey: Bytes;
  readonly privateKey: Bytes;
}

/**
 * One implementation of the Noise functions. A function returns its result
 * directly when the backend computes it synchronously.
 */
export interface Backend<AeadKey, DhPrivateKey> {
  readonly name: "webcrypto" | "node:crypto";
  /** Noise `GENERATE_KEYPAIR()`, the private key kept inside the backend. */
  generateDhKeyPair(): MaybePromise<DhKeyPair<DhPrivateKey>>;
  /** Imports a raw 32-byte X25519 scalar and derives its public key. */
  importDhKeyPair(rawPrivateKey: Uint8Array): MaybePromise<DhKeyPair<DhPrivateKey>>;
  /** A new static key pair as raw bytes, to save. */
  generateRawKeyPair(): MaybePromise<RawKeyPair>;
  /** Noise `DH()`: X25519; fails on a low-order public key (an all-zero result). */
  dh(privateKey: DhPrivateKey, publicKey: Bytes): MaybePromise<Bytes>;
  /** Noise `HASH()`: SHA-256. */
  hash(data: Bytes): MaybePromise<Bytes>;
  /** Noise `HKDF()`: RFC 5869 HKDF-SHA-256, salt the chaining key, empty info. */
  hkdf(chainingKey: Bytes, inputKeyMaterial: Bytes, outputs: 2 | 3): MaybePromise<Bytes[]>;
  /** Imports a raw 32-byte AES-256-GCM key; the caller zeroes `raw` afterwards. */
  importAeadKey(raw: Bytes): MaybePromise<AeadKey>;
  /** AES-256-GCM encryption with the 16-byte tag appended. */
  seal(key: AeadKey, n: bigint, ad: Bytes, plaintext: Bytes): MaybePromise<Bytes>;
  /** AES-256-GCM decryption; fails if the tag is wrong. */
  open(key: AeadKey, n: bigint, ad: Bytes, ciphertext: Bytes): MaybePromise<Bytes>;
}

/** The AESGCM nonce: 4 zero bytes, then the 64-bit big-endian counter. */
export function nonceBytes(n: bigint): Bytes {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, n);
  return iv;
}

/** Cuts HKDF output into `outputs` keys of HASHLEN bytes and zeroes the whole. */
export function splitOutputs(bits: Uint8Array, outputs: number): Bytes[] {
  const out: Bytes[] = [];
  for (let i = 0; i < outputs; i++) out.push(bits.slice(i * HASHLEN, (i + 1) * HASHLEN));
  bits.fill(0);
  return out;
}

/**
 * Applies `next` to `value` at once if it is here, or when it arrives. (Not
 * named `then`: a module exporting `then` makes its namespace a thenable, and
 * a dynamic `import()` of it would call it.)
 */
export function chain<T, U>(
  value: MaybePromise<T>,
  next: (value: T) => MaybePromise<U>,
): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}
