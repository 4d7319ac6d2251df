// Copyright 2026 the aesm authors. MIT license.
/**
 * The Noise `CipherState` for AES-256-GCM, and X25519 static keys. Small
 * inputs go through `node:crypto` where the runtime has it, the rest through
 * WebCrypto: the same AES-256-GCM either way.
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { CipherState } from "@aesm/aesm/cipher";
 *
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const send = await CipherState.create(key);
 * const receive = await CipherState.create(key);
 * const ad = new Uint8Array(0);
 * const ciphertext = await send.encryptWithAd(ad, new TextEncoder().encode("hi"));
 * const plaintext = await receive.decryptWithAd(ad, ciphertext);
 * assert.equal(new TextDecoder().decode(plaintext), "hi");
 * ```
 *
 * @module
 */

export {
  CipherState,
  DecryptionError,
  generateKeyPair,
  keyPairFromPrivateKey,
  MAX_NONCE,
} from "./_noise/cipher_state.ts";
export type { KeyPair } from "./_noise/cipher_state.ts";
