// Copyright 2026 the aesm authors. MIT license.
/**
 * The Noise `CipherState` for AES-256-GCM, X25519 static keys, and the
 * package's own ways into a cipher: the synchronous seal, open and rekey a
 * connection uses when the suite computes them synchronously, and a cipher on
 * a given suite. `cipher.ts` re-exports the public names only. Private.
 *
 * @module
 */

import { assertBytes, type Bytes, copy, EMPTY } from "../_crypto/bytes.ts";
import {
  type AeadKey,
  chain,
  defaultSuite,
  DHLEN,
  type MaybePromise,
  type Suite,
} from "../_crypto/primitives.ts";

// The package's own ways into a CipherState, set by its static block. cipher.ts
// does not re-export them.
/** `EncryptWithAd`, synchronous when the suite is; `ad` and `plaintext` are not checked. */
export let encryptNow: (cipher: CipherState, ad: Bytes, plaintext: Bytes) => MaybePromise<Bytes>;
/** `DecryptWithAd`, synchronous when the suite is; fails with a `DecryptionError`. */
export let decryptNow: (cipher: CipherState, ad: Bytes, ciphertext: Bytes) => MaybePromise<Bytes>;
/** `Rekey()`, synchronous when the suite is. */
export let rekeyNow: (cipher: CipherState) => MaybePromise<void>;
/** The suite a cipher uses. */
export let suiteOf: (cipher: CipherState) => Suite;
/** `CipherState.create` with a given suite. */
export let createCipherState: (key: Uint8Array | undefined, suite: Suite) => Promise<CipherState>;

/**
 * The reserved nonce 2^64 − 1: never used to encrypt a message, only by
 * {@linkcode CipherState.rekey}.
 *
 * @example A cipher at the reserved nonce refuses to encrypt but can rekey
 * ```ts
 * import assert from "node:assert/strict";
 * import { CipherState, MAX_NONCE } from "@aesm/aesm/cipher";
 *
 * const cipher = await CipherState.create(new Uint8Array(32));
 * cipher.setNonce(MAX_NONCE);
 * await assert.rejects(cipher.encryptWithAd(new Uint8Array(0), new Uint8Array(1)), RangeError);
 * await cipher.rekey();
 * assert.equal(cipher.nonce, MAX_NONCE);
 * ```
 */
export const MAX_NONCE: bigint = 0xffff_ffff_ffff_ffffn;

/**
 * Thrown when a ciphertext fails authentication: it was tampered with,
 * truncated, or made under another key, nonce or associated data.
 *
 * @example Catching a failed decryption
 * ```ts
 * import assert from "node:assert/strict";
 * import { CipherState, DecryptionError } from "@aesm/aesm/cipher";
 *
 * const cipher = await CipherState.create(new Uint8Array(32));
 * await assert.rejects(
 *   cipher.decryptWithAd(new Uint8Array(0), new Uint8Array(16)),
 *   DecryptionError,
 * );
 * ```
 */
export class DecryptionError extends Error {
  /**
   * Creates the error; `cause` is the underlying crypto backend's error.
   *
   * @param message A sentence for people.
   * @param options The `cause`.
   */
  constructor(message = "Cannot decrypt: authentication failed", options?: ErrorOptions) {
    super(message, options);
    this.name = "DecryptionError";
  }
}

/**
 * A Noise `CipherState` (revision 34, section 5.1) for AES-256-GCM.
 *
 * The nonce is 4 zero bytes followed by the 64-bit big-endian counter `n`.
 * A call takes its nonce when it is made, so calls may overlap and still use
 * consecutive nonces in call order. The counter moves only on success: a call
 * that fails gives its nonce back unless a later call has already taken the
 * next one. Nonce 2^64 − 1 is reserved for {@linkcode CipherState.rekey}.
 *
 * @example Encrypting and decrypting
 * ```ts
 * import assert from "node:assert/strict";
 * import { CipherState } from "@aesm/aesm/cipher";
 *
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const alice = await CipherState.create(key);
 * const bob = await CipherState.create(key);
 * const ad = new TextEncoder().encode("header");
 * const sealed = await alice.encryptWithAd(ad, new Uint8Array([1, 2, 3]));
 * assert.equal(sealed.length, 3 + 16);
 * assert.deepEqual(await bob.decryptWithAd(ad, sealed), new Uint8Array([1, 2, 3]));
 * assert.equal(alice.nonce, 1n);
 * ```
 */
export class CipherState {
  #suite: Suite = defaultSuite();
  #key: AeadKey | undefined;
  #nonce = 0n;
  // Nonces of failed calls that could not be given back yet: a later call held the next one.
  #failed: Set<bigint> | undefined;

  static {
    // A stand-in shaped like a CipherState (tests wrap one to slow it down)
    // goes through its public methods.
    const real = (cipher: CipherState): boolean => #key in (cipher as object);
    encryptNow = (cipher, ad, plaintext) =>
      real(cipher) ? cipher.#encrypt(ad, plaintext) : cipher.encryptWithAd(ad, plaintext);
    decryptNow = (cipher, ad, ciphertext) =>
      real(cipher) ? cipher.#decrypt(ad, ciphertext) : cipher.decryptWithAd(ad, ciphertext);
    rekeyNow = (cipher) => real(cipher) ? cipher.#rekey() : cipher.rekey();
    suiteOf = (cipher) => cipher.#suite;
    createCipherState = async (key, suite) => {
      const state = new CipherState();
      state.#suite = suite;
      if (key !== undefined) await state.initializeKey(key);
      return state;
    };
  }

  /**
   * Creates a `CipherState`, keyed when `key` is given.
   *
   * @param key A raw 32-byte AES-256 key; omitted, the state has no key and passes plaintext
   * through.
   * @returns The new state with its nonce at 0.
   * @throws {TypeError} If `key` is given and is not a `Uint8Array`.
   * @throws {RangeError} If `key` is not 32 bytes.
   */
  static async create(key?: Uint8Array): Promise<CipherState> {
    const state = new CipherState();
    if (key !== undefined) await state.initializeKey(key);
    return state;
  }

  /**
   * Noise `InitializeKey(key)`: sets the key and resets the nonce to 0.
   *
   * @param key A raw 32-byte AES-256 key.
   * @throws {TypeError} If `key` is not a `Uint8Array`.
   * @throws {RangeError} If `key` is not 32 bytes.
   */
  async initializeKey(key: Uint8Array): Promise<void> {
    assertBytes(key, "key", 32);
    const raw = copy(key);
    try {
      this.#key = await this.#suite.importAeadKey(raw);
    } finally {
      raw.fill(0);
    }
    this.#nonce = 0n;
    this.#failed = undefined;
  }

  /**
   * Noise `HasKey()`.
   *
   * @returns Whether the state has a key.
   */
  hasKey(): boolean {
    return this.#key !== undefined;
  }

  /** The next nonce this state will use. */
  get nonce(): bigint {
    return this.#nonce;
  }

  /**
   * Noise `SetNonce(nonce)`. Reusing a nonce under one key breaks AES-GCM:
   * this exists for tests and for rolling back a failed handshake step.
   *
   * @param nonce A value from 0 to 2^64 − 1.
   * @throws {TypeError} If `nonce` is not a bigint.
   * @throws {RangeError} If `nonce` is out of range.
   */
  setNonce(nonce: bigint): void {
    if (typeof nonce !== "bigint") throw new TypeError("Cannot set nonce: expected a bigint");
    if (nonce < 0n || nonce > MAX_NONCE) {
      throw new RangeError("Cannot set nonce: expected a bigint from 0 to 2^64 - 1");
    }
    this.#nonce = nonce;
    this.#failed = undefined;
  }

  /**
   * Noise `EncryptWithAd(ad, plaintext)`.
   *
   * @param ad Associated data, authenticated but not encrypted.
   * @param plaintext The bytes to encrypt.
   * @returns The ciphertext with its 16-byte tag, or a copy of `plaintext` without a key.
   * @throws {TypeError} If `ad` or `plaintext` is not a `Uint8Array`.
   * @throws {RangeError} If the nonce has reached 2^64 − 1.
   */
  async encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    assertBytes(ad, "ad");
    assertBytes(plaintext, "plaintext");
    return await this.#encrypt(asBytes(ad), asBytes(plaintext));
  }

  #encrypt(ad: Bytes, plaintext: Bytes): MaybePromise<Bytes> {
    const key = this.#key;
    if (key === undefined) return copy(plaintext);
    const n = this.#take("encrypt");
    const fail = (error: unknown): never => {
      this.#giveBack(n);
      throw error;
    };
    try {
      const sealed = this.#suite.seal(key, n, ad, plaintext);
      return sealed instanceof Promise ? sealed.catch(fail) : sealed;
    } catch (error) {
      return fail(error);
    }
  }

  /**
   * Noise `DecryptWithAd(ad, ciphertext)`.
   *
   * @param ad The associated data the sender used.
   * @param ciphertext The ciphertext with its 16-byte tag.
   * @returns The plaintext, or a copy of `ciphertext` without a key.
   * @throws {DecryptionError} If authentication fails; the nonce does not move.
   * @throws {TypeError} If `ad` or `ciphertext` is not a `Uint8Array`.
   * @throws {RangeError} If the nonce has reached 2^64 − 1.
   */
  async decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    assertBytes(ad, "ad");
    assertBytes(ciphertext, "ciphertext");
    return await this.#decrypt(asBytes(ad), asBytes(ciphertext));
  }

  #decrypt(ad: Bytes, ciphertext: Bytes): MaybePromise<Bytes> {
    const key = this.#key;
    if (key === undefined) return copy(ciphertext);
    const n = this.#take("decrypt");
    const fail = (error: unknown): never => {
      this.#giveBack(n);
      throw new DecryptionError(undefined, { cause: error });
    };
    try {
      const opened = this.#suite.open(key, n, ad, ciphertext);
      return opened instanceof Promise ? opened.catch(fail) : opened;
    } catch (error) {
      return fail(error);
    }
  }

  /**
   * Noise `Rekey()`: the new key is the first 32 bytes of encrypting 32 zero
   * bytes under nonce 2^64 − 1. The nonce is unchanged. Wait for it before the
   * next call: one made while it is pending may use either key.
   *
   * @throws {TypeError} If the state has no key.
   */
  async rekey(): Promise<void> {
    await this.#rekey();
  }

  #rekey(): MaybePromise<void> {
    const key = this.#key;
    if (key === undefined) throw new TypeError("Cannot rekey: the cipher has no key");
    return chain(this.#suite.seal(key, MAX_NONCE, EMPTY, new Uint8Array(32)), (block) => {
      const next = block.subarray(0, 32);
      const done = (imported: AeadKey) => {
        this.#key = imported;
        block.fill(0);
      };
      try {
        const imported = this.#suite.importAeadKey(next);
        if (!(imported instanceof Promise)) return done(imported);
        return imported.then(done, (error) => {
          block.fill(0);
          throw error;
        });
      } catch (error) {
        block.fill(0);
        throw error;
      }
    });
  }

  #take(action: string): bigint {
    const n = this.#nonce;
    if (n >= MAX_NONCE) {
      throw new RangeError(
        `Cannot ${action}: the nonce space is exhausted, rekey or start a new session`,
      );
    }
    this.#nonce = n + 1n;
    return n;
  }

  #giveBack(n: bigint): void {
    this.#failed ??= new Set();
    this.#failed.add(n);
    while (this.#failed.delete(this.#nonce - 1n)) this.#nonce--;
  }
}

/** A static X25519 key pair as raw bytes, ready to save and load. */
export interface KeyPair {
  /** The 32-byte public key, to share with peers. */
  readonly publicKey: Uint8Array<ArrayBuffer>;
  /** The 32-byte private scalar. Keep it secret. */
  readonly privateKey: Uint8Array<ArrayBuffer>;
}

/**
 * Generates a static X25519 key pair.
 *
 * @returns A new key pair as raw 32-byte keys.
 *
 * @example Generating and saving a key pair
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKeyPair, keyPairFromPrivateKey } from "@aesm/aesm/cipher";
 *
 * const pair = await generateKeyPair();
 * const loaded = await keyPairFromPrivateKey(pair.privateKey);
 * assert.deepEqual(loaded.publicKey, pair.publicKey);
 * ```
 */
export async function generateKeyPair(): Promise<KeyPair> {
  return await defaultSuite().generateRawKeyPair();
}

/**
 * Loads a key pair from a raw 32-byte X25519 private scalar, deriving the
 * public key.
 *
 * @param privateKey The raw private scalar.
 * @returns The key pair.
 * @throws {TypeError} If `privateKey` is not a `Uint8Array`.
 * @throws {RangeError} If `privateKey` is not 32 bytes.
 *
 * @example Deriving a public key
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyPairFromPrivateKey } from "@aesm/aesm/cipher";
 *
 * const pair = await keyPairFromPrivateKey(new Uint8Array(32).fill(7));
 * assert.equal(pair.publicKey.length, 32);
 * ```
 */
export async function keyPairFromPrivateKey(privateKey: Uint8Array): Promise<KeyPair> {
  assertBytes(privateKey, "privateKey", DHLEN);
  const { publicKey } = await defaultSuite().importDhKeyPair(privateKey);
  return { publicKey, privateKey: copy(privateKey) };
}

function asBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : copy(bytes);
}
