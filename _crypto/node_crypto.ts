// Copyright 2026 the aesm authors. MIT license.
/**
 * The `node:crypto` backend: synchronous, where the runtime has it (Deno,
 * Node.js and Bun do; a browser does not). No static import: the module is
 * looked up with `process.getBuiltinModule`, so this file loads anywhere and
 * `nodeCrypto` is `undefined` where there is no `node:crypto`. Private: bytes
 * in, bytes out, no I/O.
 *
 * @module
 */

import { type Bytes, concat, copy } from "./bytes.ts";
import {
  type Backend,
  DHLEN,
  HASHLEN,
  nonceBytes,
  PKCS8_X25519_PREFIX,
  SPKI_X25519_PREFIX,
  splitOutputs,
  TAGLEN,
} from "./backend.ts";

/** The part of a `node:crypto` `KeyObject` this backend uses. */
export interface KeyObject {
  export(options?: { format: "der"; type: "pkcs8" | "spki" }): Uint8Array;
  toCryptoKey?(algorithm: string, extractable: boolean, usages: string[]): CryptoKey;
}

interface Gcm {
  setAAD(ad: Uint8Array): unknown;
  update(data: Uint8Array): Uint8Array;
  final(): Uint8Array;
}

/** The part of the `node:crypto` module this backend uses. */
interface NodeCryptoModule {
  createSecretKey(key: Uint8Array): KeyObject;
  createCipheriv(algorithm: string, key: KeyObject, iv: Uint8Array): Gcm & {
    getAuthTag(): Uint8Array;
  };
  createDecipheriv(
    algorithm: string,
    key: KeyObject,
    iv: Uint8Array,
    options: { authTagLength: number },
  ): Gcm & { setAuthTag(tag: Uint8Array): unknown };
  createHash(algorithm: string): { update(data: Uint8Array): { digest(): Uint8Array } };
  hkdfSync(
    digest: string,
    ikm: Uint8Array,
    salt: Uint8Array,
    info: Uint8Array,
    length: number,
  ): ArrayBuffer;
  generateKeyPairSync(type: "x25519"): { publicKey: KeyObject; privateKey: KeyObject };
  createPrivateKey(options: { key: Uint8Array; format: "der"; type: "pkcs8" }): KeyObject;
  createPublicKey(
    options: KeyObject | { key: Uint8Array; format: "der"; type: "spki" },
  ): KeyObject;
  diffieHellman(options: { privateKey: KeyObject; publicKey: KeyObject }): Uint8Array;
}

function load(): NodeCryptoModule | undefined {
  const process = (globalThis as {
    process?: { getBuiltinModule?: (id: string) => unknown };
  }).process;
  try {
    const module = process?.getBuiltinModule?.("node:crypto") as NodeCryptoModule | undefined;
    return typeof module?.createCipheriv === "function" ? module : undefined;
  } catch {
    return undefined;
  }
}

let loaded: { backend: Backend<KeyObject, KeyObject> | undefined } | undefined;

/**
 * The `node:crypto` backend, or `undefined` where the runtime has none.
 * Looked up on first use: loading `node:crypto` costs Deno about 20 ms of
 * CPU, which a program that never connects should not pay.
 */
export function nodeCrypto(): Backend<KeyObject, KeyObject> | undefined {
  loaded ??= { backend: backendOf(load()) };
  return loaded.backend;
}

/** `node:crypto`: keys are `KeyObject`s, held by the runtime. */
const backendOf = (nc: NodeCryptoModule | undefined): Backend<KeyObject, KeyObject> | undefined =>
  nc && {
    name: "node:crypto",

    generateDhKeyPair() {
      const { publicKey, privateKey } = nc.generateKeyPairSync("x25519");
      return { publicKey: rawPublicKey(publicKey), privateKey };
    },

    importDhKeyPair(rawPrivateKey) {
      const pkcs8 = concat(PKCS8_X25519_PREFIX, rawPrivateKey);
      try {
        const privateKey = nc.createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
        return { publicKey: rawPublicKey(nc.createPublicKey(privateKey)), privateKey };
      } finally {
        pkcs8.fill(0);
      }
    },

    generateRawKeyPair() {
      const { publicKey, privateKey } = nc.generateKeyPairSync("x25519");
      const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
      const raw = copy(pkcs8.subarray(PKCS8_X25519_PREFIX.length));
      pkcs8.fill(0);
      return { publicKey: rawPublicKey(publicKey), privateKey: raw };
    },

    dh(privateKey, publicKey) {
      const spki = concat(SPKI_X25519_PREFIX, publicKey);
      const peer = nc.createPublicKey({ key: spki, format: "der", type: "spki" });
      // OpenSSL-style X25519 refuses an all-zero shared secret (a low-order
      // key); check it here too so no runtime's backend lets one through.
      const shared = nc.diffieHellman({ privateKey, publicKey: peer });
      const secret = copy(shared);
      shared.fill(0);
      if (secret.length !== DHLEN || secret.every((byte) => byte === 0)) {
        secret.fill(0);
        throw new Error("Cannot derive a shared secret: the public key has low order");
      }
      return secret;
    },

    hash(data) {
      return copy(nc.createHash("sha256").update(data).digest());
    },

    hkdf(chainingKey, inputKeyMaterial, outputs) {
      const bits = nc.hkdfSync(
        "sha256",
        inputKeyMaterial,
        chainingKey,
        EMPTY_INFO,
        outputs * HASHLEN,
      );
      return splitOutputs(new Uint8Array(bits), outputs);
    },

    importAeadKey(raw) {
      return nc.createSecretKey(raw);
    },

    seal(key, n, ad, plaintext) {
      const cipher = nc.createCipheriv("aes-256-gcm", key, nonceBytes(n));
      cipher.setAAD(ad);
      const body = cipher.update(plaintext);
      cipher.final();
      const sealed = new Uint8Array(plaintext.length + TAGLEN);
      sealed.set(body);
      sealed.set(cipher.getAuthTag(), plaintext.length);
      return sealed;
    },

    open(key, n, ad, ciphertext) {
      if (ciphertext.length < TAGLEN) throw new Error("Cannot decrypt: shorter than its tag");
      const end = ciphertext.length - TAGLEN;
      const decipher = nc.createDecipheriv("aes-256-gcm", key, nonceBytes(n), {
        authTagLength: TAGLEN,
      });
      decipher.setAAD(ad);
      decipher.setAuthTag(ciphertext.subarray(end));
      const body = decipher.update(ciphertext.subarray(0, end));
      decipher.final(); // Throws if the tag is wrong: `body` is then never used.
      return ownBytes(body);
    },
  };

const EMPTY_INFO = new Uint8Array(0);

function rawPublicKey(key: KeyObject): Bytes {
  return copy(key.export({ format: "der", type: "spki" }).subarray(SPKI_X25519_PREFIX.length));
}

// A plain Uint8Array over exactly its bytes (a Buffer's slice() is a view).
function ownBytes(bytes: Uint8Array): Bytes {
  if (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length) {
    return new Uint8Array(bytes.buffer as ArrayBuffer);
  }
  return copy(bytes);
}
