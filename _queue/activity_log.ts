// Copyright 2026 the aesm authors. MIT license.
/**
 * The log of connection activity, and its writer's side, which servers and
 * clients hold. `activity.ts` re-exports the public names. Private.
 *
 * @module
 */

import { AsyncQueue } from "./async_queue.ts";
import type { ReceiveOptions } from "./abort.ts";
import { escapeText } from "../_bounds/escape.ts";
import type { CloseReason, RefuseReason } from "../errors.ts";

/** The writer's side of an activity log: what servers and clients record. */
export interface ActivityWriter {
  add(record: ActivityRecord): void;
  close(): void;
}

/** The writer of a log; set by ActivityLog's static block. `activity.ts` does not re-export it. */
export let activityWriter: (log: ActivityLog) => ActivityWriter;

/**
 * One entry of the activity log. A server logs `connected`, `refused` and
 * `disconnected`, and in a cluster `node-joined`, `node-left`,
 * `cluster-down` and `cluster-up`; a client logs `connected`,
 * `disconnected`, `reconnecting` and `gave-up`.
 */
export interface ActivityRecord {
  /**
   * The peer's address, `host:port` (for a client, the server's); for a
   * cluster event, the node's id.
   */
  readonly address: string;
  /**
   * Whether a connection was accepted: false for a refusal, and for a
   * client's `reconnecting` and `gave-up`.
   */
  readonly accepted: boolean;
  /** When it happened: milliseconds since the Unix epoch, by this side's clock. */
  readonly time: number;
  /**
   * What happened. A server: a client `connected`, was `refused` or
   * `disconnected`; in a cluster, another node joined (`node-joined`) or left
   * or went silent (`node-left`), or this node's link to the bus went down
   * (`cluster-down`) or came back (`cluster-up`, the cluster has healed). A
   * client: `connected`, `disconnected`, `reconnecting`, `gave-up`.
   */
  readonly event:
    | "connected"
    | "refused"
    | "disconnected"
    | "reconnecting"
    | "gave-up"
    | "node-joined"
    | "node-left"
    | "cluster-down"
    | "cluster-up";
  /**
   * Why it was refused or ended; absent for `connected`. For a client's
   * `reconnecting` and `gave-up`: why the connection ended, or why the last
   * attempt failed (absent when the TCP connect failed).
   */
  readonly reason?: RefuseReason | CloseReason;
  /** For `disconnected`: whether it ended with an authenticated close. */
  readonly clean?: boolean;
  /** A sentence for people. */
  readonly message: string;
  /** The peer's static public key, once proven. */
  readonly publicKey?: Uint8Array<ArrayBuffer>;
  /**
   * For a record another node of the cluster shared (`cluster.shareActivity`):
   * that node's id. Absent for this server's own records.
   */
  readonly node?: string;
  /**
   * For a record that sums up a burst of refusals: how many refusals it
   * stands for (the first of a burst has its own record, without `count`).
   */
  readonly count?: number;
  /**
   * A client's attempt number, from 1: on `reconnecting` the attempt to come,
   * on `gave-up` the last one made, on `connected` the attempt that connected
   * (absent for the first connect).
   */
  readonly attempt?: number;
  /** On a client's `reconnecting`: milliseconds it waits before the attempt. */
  readonly delay?: number;
  /** On a client's `reconnecting` and `gave-up`: the last attempt's error, if one failed. */
  readonly error?: unknown;
}

/**
 * Default {@linkcode ActivityLog} capacity: the most unread records a server keeps.
 *
 * @example Logs keep this many unread records unless told otherwise
 * ```ts
 * import assert from "node:assert/strict";
 * import { ActivityLog, DEFAULT_ACTIVITY_LIMIT } from "@aesm/aesm/activity";
 *
 * assert.equal(DEFAULT_ACTIVITY_LIMIT, 10_000);
 * const log = new ActivityLog(); // Holds up to DEFAULT_ACTIVITY_LIMIT unread records.
 * assert.equal(log.length, 0);
 * assert.throws(() => new ActivityLog(0), RangeError);
 * ```
 */
export const DEFAULT_ACTIVITY_LIMIT = 10_000;

/**
 * The activity log: the oldest unread record first. It keeps at most `limit`
 * unread records; past that records are dropped and counted in `dropped`,
 * so that a flood of refused connections (or a client that keeps failing to
 * reconnect) cannot grow memory. A refusal never
 * pushes out another record: once the log is full a new refusal is dropped,
 * and a new connection record pushes out the oldest refusal first (the
 * oldest record only when no refusal is left). Messages are escaped: control
 * and bidirectional characters (a peer's close message may hold them) appear
 * as `\uXXXX`.
 *
 * @example A full log drops its oldest records
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * const hostname = "127.0.0.1";
 * await using server = await ServerNetwork.listen({ hostname, port: 0, activityLimit: 1 });
 * await using _first = await ClientNetwork.connect({ hostname, port: server.port });
 * await server.accept();
 * await using second = await ClientNetwork.connect({ hostname, port: server.port });
 * await server.accept();
 * assert.equal(server.activity.length, 1);
 * assert.equal(server.activity.dropped, 1);
 * assert.equal(server.activity.take()?.address, second.localAddress);
 * ```
 */
export class ActivityLog implements AsyncIterable<ActivityRecord> {
  #queue = new AsyncQueue<ActivityRecord>();
  #limit: number;
  #dropped = 0;

  static {
    activityWriter = (log) => ({
      add: (record) => log.#add(record),
      close: () => log.#queue.close(),
    });
  }

  /**
   * Creates an empty log. Servers and clients make their own.
   *
   * @param limit The most unread records kept; {@linkcode DEFAULT_ACTIVITY_LIMIT} if omitted.
   * @throws {RangeError} If `limit` is not a positive integer.
   */
  constructor(limit?: number) {
    limit ??= DEFAULT_ACTIVITY_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(
        `Cannot create activity log: limit must be a positive integer, got ${limit}`,
      );
    }
    this.#limit = limit;
  }

  /** How many records are unread. */
  get length(): number {
    return this.#queue.length;
  }

  /** How many unread records were dropped because the log was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Takes the oldest unread record (the original's `connections.activity()`).
   *
   * @returns The record, or `undefined` if there is none.
   */
  take(): ActivityRecord | undefined {
    return this.#queue.shift();
  }

  /**
   * Takes the oldest unread record, waiting for one, as an async iterator's
   * `next()`: `{ value, done: false }`, or `{ value: undefined, done: true }`
   * once its server or client has ended and the log is read. To take a record without
   * waiting, use {@linkcode ActivityLog.take}.
   *
   * @param options A signal to stop waiting.
   * @returns The iterator result.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  async next(options?: ReceiveOptions): Promise<IteratorResult<ActivityRecord, undefined>> {
    const record = await this.receive(options);
    return record === undefined ? { value: undefined, done: true } : { value: record, done: false };
  }

  /**
   * Looks at the unread record at `index` without taking it.
   *
   * @param index The position, 0 for the oldest; negative counts from the newest.
   * @returns The record, if any.
   */
  at(index: number): ActivityRecord | undefined {
    return this.#queue.at(index);
  }

  /**
   * Takes the oldest unread record, waiting for one.
   *
   * @param options A signal to stop waiting.
   * @returns The record, or `undefined` once its server or client has ended and the log is read.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  receive(options?: ReceiveOptions): Promise<ActivityRecord | undefined> {
    return this.#queue.receive(options?.signal);
  }

  /**
   * Waits until a record is unread, without taking it.
   *
   * @param options A signal to stop waiting.
   * @returns Whether a record is unread: `false` once its server or client has ended with none
   * left.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  wait(options?: ReceiveOptions): Promise<boolean> {
    return this.#queue.wait(options?.signal);
  }

  /** Takes records as they come, until its server or client ends and the log is read. */
  [Symbol.asyncIterator](): AsyncIterator<ActivityRecord> {
    return this.#queue.drain();
  }

  #add(record: ActivityRecord): void {
    if (this.#queue.length >= this.#limit) {
      this.#dropped++;
      if (record.event === "refused") return;
      if (!this.#queue.removeFirst(isRefusal)) this.#queue.shift();
    }
    const message = escapeText(record.message);
    this.#queue.push(message === record.message ? record : { ...record, message });
  }
}

function isRefusal(record: ActivityRecord): boolean {
  return record.event === "refused";
}
