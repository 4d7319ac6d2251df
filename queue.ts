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

import { AsyncQueue } from "./_queue/async_queue.ts";
import type { Arrivals, Entry } from "./_queue/arrivals.ts";
import type { ByteBudget } from "./_bounds/budget.ts";
import { internals } from "./_connection/internal.ts";
import type { Connection } from "./connection.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/**
 * A received message: when it was sent, what it holds, and the connection it
 * came on. Reply with `packet.connection.send(...)` (or
 * `server.sendTo(data, packet)`): that reaches the sender even when another
 * connection later comes from the same address.
 *
 * @example Reading a packet as text, bytes or JSON, and replying
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * await client.send(JSON.stringify({ move: "e4" }));
 * const packet = (await server.receive())!;
 * assert.equal(packet.isText, true);
 * assert.deepEqual(packet.json(), { move: "e4" });
 * assert.deepEqual(packet.bytes(), new TextEncoder().encode('{"move":"e4"}'));
 * assert.deepEqual(packet.publicKey, client.publicKey);
 * await packet.connection.send("ok");
 * assert.equal((await client.receive())?.text(), "ok");
 * ```
 */
export class Packet {
  /** When the sender sent it: milliseconds since the Unix epoch, by the sender's clock. */
  readonly time: number;
  /** The message: a string if it was sent as one, else bytes. See `text()`, `bytes()`, `json()`. */
  readonly data: string | Uint8Array<ArrayBuffer>;
  /**
   * The remote address it came from, `host:port` (`[::1]:port` for IPv6). Two
   * connections can share one address in turn; `connection` tells them apart.
   */
  readonly address: string;
  #connection: Connection;

  /**
   * Makes a packet. Connections make them; there is no need to call this.
   *
   * @param time The sender's send time, in milliseconds since the Unix epoch.
   * @param data The message.
   * @param connection The connection it arrived on.
   */
  constructor(time: number, data: string | Uint8Array<ArrayBuffer>, connection: Connection) {
    this.time = time;
    this.data = data;
    this.address = connection.address;
    this.#connection = connection;
  }

  /** The connection it arrived on: reply with `packet.connection.send(...)`. */
  get connection(): Connection {
    return this.#connection;
  }

  /** The sender's static public key, as proven in its handshake. */
  get publicKey(): Uint8Array<ArrayBuffer> {
    return this.#connection.remotePublicKey;
  }

  /** Whether it was sent as a string (then `data` is a string). */
  get isText(): boolean {
    return typeof this.data === "string";
  }

  /**
   * The message as a string: the text sent, or bytes decoded as UTF-8.
   *
   * @returns The text.
   * @throws {TypeError} If the message is bytes that are not valid UTF-8.
   */
  text(): string {
    if (typeof this.data === "string") return this.data;
    try {
      return decoder.decode(this.data);
    } catch (error) {
      throw new TypeError("Cannot read packet as text: its bytes are not valid UTF-8", {
        cause: error,
      });
    }
  }

  /**
   * The message as bytes: the bytes sent, or the text encoded as UTF-8.
   *
   * @returns The bytes (the packet's own for a binary message: copy before changing them).
   */
  bytes(): Uint8Array<ArrayBuffer> {
    return typeof this.data === "string" ? encoder.encode(this.data) : this.data;
  }

  /**
   * The message parsed as JSON (from its text).
   *
   * @typeParam T The type you expect; nothing checks it.
   * @returns The parsed value.
   * @throws {SyntaxError} If the text is not JSON.
   * @throws {TypeError} If the message is bytes that are not valid UTF-8.
   */
  json<T = unknown>(): T {
    return JSON.parse(this.text());
  }
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
  #budget: ByteBudget | undefined;

  static {
    internals.sinkOf = (queue) => ({
      push: (packet, size) => queue.#push(packet, size),
      close: () => queue.#close(),
      release: () => queue.#release(),
      space: () => (queue.#space ??= Promise.withResolvers<void>()).promise,
    });
    internals.feedingQueue = (options, arrivals, onEmpty, budget) => {
      const queue = new PacketQueue(options);
      queue.#arrivals = arrivals;
      queue.#onEmpty = onEmpty;
      queue.#budget = budget;
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
  constructor(options?: PacketQueueOptions) {
    const highWaterMark = options?.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
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
  async receive(options?: ReceiveOptions): Promise<Packet | undefined> {
    const entry = await this.#queue.receive(options?.signal);
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
  wait(options?: ReceiveOptions): Promise<boolean> {
    return this.#queue.wait(options?.signal);
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
    this.#budget?.add(size);
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
    this.#budget?.add(-entry.size);
    if (forget) this.#arrivals?.forget(entry);
    if (this.#bytes < this.#highWaterMark) this.#release();
    if (this.length === 0 && this.closed) this.#onEmpty?.();
  }

  #release(): void {
    this.#space?.resolve();
    this.#space = undefined;
  }
}
