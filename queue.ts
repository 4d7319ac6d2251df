// Copyright 2026 the aesm authors. MIT license.
/**
 * Packets and the per-connection packet queue.
 *
 * @example Taking packets from a connection's queue
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * await client.send("one");
 * await client.send("two");
 * const connection = await server.accept();
 * const first = await connection.data.receive();
 * assert.equal(first?.data, "one");
 * const second = await connection.data.receive();
 * assert.equal(second?.data, "two");
 * assert.equal(connection.data.length, 0);
 * ```
 *
 * @module
 */

export { Packet, PacketQueue } from "./_connection/connection.ts";
export { DEFAULT_HIGH_WATER_MARK } from "./_connection/options.ts";
export type { PacketQueueOptions } from "./_connection/options.ts";
export type { ReceiveOptions } from "./_queue/abort.ts";
