// Copyright 2026 the aesm authors. MIT license.
/**
 * The WebCrypto calls behind the Noise functions for 25519, AESGCM and
 * SHA256. Private: bytes in, bytes out, no I/O.
 *
 * @module
 */

import { type Bytes, concat, copy, EMPTY, equal } from "./_bytes.ts";

const subtle = globalThis.crypto.subtle;

/** Length of an X25519 key or shared secret (Noise `DHLEN`). */
export const DHLEN = 32;
/** Length of a SHA-256 digest (Noise `HASHLEN`). */
export const HASHLEN = 32;
/** Length of an AES-GCM tag. */
export const TAGLEN = 16;

// DER prefix of a PKCS#8 PrivateKeyInfo holding a raw X25519 scalar (RFC 8410).
const PKCS8_X25519_PREFIX = new Uint8Array([
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

/** An X25519 key pair as Noise uses it: the private half never leaves WebCrypto. */
export interface DhKeyPair {
  readonly publicKey: Bytes;
  readonly privateKey: CryptoKey;
}

/** Noise `GENERATE_KEYPAIR()`: a fresh key pair with a non-extractable private key. */
export async function generateDhKeyPair(): Promise<DhKeyPair> {
  const pair = await subtle.generateKey({ name: "X25519" }, false, [
    "deriveBits",
  ]) as CryptoKeyPair;
  const publicKey = new Uint8Array(
    await subtle.exportKey("raw", pair.publicKey),
  );
  return { publicKey, privateKey: pair.privateKey };
}

// A server imports the same static key for every handshake: keep the
// imported pair with the array it came from, and check the bytes on reuse
// (the caller may have changed them in place).
const imported = new WeakMap<Uint8Array, { bytes: Bytes; pair: Promise<DhKeyPair> }>();

/** Imports a raw 32-byte X25519 scalar and derives its public key. */
export function importDhKeyPair(rawPrivateKey: Uint8Array): Promise<DhKeyPair> {
  const hit = imported.get(rawPrivateKey);
  if (hit !== undefined && equal(hit.bytes, rawPrivateKey)) return hit.pair;
  const pair = importFresh(rawPrivateKey);
  imported.set(rawPrivateKey, { bytes: copy(rawPrivateKey), pair });
  pair.catch(() => imported.delete(rawPrivateKey));
  return pair;
}

async function importFresh(
  rawPrivateKey: Uint8Array,
): Promise<DhKeyPair> {
  const pkcs8 = concat(PKCS8_X25519_PREFIX, rawPrivateKey);
  const extractable = await subtle.importKey(
    "pkcs8",
    pkcs8,
    {
      name: "X25519",
    },
    true,
    ["deriveBits"],
  );
  pkcs8.fill(0);
  const jwk = await subtle.exportKey("jwk", extractable);
  const publicKey = fromBase64Url(jwk.x!);
  const privateKey = await subtle.importKey("jwk", jwk, { name: "X25519" }, false, [
    "deriveBits",
  ]);
  return { publicKey, privateKey };
}

/** Exports the raw 32-byte scalar of an extractable X25519 private key. */
export async function exportRawPrivateKey(key: CryptoKey): Promise<Bytes> {
  const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", key));
  return pkcs8.slice(PKCS8_X25519_PREFIX.length);
}

/** Noise `DH(key_pair, public_key)`: X25519. Rejects a low-order public key. */
export async function dh(
  privateKey: CryptoKey,
  publicKey: Uint8Array<ArrayBuffer>,
): Promise<Bytes> {
  const peer = await subtle.importKey("raw", publicKey, { name: "X25519" }, true, []);
  return new Uint8Array(
    await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256),
  );
}

/** Noise `HASH(data)`: SHA-256. */
export async function hash(data: Bytes): Promise<Bytes> {
  return new Uint8Array(await subtle.digest("SHA-256", data));
}

/**
 * Noise `HKDF(chaining_key, input_key_material, num_outputs)`.
 *
 * Noise's HKDF is RFC 5869 HKDF-SHA-256 with the chaining key as salt and an
 * empty info, so one WebCrypto `deriveBits` gives every output at once.
 */
export async function hkdf(
  chainingKey: Bytes,
  inputKeyMaterial: Bytes,
  outputs: 2 | 3,
): Promise<Bytes[]> {
  const ikm = await subtle.importKey("raw", inputKeyMaterial, "HKDF", false, [
    "deriveBits",
  ]);
  const bits = new Uint8Array(
    await subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: chainingKey, info: EMPTY },
      ikm,
      outputs * HASHLEN * 8,
    ),
  );
  const out: Bytes[] = [];
  for (let i = 0; i < outputs; i++) {
    out.push(bits.slice(i * HASHLEN, (i + 1) * HASHLEN));
  }
  bits.fill(0);
  return out;
}

/** Imports a raw 32-byte AES-256-GCM key, non-extractable. */
export function importAesKey(raw: Bytes): Promise<CryptoKey> {
  return subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/** The AESGCM nonce: 4 zero bytes, then the 64-bit big-endian counter. */
export function nonceBytes(n: bigint): Bytes {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, n);
  return iv;
}

/** AES-256-GCM encryption with a 16-byte tag appended. */
export async function seal(
  key: CryptoKey,
  n: bigint,
  ad: Bytes,
  plaintext: Bytes,
): Promise<Bytes> {
  return new Uint8Array(
    await subtle.encrypt(
      { name: "AES-GCM", iv: nonceBytes(n), additionalData: ad },
      key,
      plaintext,
    ),
  );
}

/** AES-256-GCM decryption; rejects with the WebCrypto error if the tag is wrong. */
export async function open(
  key: CryptoKey,
  n: bigint,
  ad: Bytes,
  ciphertext: Bytes,
): Promise<Bytes> {
  return new Uint8Array(
    await subtle.decrypt(
      { name: "AES-GCM", iv: nonceBytes(n), additionalData: ad },
      key,
      ciphertext,
    ),
  );
}

function fromBase64Url(text: string): Bytes {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - base64.length % 4) % 4));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
