// Copyright 2026 the aesm authors. MIT license.
/**
 * Package-internal hooks between public classes, kept out of the public API.
 * Private.
 *
 * @module
 */

import type { Established } from "./establish.ts";
import type { CloseInfo, Connection, ConnectionOptions } from "../connection.ts";
import type { Packet, PacketQueue, PacketQueueOptions } from "../queue.ts";
import type { ActivityLog, ActivityRecord } from "../activity.ts";
import type { Arrivals } from "../_queue/arrivals.ts";
import type { ByteBudget } from "../_bounds/budget.ts";
import type { Transport } from "../_transport/transport.ts";

/** What a server or client passes to make a connection. */
export interface ConnectionInit {
  readonly conn: Transport;
  readonly established: Established;
  readonly options: ConnectionOptions;
  readonly queue: PacketQueue;
  /**
   * Whether the queue outlives the connection (a reconnecting client's): the
   * connection then leaves it open when it ends.
   */
  readonly sharedQueue?: boolean;
  readonly onClose?: (connection: Connection, info: CloseInfo) => void;
  /** The server-wide budget of received bytes held, if any. */
  readonly budget?: ByteBudget;
}

/** The producer side of a packet queue. */
export interface PacketSink {
  /** Queues a packet; the promise, if any, settles once the queue is below its high-water mark. */
  push(packet: Packet, size: number): Promise<void> | undefined;
  /** Marks the end of the connection's packets. */
  close(): void;
  /** Settles a pending `push` promise at once, whatever the queue holds. */
  release(): void;
  /** Resolves the next time the queue falls below its high-water mark, or is released. */
  space(): Promise<void>;
}

/** The writer's side of an activity log. */
export interface ActivityWriter {
  add(record: ActivityRecord): void;
  close(): void;
}

/** Filled in by the public modules when they load (a static block in each class). */
export const internals: {
  sinkOf?: (queue: PacketQueue) => PacketSink;
  feedingQueue?: (
    options: PacketQueueOptions,
    arrivals: Arrivals<Packet>,
    onEmpty: () => void,
    budget?: ByteBudget,
  ) => PacketQueue;
  openConnection?: (init: ConnectionInit) => Connection;
  /** Queues an encoded message without waiting for room; throws what `send()` would reject with. */
  enqueueMessage?: (connection: Connection, bytes: Uint8Array, text: boolean) => void;
  /** Whether the connection's write buffer is at or past its `writeHighWaterMark`. */
  isBehind?: (connection: Connection) => boolean;
  /** Whether `size` more bytes would take the connection's write buffer past `maxBufferedAmount`. */
  isFull?: (connection: Connection, size: number) => boolean;
  /** Bytes the connection has written so far: grows while the peer reads. */
  progress?: (connection: Connection) => number;
  /** Resolves once the write buffer is under `writeHighWaterMark` (rejects if the connection ends). */
  drained?: (connection: Connection) => Promise<void>;
  /** Ends a connection at once with reason `slow-consumer`. */
  disconnectSlow?: (connection: Connection) => void;
  writerOf?: (log: ActivityLog) => ActivityWriter;
} = {};

/** The activity record of a connection's end. */
export function disconnectedRecord(connection: Connection, info: CloseInfo): ActivityRecord {
  return {
    address: connection.address,
    accepted: true,
    time: Date.now(),
    event: "disconnected",
    reason: info.reason,
    clean: info.clean,
    message: info.message,
    publicKey: connection.remotePublicKey,
  };
}
