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

import { AsyncQueue } from "./_async_queue.ts";
import type { Arrivals, Entry } from "./_arrivals.ts";
import { internals } from "./_internal.ts";

/** A received message. */
export interface Packet {
  /** When the sender sent it: milliseconds since the Unix epoch, by the sender's clock. */
  readonly time: number;
  /** The message: a string if it was sent as one, else bytes. */
  readonly data: string | Uint8Array<ArrayBuffer>;
  /** The remote address it came from, `host:port` (`[::1]:port` for IPv6). */
  readonly address: string;
}

/** Options of {@linkcode PacketQueue}. */
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

/** Options of the waiting methods. */
export interface ReceiveOptions {
  /** Aborts the wait; the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * The packets received on one connection, oldest first. Taking a packet
 * (`getData()`, `receive()`, iteration, or the server's ordinal view) removes
 * it everywhere. The queue holds up to `highWaterMark` bytes before its
 * connection pauses reading; nothing is ever dropped.
 *
 * @example Looking without taking
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * await server.accept();
 * await server.sendAll("hello");
 * await client.retrieved.wait();
 * assert.equal(client.retrieved.at(0)?.data, "hello");
 * assert.equal(client.retrieved.length, 1);
 * assert.equal(client.retrieved.getData()?.data, "hello");
 * assert.equal(client.retrieved.length, 0);
 * ```
 */
export class PacketQueue implements AsyncIterable<Packet> {
  #queue = new AsyncQueue<Entry<Packet>>();
  #arrivals: Arrivals<Packet> | undefined;
  #highWaterMark: number;
  #bytes = 0;
  #space: PromiseWithResolvers<void> | undefined;
  #onEmpty: (() => void) | undefined;

  static {
    internals.sinkOf = (queue) => ({
      push: (packet, size) => queue.#push(packet, size),
      close: () => queue.#close(),
      release: () => queue.#release(),
    });
    internals.feedingQueue = (options, arrivals, onEmpty) => {
      const queue = new PacketQueue(options);
      queue.#arrivals = arrivals;
      queue.#onEmpty = onEmpty;
      return queue;
    };
  }

  /**
   * Creates an empty queue. Connections make their own; there is no need to
   * call this.
   *
   * @param options The high-water mark; {@linkcode DEFAULT_HIGH_WATER_MARK} if omitted.
   * @throws {RangeError} If `highWaterMark` is not a positive integer.
   */
  constructor(options: PacketQueueOptions = {}) {
    const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    if (!Number.isSafeInteger(highWaterMark) || highWaterMark < 1) {
      throw new RangeError(
        `Cannot create queue: highWaterMark must be a positive integer, got ${highWaterMark}`,
      );
    }
    this.#highWaterMark = highWaterMark;
  }

  /** How many packets are queued. */
  get length(): number {
    return this.#queue.length;
  }

  /** How many message bytes are queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the connection has ended: no packet will arrive beyond those queued. */
  get closed(): boolean {
    return this.#queue.closed;
  }

  /**
   * Looks at the packet at `index` without taking it. A negative index counts from the newest.
   *
   * @param index The position, 0 for the oldest.
   * @returns The packet, or `undefined` if there is none there.
   */
  at(index: number): Packet | undefined {
    return this.#queue.at(index)?.packet;
  }

  /**
   * Takes the oldest packet (the original's `getData()`).
   *
   * @returns The packet, or `undefined` if the queue is empty.
   */
  getData(): Packet | undefined {
    const entry = this.#queue.shift();
    if (entry === undefined) return undefined;
    this.#taken(entry, true);
    return entry.packet;
  }

  /**
   * Takes the oldest packet, waiting for one to arrive.
   *
   * @param options A signal to stop waiting.
   * @returns The packet, or `undefined` once the connection has ended and the queue is empty.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  async receive(options: ReceiveOptions = {}): Promise<Packet | undefined> {
    const entry = await this.#queue.receive(options.signal);
    if (entry === undefined) return undefined;
    if (!entry.taken) this.#taken(entry, true);
    return entry.packet;
  }

  /**
   * Waits until at least one packet is queued, without taking it.
   *
   * @param options A signal to stop waiting.
   * @returns Whether a packet is queued: `false` once the connection has ended with the queue
   * empty.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  wait(options: ReceiveOptions = {}): Promise<boolean> {
    return this.#queue.wait(options.signal);
  }

  /** Takes packets as they arrive, until the connection ends and the queue is empty. */
  async *[Symbol.asyncIterator](): AsyncIterator<Packet> {
    while (true) {
      const packet = await this.receive();
      if (packet === undefined) return;
      yield packet;
    }
  }

  #push(packet: Packet, size: number): Promise<void> | undefined {
    const entry: Entry<Packet> = { packet, size, taken: false, detach: this.#detachEntry };
    if (this.#queue.hasWaiter) {
      entry.taken = true;
      this.#queue.push(entry);
      return undefined;
    }
    if (this.#arrivals?.hasWaiter) {
      this.#arrivals.add(entry);
      return undefined;
    }
    this.#queue.push(entry);
    this.#bytes += size;
    this.#arrivals?.add(entry);
    if (this.#bytes < this.#highWaterMark) return undefined;
    this.#space ??= Promise.withResolvers<void>();
    return this.#space.promise;
  }

  #close(): void {
    this.#queue.close();
    this.#release();
    if (this.length === 0) this.#onEmpty?.();
  }

  // One function for every entry of this queue, not a closure per packet.
  #detachEntry = (entry: Entry<Packet>): void => this.#detach(entry);

  #detach(entry: Entry<Packet>): void {
    this.#queue.removeEnd(entry);
    this.#taken(entry, false);
  }

  #taken(entry: Entry<Packet>, forget: boolean): void {
    entry.taken = true;
    this.#bytes -= entry.size;
    if (forget) this.#arrivals?.forget(entry);
    if (this.#bytes < this.#highWaterMark) this.#release();
    if (this.length === 0 && this.closed) this.#onEmpty?.();
  }

  #release(): void {
    this.#space?.resolve();
    this.#space = undefined;
  }
}
