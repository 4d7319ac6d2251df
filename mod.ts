// Copyright 2026 the aesm authors. MIT license.
/**
 * aesm: asynchronous, encrypted, message-oriented sockets for Deno.
 *
 * A server listens on TCP; clients connect; each connection runs a Noise
 * handshake (X25519, AES-256-GCM, SHA-256) and then carries encrypted,
 * length-framed messages. Received messages become packets in async-iterable
 * queues. This entry point is the socket API, with the key and error types
 * it uses; the Noise core on its own is `@aesm/aesm/noise`.
 *
 * @example A server and a client on loopback
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * await client.send("hello");
 * const packet = await server.receive();
 * assert.equal(packet?.text(), "hello");
 * assert.equal(packet?.connection.address, client.localAddress);
 * ```
 *
 * @module
 */

export * from "./server.ts";
export * from "./client.ts";
export * from "./connection.ts";
export * from "./queue.ts";
export * from "./activity.ts";
export * from "./errors.ts";
export * from "./cluster.ts";
export { generateKeyPair, type KeyPair, keyPairFromPrivateKey } from "./cipher.ts";
