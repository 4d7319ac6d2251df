// Copyright 2026 the aesm authors. MIT license.
/**
 * The Noise core of aesm, on its own: `HandshakeState`, `SymmetricState` and
 * `CipherState` for `Noise_*_25519_AESGCM_SHA256` (revision 34 of the Noise
 * Protocol Framework, every fundamental and deferred pattern, with psk
 * modifiers), key pairs, and the frame codecs of the aesm wire format. Bytes
 * in, bytes out: no sockets. Most programs want the socket API in the
 * package's main entry point instead.
 *
 * @example A Noise_XX handshake between two in-memory parties
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
 * assert.ok(alice.isComplete && bob.isComplete);
 * assert.deepEqual(alice.handshakeHash, bob.handshakeHash);
 *
 * const a = await alice.split();
 * const b = await bob.split();
 * const ad = new Uint8Array(0);
 * const sealed = await a.send.encryptWithAd(ad, new TextEncoder().encode("hi"));
 * assert.equal(new TextDecoder().decode(await b.receive.decryptWithAd(ad, sealed)), "hi");
 * ```
 *
 * @module
 */

export * from "./cipher.ts";
export * from "./framing.ts";
export * from "./handshake.ts";
