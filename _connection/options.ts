// Copyright 2026 the aesm authors. MIT license.
/**
 * The options and defaults of connections and their queues, and what a
 * connection's end reports. `connection.ts` and `queue.ts` re-export them.
 * Private.
 *
 * @module
 */

import type { CloseReason } from "../errors.ts";

/**
 * Default {@linkcode ConnectionOptions.maxMessageSize}: 16 MiB.
 *
 * @example A peer with the default limit
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, DEFAULT_MAX_MESSAGE_SIZE, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * assert.equal(DEFAULT_MAX_MESSAGE_SIZE, 16 * 1024 * 1024);
 * assert.equal(client.connection.peerMaxMessageSize, DEFAULT_MAX_MESSAGE_SIZE);
 * ```
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;

/** Options every connection takes, on either side. */
export interface ConnectionOptions {
  /**
   * The largest message this side accepts, in bytes, from 65536 (peers
   * refuse less, `PROTOCOL.md` section 4) to 2^32 − 1. The peer learns it in
   * the handshake and refuses to send more.
   *
   * @default {16777216}
   */
  maxMessageSize?: number;
  /**
   * Bytes of received messages queued before the connection stops reading
   * its socket.
   *
   * @default {4194304}
   */
  highWaterMark?: number;
  /**
   * Bytes of sent messages buffered and not yet written to the socket before
   * `send()` waits.
   *
   * @default {1048576}
   */
  writeHighWaterMark?: number;
  /**
   * Bytes of plaintext sent under one key before that direction rekeys; at
   * least 65536, as peers refuse rekeys closer together (`PROTOCOL.md`
   * section 6).
   *
   * @default {1073741824}
   */
  rekeyAfterBytes?: number;
  /**
   * Milliseconds `close()` waits to flush and for the peer's close before it
   * cuts the connection, counted from the last bytes received: a peer still
   * sending its last data is not cut off. The whole close never takes more
   * than twice this (and, when the peer never answered, up to a second
   * more to send it a last Close), and once this side's Close is sent it reads at most
   * `highWaterMark` more bytes: a peer that ignores the Close cannot hold
   * the connection open.
   *
   * @default {5000}
   */
  closeTimeout?: number;
  /**
   * Milliseconds a socket write may make no progress (the peer reads
   * nothing) before the connection is closed with reason `"timeout"`.
   *
   * @default {30000}
   */
  writeTimeout?: number;
  /**
   * Bytes accepted by `send()` and not yet written past which a send is
   * refused with `BufferFullError` instead of buffered: bounds the memory of
   * sends that are not awaited. Awaited sends never come near it. At least
   * `writeHighWaterMark`.
   *
   * @default {16777216}
   */
  maxBufferedAmount?: number;
  /**
   * Milliseconds without sending anything after which this side sends a Ping
   * record, so that the peer (and any NAT between) sees it alive. 0 sends none.
   *
   * @default {15000}
   */
  heartbeatInterval?: number;
  /**
   * Milliseconds without receiving anything after which the connection ends
   * with reason `"idle-timeout"` (unclean): a frozen or vanished peer is
   * noticed. Must exceed the peer's `heartbeatInterval`. 0 never times out.
   *
   * @default {45000}
   */
  idleTimeout?: number;
  /**
   * How the connection computes its cryptography. `"auto"` uses the
   * runtime's synchronous `node:crypto` where it is faster (the handshake,
   * frames up to 4 KiB) and WebCrypto for the rest; `"webcrypto"` uses
   * WebCrypto only, the path every runtime and browser has. The bytes on the
   * wire are the same either way. The environment variable
   * `AESM_CRYPTO=webcrypto` changes the default.
   *
   * @default {"auto"}
   */
  crypto?: "auto" | "webcrypto";
}

/** Default {@linkcode ConnectionOptions.maxBufferedAmount}: 16 MiB. */
export const DEFAULT_MAX_BUFFERED_AMOUNT = 16 * 1024 * 1024;
/** Default {@linkcode ConnectionOptions.heartbeatInterval}: 15 s. */
export const DEFAULT_HEARTBEAT_INTERVAL = 15_000;
/** Default {@linkcode ConnectionOptions.idleTimeout}: 45 s. */
export const DEFAULT_IDLE_TIMEOUT = 45_000;

/** Why and how a connection ended. */
export interface CloseInfo {
  /** The reason, as in the activity log. */
  readonly reason: CloseReason;
  /**
   * Whether it ended with an authenticated close from both sides' point of view (not cut or
   * failed).
   */
  readonly clean: boolean;
  /** Which side ended it. */
  readonly by: "local" | "remote";
  /** A sentence for people. */
  readonly message: string;
  /** The underlying error, if one ended it. */
  readonly error?: unknown;
}

/** Options of `Connection.close()`. */
export interface CloseOptions {
  /**
   * The reason sent to the peer.
   *
   * @default {"normal"}
   */
  reason?: "normal" | "shutdown";
  /**
   * A short explanation sent with it: at most 256 bytes of UTF-8 go to the
   * peer, cut before the character that would cross that limit.
   *
   * @default {""}
   */
  message?: string;
}

/** Options of a `PacketQueue`. */
export interface PacketQueueOptions {
  /**
   * Bytes of queued messages at which the connection stops reading from its
   * socket, so that TCP flow control slows the sender down.
   *
   * @default {4194304}
   */
  highWaterMark?: number;
}

/**
 * Default {@linkcode PacketQueueOptions.highWaterMark}: 4 MiB.
 *
 * @example Queues pause reading at this many bytes unless told otherwise
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_HIGH_WATER_MARK, PacketQueue } from "@aesm/aesm/queue";
 *
 * assert.equal(DEFAULT_HIGH_WATER_MARK, 4 * 1024 * 1024);
 * const queue = new PacketQueue({ highWaterMark: DEFAULT_HIGH_WATER_MARK / 4 });
 * assert.equal(queue.bytes, 0);
 * assert.throws(() => new PacketQueue({ highWaterMark: 0 }), RangeError);
 * ```
 */
export const DEFAULT_HIGH_WATER_MARK = 4 * 1024 * 1024;
