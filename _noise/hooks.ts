// Copyright 2026 the aesm authors. MIT license.
/**
 * Package-internal entry points of the Noise core, kept out of its public
 * API: a connection seals and opens frames without a promise when the suite
 * computes them synchronously, and creates its handshake with the suite its
 * `crypto` option names. Filled in by `cipher.ts` and `handshake.ts` when
 * they load (a static block in each class). Private.
 *
 * @module
 */

import type { Bytes } from "../_crypto/bytes.ts";
import type { MaybePromise, Suite } from "../_crypto/primitives.ts";
import type { CipherState } from "../cipher.ts";
import type { HandshakeState, HandshakeStateOptions } from "../handshake.ts";

/** The hooks; each is set once its module has loaded. */
export const noiseHooks: {
  /** `EncryptWithAd`, synchronous when the suite is; `ad` and `plaintext` are not checked. */
  encrypt?: (cipher: CipherState, ad: Bytes, plaintext: Bytes) => MaybePromise<Bytes>;
  /** `DecryptWithAd`, synchronous when the suite is; fails with a `DecryptionError`. */
  decrypt?: (cipher: CipherState, ad: Bytes, ciphertext: Bytes) => MaybePromise<Bytes>;
  /** `Rekey()`, synchronous when the suite is. */
  rekey?: (cipher: CipherState) => MaybePromise<void>;
  /** `CipherState.create` with a given suite. */
  createCipher?: (key: Uint8Array | undefined, suite: Suite) => Promise<CipherState>;
  /** The suite a cipher uses. */
  suiteOf?: (cipher: CipherState) => Suite;
  /** `HandshakeState.create` with a given suite, which its ciphers inherit. */
  createHandshake?: (options: HandshakeStateOptions, suite: Suite) => Promise<HandshakeState>;
} = {};
