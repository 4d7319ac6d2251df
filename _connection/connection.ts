// Copyright 2026 the aesm authors. MIT license.
/**
 * A connection, the packets it receives and the queue they wait in: three
 * classes that name each other (a packet's connection, a connection's queue,
 * a queue's packets), kept in one module so that no import runs in a circle.
 * It also exports the package's own ways into them, which `connection.ts` and
 * `queue.ts` do not re-export. Private.
 *
 * @module
 */

import type { ByteBudget } from "../_bounds/budget.ts";
import { chain, type MaybePromise, TAGLEN } from "../_crypto/primitives.ts";
import { encryptNow, rekeyNow } from "../_noise/cipher_state.ts";
import type { Arrivals, Entry } from "../_queue/arrivals.ts";
import type { ActivityRecord } from "../_queue/activity_log.ts";
import { AsyncQueue } from "../_queue/async_queue.ts";
import type { ReceiveOptions } from "../_queue/abort.ts";
import type { Transport } from "../_transport/transport.ts";
import { TransportLimits } from "../_wire/frame_limits.ts";
import { FrameOpener } from "../_wire/frame_opener.ts";
import {
  CloseCode,
  type CloseCodeName,
  OversizeError,
  RecordBatcher,
  RecordDecoder,
  type RecordEvent,
  RecordType,
} from "../_wire/record.ts";
import {
  BufferFullError,
  type CloseReason,
  ConnectionClosedError,
  MessageTooLargeError,
  ProtocolError,
  TimeoutError,
} from "../errors.ts";
import { encodeFrameHeader, FRAME_HEADER_LENGTH, FrameType } from "../_wire/frame_format.ts";
import type { Established } from "./establish.ts";
import {
  type CloseInfo,
  type CloseOptions,
  type ConnectionOptions,
  DEFAULT_HEARTBEAT_INTERVAL,
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_BUFFERED_AMOUNT,
  DEFAULT_MAX_MESSAGE_SIZE,
  type PacketQueueOptions,
} from "./options.ts";

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

// The package's own ways into connections and queues, set by the static
// blocks of PacketQueue and Connection. `connection.ts` and `queue.ts` do not
// re-export them.
/** The producer side of `queue`: what its connection pushes packets into. */
export let sinkOf: (queue: PacketQueue) => PacketSink;
/** A queue whose packets also join the server-wide arrival order. */
export let feedingQueue: (
  options: PacketQueueOptions,
  arrivals: Arrivals<Packet>,
  onEmpty: () => void,
  budget?: ByteBudget,
) => PacketQueue;
/** A connection over an established handshake. */
export let openConnection: (init: ConnectionInit) => Connection;
/** Queues an encoded message without waiting for room; throws what `send()` would reject with. */
export let enqueueMessage: (connection: Connection, bytes: Uint8Array, text: boolean) => void;
/** Whether the connection's write buffer is at or past its `writeHighWaterMark`. */
export let isBehind: (connection: Connection) => boolean;
/** Whether `size` more bytes would take the connection's write buffer past `maxBufferedAmount`. */
export let isFull: (connection: Connection, size: number) => boolean;
/** Bytes the connection has written so far: grows while the peer reads. */
export let progress: (connection: Connection) => number;
/** Resolves once the write buffer is under `writeHighWaterMark` (rejects if the connection ends). */
export let drained: (connection: Connection) => Promise<void>;
/** Ends a connection at once with reason `slow-consumer`. */
export let disconnectSlow: (connection: Connection) => void;

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
    sinkOf = (queue) => ({
      push: (packet, size) => queue.#push(packet, size),
      close: () => queue.#close(),
      release: () => queue.#release(),
      space: () => (queue.#space ??= Promise.withResolvers<void>()).promise,
    });
    feedingQueue = (options, arrivals, onEmpty, budget) => {
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

const DEPTH = 4;
let nextId = 1;

/** A sealed frame and the plaintext bytes it carries. */
interface Sealed {
  readonly frame: Uint8Array<ArrayBuffer>;
  readonly size: number;
}
const MAX_CLOSE_MESSAGE = 256;
const RESOLVED = Promise.resolve();
const EMPTY_BODY = new Uint8Array(0);

/**
 * One encrypted connection. Created by `ServerNetwork` and `ClientNetwork`.
 *
 * `send()` resolves once the message is accepted into the connection's
 * write buffer, which holds at most `writeHighWaterMark` bytes: a caller that
 * awaits each send never outruns the socket. A resolved send is delivered
 * unless the connection fails; then `closed` resolves with an unclean
 * reason, and `flush()` and later sends reject with `ConnectionClosedError`.
 *
 * @example Sending, then closing with a message for the peer
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * await using connection = await server.accept();
 * await connection.send("bye");
 * const info = await connection.close({ message: "done" });
 * assert.deepEqual([info.reason, info.clean, info.by], ["normal", true, "local"]);
 * assert.equal(connection.isClosed, true);
 * assert.equal((await client.receive())?.data, "bye");
 * const seen = await client.closed;
 * assert.deepEqual([seen.by, seen.message], ["remote", "done"]);
 * ```
 */
export class Connection implements AsyncIterable<Packet>, AsyncDisposable {
  /**
   * A number no other connection of this process has: tells apart two
   * connections that came from the same address in turn.
   */
  readonly id: number = nextId++;
  /** The peer's address, `host:port` (`[::1]:port` for IPv6). */
  readonly address: string;
  /** This side's address, `host:port`. */
  readonly localAddress: string;
  /** The peer's static public key, as proven in the handshake. */
  readonly remotePublicKey: Uint8Array<ArrayBuffer>;
  /** The Noise handshake hash, the same on both sides: a channel binding. */
  readonly handshakeHash: Uint8Array<ArrayBuffer>;
  /** The largest message the peer accepts. */
  readonly peerMaxMessageSize: number;
  /**
   * The packets received, oldest first (the original's `data`; a client's
   * `retrieved` is this same queue).
   */
  readonly data: PacketQueue;
  /** Resolves once the connection has ended, with why. Never rejects. */
  readonly closed: Promise<CloseInfo>;

  #conn: Transport;
  #established: Established;
  #sink: PacketSink;
  #sharedQueue: boolean;
  #onClose: ((connection: Connection, info: CloseInfo) => void) | undefined;
  #batcher = new RecordBatcher();
  #writeHighWaterMark: number;
  #highWaterMark: number;
  // Bytes read since the connection began closing: bounded by #highWaterMark.
  #readWhileClosing = 0;
  // Bytes of the message being assembled: they count against the mark and the budget.
  #assembling = 0;
  #budget: ByteBudget | undefined;
  #readPaused = false;
  // A batch read from the socket is being opened and delivered: the peer is not idle.
  #readBusy = false;
  #rekeyAfterBytes: number;
  #closeTimeout: number;
  #writeTimeout: number;
  #maxBufferedAmount: number;
  #heartbeatInterval: number;
  #idleTimeout: number;
  #heartbeat: ReturnType<typeof setTimeout> | undefined;
  #lastWrite = performance.now();
  #unwritten = 0;
  #written = 0;
  #writeStarted: number | undefined;
  #writeWatch: ReturnType<typeof setTimeout> | undefined;
  #sinceRekey = 0;
  #pumping = false;
  #drain: PromiseWithResolvers<void> | undefined;
  #flushed: PromiseWithResolvers<void> | undefined;
  #state: "open" | "closing" | "closed" = "open";
  #info: CloseInfo | undefined;
  #readEnded = Promise.withResolvers<void>();
  #lastRead = 0;
  #peerClose = Promise.withResolvers<void>();
  #readDone = false;
  #readError: unknown;
  #peerClosed = false;
  #eof = false;
  #done = Promise.withResolvers<CloseInfo>();

  static {
    openConnection = (init: ConnectionInit) => new Connection(init);
    enqueueMessage = (connection, bytes, text) => connection.#enqueueBytes(bytes, text);
    isBehind = (connection) => connection.#unwritten >= connection.#writeHighWaterMark;
    progress = (connection) => connection.#written;
    drained = (connection) => {
      if (connection.#unwritten < connection.#writeHighWaterMark) return Promise.resolve();
      connection.#drain ??= Promise.withResolvers<void>();
      return connection.#drain.promise;
    };
    isFull = (connection, size) => connection.#unwritten + size > connection.#maxBufferedAmount;
    disconnectSlow = (connection) => {
      const message = `Cannot keep up: ${connection.#unwritten} bytes wait to be written ` +
        "and the peer reads too slowly for a broadcast";
      connection.#fail({ reason: "slow-consumer", clean: false, by: "local", message }, false);
    };
  }

  private constructor(init: ConnectionInit) {
    const { conn, established, options, queue } = init;
    this.#conn = conn;
    this.#established = established;
    this.#onClose = init.onClose;
    this.#budget = init.budget;
    this.data = queue;
    this.#sink = sinkOf(queue);
    this.#sharedQueue = init.sharedQueue ?? false;
    this.address = conn.remoteAddress;
    this.localAddress = conn.localAddress;
    this.remotePublicKey = established.remotePublicKey;
    this.handshakeHash = established.handshakeHash;
    this.peerMaxMessageSize = established.peerMaxMessageSize;
    this.#writeHighWaterMark = options.writeHighWaterMark ?? 1024 * 1024;
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    this.#rekeyAfterBytes = options.rekeyAfterBytes ?? 2 ** 30;
    this.#closeTimeout = options.closeTimeout ?? 5000;
    this.#writeTimeout = options.writeTimeout ?? 30000;
    this.#maxBufferedAmount = options.maxBufferedAmount ?? DEFAULT_MAX_BUFFERED_AMOUNT;
    this.#heartbeatInterval = options.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL;
    this.#idleTimeout = options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT;
    this.closed = this.#done.promise;
    this.#lastRead = performance.now();
    this.#read(options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE);
    this.#scheduleHeartbeat();
  }

  /**
   * Bytes accepted by `send()` (and control records) and not yet written to
   * the socket. Awaited sends keep it under about `writeHighWaterMark`; sends
   * that are not awaited are refused past `maxBufferedAmount`.
   */
  get bufferedAmount(): number {
    return this.#unwritten;
  }

  /**
   * Ends the connection at once: no flush, no waiting for the peer. What was
   * buffered is dropped, pending sends and `flush()` reject, and `closed`
   * resolves with reason `"aborted"` (unclean); the peer sees the connection
   * cut. Does nothing once the connection has ended.
   *
   * @param reason Why, kept as the close's `error` (and its message, if it is a string or an
   * Error).
   *
   * @example Ending a connection to a peer that stopped reading
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
   *
   * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
   * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
   * const connection = await server.accept();
   * connection.abort("not needed any more");
   * const info = await connection.closed;
   * assert.deepEqual([info.reason, info.clean, info.message], ["aborted", false, "not needed any more"]);
   * assert.equal((await client.connection.closed).clean, false); // The client then reconnects.
   * ```
   */
  abort(reason?: unknown): void {
    if (this.#state === "closed") return;
    const message = typeof reason === "string"
      ? reason
      : reason instanceof Error
      ? reason.message
      : "aborted by this side";
    this.#info = {
      reason: "aborted",
      clean: false,
      by: "local",
      message,
      ...(reason === undefined ? {} : { error: reason }),
    };
    this.#finish();
  }

  /** Whether the connection has ended or is closing. */
  get isClosed(): boolean {
    return this.#state !== "open";
  }

  /**
   * Sends one message: a string arrives as a string, bytes as bytes.
   *
   * @param data The message. Bytes are copied before this returns, so the caller may reuse them.
   * @throws {TypeError} If `data` is neither a string nor a `Uint8Array`.
   * @throws {MessageTooLargeError} If the message exceeds the peer's `maxMessageSize`.
   * @throws {ConnectionClosedError} If the connection is closed or fails while the send waits.
   */
  send(data: string | Uint8Array): Promise<void> {
    try {
      this.#enqueue(data);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#unwritten < this.#writeHighWaterMark) return RESOLVED;
    this.#drain ??= Promise.withResolvers<void>();
    return this.#drain.promise;
  }

  #enqueue(data: string | Uint8Array): void {
    const text = typeof data === "string";
    if (!text && !(data instanceof Uint8Array)) {
      throw new TypeError("Cannot send message: expected a string or a Uint8Array");
    }
    this.#enqueueBytes(text ? encoder.encode(data) : data, text);
  }

  #enqueueBytes(bytes: Uint8Array, text: boolean): void {
    this.#checkOpen("send message");
    if (this.#unwritten >= this.#maxBufferedAmount) {
      throw new BufferFullError(this.#unwritten, this.#maxBufferedAmount);
    }
    if (bytes.length > this.peerMaxMessageSize) {
      throw new MessageTooLargeError(bytes.length, this.peerMaxMessageSize);
    }
    const before = this.#batcher.bytes;
    this.#batcher.addMessage(bytes, text, Date.now());
    this.#unwritten += this.#batcher.bytes - before;
    this.#pump();
  }

  /**
   * Waits until every message sent so far is written to the socket.
   *
   * @throws {ConnectionClosedError} If the connection ended before they were written.
   */
  async flush(): Promise<void> {
    if (this.#state === "closed") {
      if (this.#unwritten > 0 || !this.#info!.clean) throw this.#closedError("flush");
      return;
    }
    if (this.#unwritten === 0 && !this.#pumping) return;
    this.#flushed ??= Promise.withResolvers<void>();
    await this.#flushed.promise;
  }

  /**
   * Takes the next packet, waiting for one.
   *
   * @param options A signal to stop waiting.
   * @returns The packet, or `undefined` once the connection has ended and every packet was taken.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  receive(options?: ReceiveOptions): Promise<Packet | undefined> {
    return this.data.receive(options);
  }

  /**
   * Closes the connection cleanly: what was sent is flushed, an
   * authenticated close goes to the peer, and the socket closes once the peer
   * answers or `closeTimeout` passes. Idempotent.
   *
   * @param options The reason and message for the peer.
   * @returns How the connection ended.
   */
  close(options?: CloseOptions): Promise<CloseInfo> {
    if (this.#state === "open") {
      const reason = options?.reason ?? "normal";
      this.#shutdown(
        { reason, clean: true, by: "local", message: "closed by this side" },
        options?.message ?? "",
      );
    }
    return this.closed;
  }

  /** Closes the connection; see {@linkcode Connection.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Takes packets as they arrive until the connection ends. */
  [Symbol.asyncIterator](): AsyncIterator<Packet> {
    return this.data[Symbol.asyncIterator]();
  }

  // One timer per connection, set for the earlier of the next Ping and the
  // idle deadline; re-armed when it fires, not on every message.
  #scheduleHeartbeat(): void {
    if (this.#state !== "open") return;
    const now = performance.now();
    const next = Math.min(
      this.#heartbeatInterval > 0 ? this.#lastWrite + this.#heartbeatInterval : Infinity,
      this.#idleTimeout > 0 ? this.#lastRead + this.#idleTimeout : Infinity,
    );
    if (next === Infinity) return;
    this.#heartbeat = setTimeout(this.#beat, Math.max(1, Math.ceil(next - now)));
  }

  #beat = (): void => {
    this.#heartbeat = undefined;
    if (this.#state !== "open") return;
    const now = performance.now();
    // A paused or busy reader is not a silent peer: we are the ones not reading.
    if (this.#readPaused || this.#readBusy) this.#lastRead = now;
    if (this.#idleTimeout > 0 && now - this.#lastRead >= this.#idleTimeout) {
      const message = `Cannot keep connection: nothing received for ${this.#idleTimeout} ms`;
      const error = new TimeoutError(message);
      return void this.#fail(
        { reason: "idle-timeout", clean: false, by: "local", message, error },
        true,
      );
    }
    if (
      this.#heartbeatInterval > 0 && now - this.#lastWrite >= this.#heartbeatInterval &&
      this.#unwritten === 0
    ) {
      this.#queueControl(RecordType.Ping, EMPTY_BODY);
      this.#lastWrite = now; // Counted from now, or the timer would spin until it is written.
    }
    this.#scheduleHeartbeat();
  };

  #checkOpen(action: string): void {
    if (this.#state !== "open") throw this.#closedError(action);
  }

  #closedError(action: string): ConnectionClosedError {
    const info = this.#info;
    const reason = info?.reason ?? "normal";
    return new ConnectionClosedError(`Cannot ${action}: the connection is closed (${reason})`, {
      reason,
      cause: info?.error,
    });
  }

  // Read side, one loop: frames -> decrypt (several at once) -> records -> queue.
  // It asks for the next read only once the queue has room, so a full queue
  // stops reading the socket and TCP slows the sender.
  async #read(maxMessageSize: number): Promise<void> {
    const { reader, receive } = this.#established;
    const opener = new FrameOpener(receive);
    const limits = new TransportLimits();
    const decoder = new RecordDecoder(maxMessageSize);
    let failure: unknown;
    try {
      while (true) {
        await this.#roomToRead();
        const batch = await reader.read();
        this.#lastRead = performance.now();
        this.#readBusy = true;
        if (this.#state !== "open") this.#countWhileClosing(batch.frames);
        // Frames past a cap are judged by their headers and never decrypted.
        const { allowed, error: capped } = limits.scan(batch.frames);
        const frames = capped === undefined ? batch.frames : batch.frames.slice(0, allowed);
        const { plaintexts, error } = await opener.open(frames);
        for (const plaintext of plaintexts) await this.#decode(decoder, plaintext);
        this.#readBusy = false;
        this.#lastRead = performance.now();
        const stop = error ?? capped ?? batch.error;
        if (stop !== undefined) throw stop;
        if (batch.done) break;
      }
    } catch (error) {
      failure = error;
    }
    this.#onReadEnd(failure);
  }

  async #decode(decoder: RecordDecoder, plaintext: Uint8Array<ArrayBuffer>): Promise<void> {
    const events: RecordEvent[] = [];
    const before = decoder.pending;
    try {
      decoder.decode(plaintext, events);
    } finally {
      this.#hold(decoder.pending - before);
      await this.#onRecords(events);
    }
  }

  // Waits, before a read, until the queue and the server-wide budget have
  // room. A message being assembled counts against the high-water mark,
  // except alone in an empty queue: it must complete before anyone can read.
  // While paused the peer is not silent, we are not listening: a close's
  // idle timer waits, and only its absolute deadline runs. An honest peer's
  // own close timeout then runs out first, so it reports the close as
  // unclean rather than taking our final close for a confirmation.
  async #roomToRead(): Promise<void> {
    for (let room = this.#room(); room !== undefined; room = this.#room()) {
      this.#readPaused = true;
      try {
        await Promise.race([room, this.#readEnded.promise]);
      } finally {
        this.#readPaused = false;
        this.#lastRead = performance.now();
      }
    }
  }

  // What to wait for before the next read, if anything. While closing, the
  // queue's mark applies only past highWaterMark more bytes: the peer only
  // flushes what it had accepted before our Close, and its Close must get
  // through, but a peer that ignores our Close must not fill memory.
  #room(): Promise<void> | undefined {
    if (this.#state === "closed") return undefined;
    const queued = this.data.bytes;
    const marked = this.#state === "open" || this.#readWhileClosing > this.#highWaterMark;
    if (marked && queued > 0 && queued + this.#assembling >= this.#highWaterMark) {
      return this.#sink.space();
    }
    // The budget holds back connections with bytes held; one with none may
    // read (one read's worth), so that a Close or a first message still
    // gets through a full budget.
    if (this.#budget === undefined || (queued === 0 && this.#assembling === 0)) return undefined;
    const overdraw = queued === 0;
    return this.#budget.admits(this, overdraw) ? undefined : this.#budget.changed();
  }

  #hold(bytes: number): void {
    if (bytes === 0 || this.#state === "closed") return;
    this.#assembling += bytes;
    this.#budget?.add(bytes);
    if (this.#assembling === 0) this.#budget?.settle(this);
  }

  #onRecords(events: RecordEvent[]): Promise<void> | undefined {
    let full: Promise<void> | undefined;
    for (const event of events) full = this.#onRecord(event) ?? full;
    // While closing, a full queue does not stop this read's records: the
    // next read waits instead (#room), so everything read is delivered.
    return this.#state === "open" ? full : undefined;
  }

  #countWhileClosing(frames: readonly { readonly body: Uint8Array }[]): void {
    for (const frame of frames) this.#readWhileClosing += FRAME_HEADER_LENGTH + frame.body.length;
  }

  #onRecord(event: RecordEvent): Promise<void> | undefined {
    if (event.kind === "message") {
      if (this.#state === "closed") return undefined;
      return this.#sink.push(new Packet(event.time, event.data, this), event.size);
    }
    const name = (Object.entries(CloseCode).find(([, code]) => code === event.code)?.[0] ??
      "normal") as CloseCodeName;
    this.#peerClosed = true;
    this.#peerClose.resolve();
    if (this.#state === "open") {
      const message = event.reason || `closed by the peer (${name})`;
      this.#shutdown({ reason: name, clean: true, by: "remote", message });
    }
    return undefined;
  }

  #onReadEnd(error: unknown): void {
    if (this.#readDone) return;
    this.#readDone = true;
    this.#eof = error === undefined;
    this.#readError = error;
    this.#readEnded.resolve();
    if (this.#state !== "open") return;
    const { reason, by, tellPeer } = classify(error);
    const message = error === undefined
      ? "the peer cut the connection without a close"
      : reason === "reset"
      ? "the connection was reset"
      : (error as Error).message;
    this.#fail(
      { reason, clean: false, by, message, ...(error === undefined ? {} : { error }) },
      tellPeer,
    );
  }

  #queueClose(reason: CloseReason, message: string): void {
    const code = (CloseCode as Record<string, number>)[reason] ?? CloseCode["internal-error"];
    const text = utf8Prefix(encoder.encode(message), MAX_CLOSE_MESSAGE);
    const body = new Uint8Array(1 + text.length);
    body[0] = code;
    body.set(text, 1);
    this.#queueControl(RecordType.Close, body);
  }

  #queueControl(type: number, body: Uint8Array<ArrayBuffer>): void {
    const before = this.#batcher.bytes;
    this.#batcher.addControl(type, body);
    this.#unwritten += this.#batcher.bytes - before;
    this.#pump();
  }

  // A clean close (PROTOCOL.md section 8). The side that closes first sends
  // its Close, reads on until the peer's Close, and only then sends FIN. The
  // side that answers flushes, sends its Close and FIN, and waits for the
  // first side's FIN: that FIN confirms that everything it sent was read.
  async #shutdown(info: CloseInfo, message = ""): Promise<void> {
    this.#state = "closing";
    this.#sink.release(); // Read on past the high-water mark while closing.
    this.#info = info;
    const first = info.by === "local";
    this.#queueClose(first ? info.reason : "normal", message);
    // The first closer gives up only when the peer has been silent for the
    // close timeout: while the peer's last data still arrives, its Close is
    // on the way, and cutting the connection then would lose data that the
    // peer believes delivered. Trickled bytes cannot stretch it past the
    // absolute deadline of twice the close timeout.
    let timer: ReturnType<typeof setTimeout>;
    const deadline = performance.now() + 2 * this.#closeTimeout;
    const watch = () => {
      const now = performance.now();
      const idle = this.#readPaused || this.#readBusy ? 0 : now - this.#lastRead;
      const wait = Math.min(this.#closeTimeout - idle, deadline - now);
      if (first && wait > 0) timer = setTimeout(watch, wait);
      else if (first && !this.#peerClosed) this.#giveUp();
      else this.#finish();
    };
    this.#lastRead = performance.now();
    timer = setTimeout(watch, this.#closeTimeout);
    try {
      await this.flush();
      if (first) await Promise.race([this.#peerClose.promise, this.#readEnded.promise]);
      await this.#conn.closeWrite();
      if (!first) await this.#readEnded.promise;
    } catch {
      // Ending anyway: #finish reports what was not written.
    } finally {
      clearTimeout(timer);
      this.#finish();
    }
  }

  // The first closer stops waiting for the peer's Close. Its FIN must not
  // pass for a confirmation (PROTOCOL.md section 8): a second Close record
  // (timeout) goes first, which the peer cannot take for a clean end, since
  // nothing may follow a Close.
  #giveUp(): Promise<void> {
    if (this.#state === "closed") return Promise.resolve();
    return this.#sendCloseAndFinish("timeout");
  }

  // An unclean end: tell the peer why if we can, then cut.
  async #fail(info: CloseInfo, tellPeer: boolean): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closing";
    this.#sink.release(); // Read on past the high-water mark while closing.
    this.#info ??= info;
    if (!tellPeer) return this.#finish();
    await this.#sendCloseAndFinish(info.reason);
  }

  // Queues a Close record, gives it a short while to go out, then ends.
  async #sendCloseAndFinish(reason: CloseReason): Promise<void> {
    this.#queueClose(reason, "");
    const timer = setTimeout(() => this.#finish(), Math.min(this.#closeTimeout, 1000));
    try {
      await this.flush();
    } catch {
      // The close record is a courtesy.
    } finally {
      clearTimeout(timer);
      this.#finish();
    }
  }

  #finish(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#writeWatch);
    let info = this.#info!;
    const confirmed = info.by === "local" ? this.#peerClosed : this.#eof;
    if (info.clean && !confirmed) {
      // The peer's Close (or, answering, its final FIN) never came.
      const error = this.#readError;
      const reason = error !== undefined
        ? classify(error).reason
        : this.#eof
        ? "truncated"
        : "timeout";
      const message = reason === "timeout"
        ? "the peer did not answer the close in time"
        : reason === "protocol-error"
        ? (error as Error).message
        : "the connection ended without the peer's close";
      info = this.#info = {
        ...info,
        clean: false,
        reason,
        message,
        ...(error === undefined ? {} : { error }),
      };
    }
    clearTimeout(this.#heartbeat);
    this.#conn.close();
    this.#budget?.add(-this.#assembling);
    this.#budget?.settle(this);
    this.#assembling = 0;
    if (!this.#sharedQueue) this.#sink.close(); // A shared queue's owner ends it.
    this.#readEnded.resolve();
    const error = this.#closedError("send message");
    const unsent = this.#unwritten > 0;
    this.#drain?.reject(error);
    if (unsent) this.#flushed?.reject(error);
    else this.#flushed?.resolve();
    this.#drain?.promise.catch(() => {});
    this.#flushed?.promise.catch(() => {});
    this.#drain = this.#flushed = undefined;
    this.#done.resolve(info);
    this.#onClose?.(this, info);
  }

  // Write side: batches -> encrypt (up to DEPTH at once, in nonce order) -> socket.
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    this.#runPump();
  }

  // A small frame is sealed synchronously (see _crypto/primitives.ts) and written
  // without waiting for anything but the socket; larger ones seal up to
  // DEPTH at once on WebCrypto's threads.
  async #runPump(): Promise<void> {
    const inflight: MaybePromise<Sealed>[] = [];
    // A rekey frame is a barrier: no later frame is sealed before the rekey.
    let barrier: Promise<unknown> | undefined;
    try {
      await Promise.resolve();
      while (this.#state !== "closed") {
        if (barrier !== undefined && inflight.length === 0) {
          await barrier;
          barrier = undefined;
        }
        while (barrier === undefined && inflight.length < DEPTH) {
          const plaintext = this.#batcher.take();
          if (plaintext === undefined) break;
          this.#sinceRekey += plaintext.length;
          const rekey = this.#sinceRekey >= this.#rekeyAfterBytes;
          if (rekey) this.#sinceRekey = 0;
          const sealing = this.#seal(plaintext, rekey);
          if (sealing instanceof Promise) {
            sealing.catch(() => {});
            if (rekey) barrier = sealing;
          }
          inflight.push(sealing);
        }
        const next = inflight.shift();
        if (next === undefined) break;
        const { frame, size } = next instanceof Promise ? await next : next;
        await this.#write(frame);
        this.#unwritten -= size;
        this.#written += size;
        if (this.#unwritten < this.#writeHighWaterMark) {
          this.#drain?.resolve();
          this.#drain = undefined;
        }
      }
    } catch (error) {
      const timeout = error instanceof TimeoutError;
      this.#fail({
        reason: timeout ? "timeout" : "reset",
        clean: false,
        by: timeout ? "local" : "remote",
        message: timeout ? error.message : "the connection failed while writing",
        error,
      }, false);
    } finally {
      this.#pumping = false;
      if (this.#unwritten === 0) {
        this.#flushed?.resolve();
        this.#flushed = undefined;
      }
    }
  }

  #seal(plaintext: Uint8Array<ArrayBuffer>, rekey: boolean): MaybePromise<Sealed> {
    const { send } = this.#established;
    const header = encodeFrameHeader(
      rekey ? FrameType.TransportRekey : FrameType.Transport,
      plaintext.length + TAGLEN,
    );
    const frameOf = (ciphertext: Uint8Array): Sealed => {
      const frame = new Uint8Array(header.length + ciphertext.length);
      frame.set(header);
      frame.set(ciphertext, header.length);
      return { frame, size: plaintext.length };
    };
    const sealed = encryptNow(send, header, plaintext);
    if (!rekey) return chain(sealed, frameOf);
    return chain(sealed, (ciphertext) => chain(rekeyNow(send), () => frameOf(ciphertext)));
  }

  async #write(frame: Uint8Array<ArrayBuffer>): Promise<void> {
    // A write that makes no progress for writeTimeout ends the connection,
    // which makes the pending write reject. One watchdog timer serves every
    // write (a timer per write costs more than sealing a small frame).
    this.#writeStarted = performance.now();
    this.#writeWatch ??= setTimeout(this.#watchWrite, this.#writeTimeout);
    try {
      await this.#conn.write(frame);
      this.#lastWrite = performance.now();
    } finally {
      this.#writeStarted = undefined;
    }
  }

  #watchWrite = (): void => {
    this.#writeWatch = undefined;
    if (this.#writeStarted === undefined || this.#state === "closed") return;
    const waited = performance.now() - this.#writeStarted;
    if (waited >= this.#writeTimeout) return this.#writeTimedOut();
    this.#writeWatch = setTimeout(this.#watchWrite, this.#writeTimeout - waited);
  };

  #writeTimedOut(): void {
    const message = `Cannot write: the peer read nothing for ${this.#writeTimeout} ms`;
    const error = new TimeoutError(message);
    this.#fail({ reason: "timeout", clean: false, by: "local", message, error }, false);
  }
}

/** The longest prefix of UTF-8 `bytes` of at most `max` bytes that ends on a character boundary. */
function utf8Prefix(bytes: Uint8Array<ArrayBuffer>, max: number): Uint8Array<ArrayBuffer> {
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--; // A continuation byte: back up.
  return bytes.subarray(0, end);
}

/** How a read-side end maps to a close reason, who caused it, and whether to tell the peer. */
function classify(
  error: unknown,
): { reason: CloseReason; by: "local" | "remote"; tellPeer: boolean } {
  if (error === undefined) return { reason: "truncated", by: "remote", tellPeer: false };
  if (error instanceof OversizeError) {
    return { reason: "message-too-large", by: "local", tellPeer: true };
  }
  if (error instanceof ProtocolError) {
    return error.truncated
      ? { reason: "truncated", by: "remote", tellPeer: false }
      : { reason: "protocol-error", by: "local", tellPeer: true };
  }
  return { reason: "reset", by: "remote", tellPeer: false };
}

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
