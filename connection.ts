// Copyright 2026 the aesm authors. MIT license.
/**
 * An established, encrypted connection: what a server holds for each client
 * and what a client holds to its server.
 *
 * @example Sending both ways, then closing cleanly
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * const connection = await server.accept();
 * await connection.send(new Uint8Array([1, 2, 3]));
 * const packet = await client.receive();
 * assert.deepEqual(packet?.data, new Uint8Array([1, 2, 3]));
 * const info = await client.close();
 * assert.equal(info.reason, "normal");
 * assert.equal((await connection.closed).clean, true);
 * ```
 *
 * @module
 */

export { Connection } from "./_connection/connection.ts";
export { formatAddress } from "./_transport/transport.ts";
export {
  DEFAULT_HEARTBEAT_INTERVAL,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_BUFFERED_AMOUNT,
  DEFAULT_MAX_MESSAGE_SIZE,
} from "./_connection/options.ts";
export type { CloseInfo, CloseOptions, ConnectionOptions } from "./_connection/options.ts";
