// Copyright 2026 the aesm authors. MIT license.
/**
 * The Noise handshake (revision 34, section 5): `SymmetricState` and
 * `HandshakeState` for every fundamental and deferred pattern with any psk
 * modifiers, on X25519, AES-256-GCM and SHA-256.
 *
 * @example An XX handshake between two in-memory peers
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKeyPair, HandshakeState } from "@aesm/aesm/noise";
 *
 * const protocolName = "Noise_XX_25519_AESGCM_SHA256";
 * const alice = await HandshakeState.create({
 *   protocolName,
 *   initiator: true,
 *   staticPrivateKey: (await generateKeyPair()).privateKey,
 * });
 * const bob = await HandshakeState.create({
 *   protocolName,
 *   initiator: false,
 *   staticPrivateKey: (await generateKeyPair()).privateKey,
 * });
 * await bob.readMessage(await alice.writeMessage());
 * await alice.readMessage(await bob.writeMessage());
 * await bob.readMessage(await alice.writeMessage());
 * assert.deepEqual(alice.handshakeHash, bob.handshakeHash);
 * ```
 *
 * @module
 */

export {
  HandshakeError,
  HandshakeState,
  MAX_MESSAGE_LENGTH,
  SymmetricState,
} from "./_noise/handshake_state.ts";
export type { HandshakeStateOptions, TransportCiphers } from "./_noise/handshake_state.ts";
