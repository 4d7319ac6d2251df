// Copyright 2026 the aesm authors. MIT license.
/**
 * The log of connection activity: on a server, who connected, was refused
 * or left, when, and why; on a client, when it connected, lost its
 * connection, tried again, or gave up.
 *
 * @example Reading the log
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * const connected = await server.activity.receive();
 * assert.equal(connected?.event, "connected");
 * assert.equal(connected?.address, client.localAddress);
 * await client.close();
 * const left = await server.activity.receive();
 * assert.equal(left?.event, "disconnected");
 * assert.equal(left?.reason, "normal");
 * ```
 *
 * @module
 */

export { ActivityLog, DEFAULT_ACTIVITY_LIMIT } from "./_queue/activity_log.ts";
export type { ActivityRecord } from "./_queue/activity_log.ts";
