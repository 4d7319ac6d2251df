// Copyright 2026 the aesm authors. MIT license.
/**
 * The WebCrypto backend of the Noise functions for 25519, AESGCM and SHA256:
 * every runtime and every browser has it, and it is the reference the other
 * backend is tested against. Every call is asynchronous. Private: bytes in,
 * bytes out, no I/O.
 *
 * @module
 */

import { type Bytes, concat, EMPTY } from "./bytes.ts";
import {
  type Backend,
  DHLEN,
  HASHLEN,
  nonceBytes,
  PKCS8_X25519_PREFIX,
  splitOutputs,
} from "./backend.ts";

const subtle = globalThis.crypto.subtle;

/** WebCrypto: keys are non-extractable `CryptoKey`s. */
export const webCrypto: Backend<CryptoKey, CryptoKey> = {
  name: "webcrypto",

  async generateDhKeyPair() {
    const pair = await subtle.generateKey({ name: "X25519" }, false, [
      "deriveBits",
    ]) as CryptoKeyPair;
    const publicKey = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
    return { publicKey, privateKey: pair.privateKey };
  },

  async importDhKeyPair(rawPrivateKey) {
    const pkcs8 = concat(PKCS8_X25519_PREFIX, rawPrivateKey);
    const extractable = await subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, true, [
      "deriveBits",
    ]);
    pkcs8.fill(0);
    const jwk = await subtle.exportKey("jwk", extractable);
    const publicKey = fromBase64Url(jwk.x!);
    const privateKey = await subtle.importKey("jwk", jwk, { name: "X25519" }, false, [
      "deriveBits",
    ]);
    return { publicKey, privateKey };
  },

  async generateRawKeyPair() {
    const pair = await subtle.generateKey({ name: "X25519" }, true, [
      "deriveBits",
    ]) as CryptoKeyPair;
    const publicKey = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
    const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", pair.privateKey));
    const privateKey = pkcs8.slice(PKCS8_X25519_PREFIX.length);
    pkcs8.fill(0);
    return { publicKey, privateKey };
  },

  async dh(privateKey, publicKey) {
    const peer = await subtle.importKey("raw", publicKey, { name: "X25519" }, true, []);
    return new Uint8Array(
      await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, DHLEN * 8),
    );
  },

  async hash(data) {
    return new Uint8Array(await subtle.digest("SHA-256", data));
  },

  // Noise's HKDF is RFC 5869 HKDF-SHA-256 with the chaining key as salt and an
  // empty info, so one deriveBits gives every output at once.
  async hkdf(chainingKey, inputKeyMaterial, outputs) {
    const ikm = await subtle.importKey("raw", inputKeyMaterial, "HKDF", false, ["deriveBits"]);
    const bits = new Uint8Array(
      await subtle.deriveBits(
        { name: "HKDF", hash: "SHA-256", salt: chainingKey, info: EMPTY },
        ikm,
        outputs * HASHLEN * 8,
      ),
    );
    return splitOutputs(bits, outputs);
  },

  importAeadKey(raw) {
    return subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  },

  async seal(key, n, ad, plaintext) {
    return new Uint8Array(
      await subtle.encrypt(
        { name: "AES-GCM", iv: nonceBytes(n), additionalData: ad },
        key,
        plaintext,
      ),
    );
  },

  async open(key, n, ad, ciphertext) {
    return new Uint8Array(
      await subtle.decrypt(
        { name: "AES-GCM", iv: nonceBytes(n), additionalData: ad },
        key,
        ciphertext,
      ),
    );
  },
};

function fromBase64Url(text: string): Bytes {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - base64.length % 4) % 4));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
