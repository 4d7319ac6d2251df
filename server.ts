// Copyright 2026 the aesm authors. MIT license.
/**
 * The server: listens on TCP, runs the handshake with every client, and
 * keeps each connection's packets, a server-wide view in arrival order, and
 * the activity log.
 *
 * @example The idiomatic API
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * await client.send("ping");
 * for await (const packet of server) {
 *   assert.equal(packet.data, "ping");
 *   await server.sendTo("pong", packet.address);
 *   break;
 * }
 * assert.equal((await client.receive())?.data, "pong");
 * ```
 *
 * @example The original's API
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * const server = new ServerNetwork("127.0.0.1", 0);
 * await server.ready;
 * const client = new ClientNetwork("127.0.0.1", server.port);
 * await client.sendData("hello");
 * await server.connections.wait();
 * const packet = server.connections.getDataOrdinal();
 * assert.equal(packet?.data, "hello");
 * assert.equal(server.connections.activity()?.event, "connected");
 * await server.sendAll("bye");
 * await client.retrieved.wait();
 * assert.equal(client.retrieved.getData()?.data, "bye");
 * await client.stop();
 * await server.stop();
 * ```
 *
 * @module
 */

import { Arrivals } from "./_arrivals.ts";
import { AsyncQueue } from "./_async_queue.ts";
import {
  checkHostname,
  checkPort,
  type CommonConfig,
  commonConfig,
  loadKeyPair,
  positive,
} from "./_config.ts";
import { encodeRefuse, establishServer, withDeadline } from "./_establish.ts";
import { abortable } from "./_abort.ts";
import { type ActivityWriter, internals } from "./_internal.ts";
import { closeQuietly, sendAndClose } from "./_socket.ts";
import { ActivityLog, type ActivityRecord, DEFAULT_ACTIVITY_LIMIT } from "./activity.ts";
import type { KeyPair } from "./cipher.ts";
import {
  type CloseInfo,
  type Connection,
  type ConnectionOptions,
  formatAddress,
} from "./connection.ts";
import { MessageTooLargeError, type RefuseReason, TimeoutError } from "./errors.ts";
import type { Packet, ReceiveOptions } from "./queue.ts";
import "./queue.ts"; // Registers the queue internals this module uses.

export type { ActivityRecord } from "./activity.ts";

/** Options of {@linkcode ServerNetwork}. */
export interface ServerOptions extends ConnectionOptions {
  /**
   * The address to listen on.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * The port to listen on; 0 picks a free one (read it from `port`).
   *
   * @default {0}
   */
  port?: number;
  /**
   * The application name, bound into the handshake: clients must use the same.
   *
   * @default {"aesm"}
   */
  applicationName?: string;
  /** The server's static key pair; generated when absent. Share its public key for pinning. */
  keyPair?: KeyPair;
  /** A 32-byte pre-shared key; clients must have the same one. */
  psk?: Uint8Array;
  /** Client public keys allowed in; others are refused with reason `"unauthorized"`. */
  allowedPublicKeys?: readonly Uint8Array[];
  /** Client hostnames (IP addresses) allowed in; others are refused before the handshake. */
  allowedHostnames?: readonly string[];
  /**
   * Decides whether a client may connect, once its public key is proven.
   * Runs after the allow-lists.
   */
  authorize?: (
    client: { publicKey: Uint8Array<ArrayBuffer>; address: string },
  ) => boolean | Promise<boolean>;
  /**
   * Connections open or in handshake at once; more are refused with reason `"server-full"`.
   *
   * @default {1024}
   */
  maxConnections?: number;
  /**
   * Milliseconds a client has to complete the handshake.
   *
   * @default {10000}
   */
  handshakeTimeout?: number;
  /**
   * Unread activity records kept.
   *
   * @default {10000}
   */
  activityLimit?: number;
  /**
   * The listen backlog, for bursts of connects.
   *
   * @default {1024}
   */
  tcpBacklog?: number;
}

let newConnections: (
  table: Map<string, Connection>,
  arrivals: Arrivals<Packet>,
  activity: ActivityLog,
) => Connections;

/**
 * The server's connections, keyed by remote address, and the server-wide
 * view of their packets in arrival order.
 *
 * @example Taking packets across connections in arrival order
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * const hostname = "127.0.0.1";
 * await using server = await ServerNetwork.listen({ hostname, port: 0 });
 * await using a = await ClientNetwork.connect({ hostname, port: server.port });
 * const fromA = await server.accept();
 * await using b = await ClientNetwork.connect({ hostname, port: server.port });
 * const fromB = await server.accept();
 * await a.send("one");
 * await fromA.data.wait();
 * await b.send("two");
 * await fromB.data.wait();
 * assert.deepEqual([server.connections.size, server.connections.length], [2, 2]);
 * assert.ok(server.connections.has(b.localAddress));
 * assert.equal(server.connections.getDataOrdinal(false)?.data, "two");
 * assert.equal(server.connections.getDataOrdinal()?.data, "one");
 * ```
 */
export class Connections implements Iterable<Connection> {
  #table: Map<string, Connection>;
  #arrivals: Arrivals<Packet>;
  #activity: ActivityLog;

  static {
    newConnections = (table, arrivals, activity) => new Connections(table, arrivals, activity);
  }

  private constructor(
    table: Map<string, Connection>,
    arrivals: Arrivals<Packet>,
    activity: ActivityLog,
  ) {
    this.#table = table;
    this.#arrivals = arrivals;
    this.#activity = activity;
  }

  /** How many connections are listed: open ones, and closed ones with packets left. */
  get size(): number {
    return this.#table.size;
  }

  /** How many packets wait across all connections. */
  get length(): number {
    return this.#arrivals.length;
  }

  /**
   * The connection from `address`.
   *
   * @param address `host:port`, as in a packet's `address`.
   * @returns The connection, or `undefined`.
   */
  get(address: string): Connection | undefined {
    return this.#table.get(address);
  }

  /**
   * Whether a connection from `address` is listed.
   *
   * @param address `host:port`, as in a packet's `address`.
   * @returns Whether it is listed.
   */
  has(address: string): boolean {
    return this.#table.has(address);
  }

  /** The listed connections. */
  [Symbol.iterator](): IterableIterator<Connection> {
    return this.#table.values();
  }

  /**
   * The listed addresses.
   *
   * @returns The addresses, `host:port`.
   */
  addresses(): string[] {
    return [...this.#table.keys()];
  }

  /**
   * Takes the oldest unread activity record (the original's `activity()`).
   *
   * @returns The record, or `undefined` if there is none.
   */
  activity(): ActivityRecord | undefined {
    return this.#activity.take();
  }

  /**
   * Takes the oldest (or newest) packet across all connections.
   *
   * @param oldToNew Take the oldest when true, the newest when false.
   * @returns The packet, or `undefined` if none waits.
   */
  getDataOrdinal(oldToNew: boolean = true): Packet | undefined {
    return this.#arrivals.take(oldToNew);
  }

  /**
   * Waits until a packet is waiting on any connection, without taking it.
   *
   * @param options A signal to stop waiting.
   * @returns Whether a packet waits: `false` once the server has stopped with none left.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  wait(options: ReceiveOptions = {}): Promise<boolean> {
    return this.#arrivals.wait(options.signal);
  }
}

/**
 * An aesm server.
 *
 * Listens as soon as it is constructed. Each client runs the handshake
 * (`Noise_XX_25519_AESGCM_SHA256`, or `Noise_XXpsk3_25519_AESGCM_SHA256`
 * with a `psk`), bound to the application name; then its messages arrive as
 * packets. Without a `psk`, `allowedPublicKeys` or `authorize`, any client
 * that knows the application name may connect: the channel is encrypted and
 * forward-secret, but the client is not authenticated.
 *
 * @example Accepting a connection and reading the activity log
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * const connection = await server.accept();
 * assert.equal(connection.address, client.localAddress);
 * const record = server.activity.take();
 * assert.deepEqual([record?.event, record?.address], ["connected", client.localAddress]);
 * assert.deepEqual(record?.publicKey, client.publicKey);
 * ```
 */
export class ServerNetwork implements AsyncIterable<Packet>, AsyncDisposable {
  /** The connections, the ordinal view and the original's `activity()`. */
  readonly connections: Connections;
  /** The activity log. */
  readonly activity: ActivityLog;
  /** Resolves once the key pair is ready and handshakes can run; rejects if the options are bad. */
  readonly ready: Promise<void>;

  #listener: Deno.TcpListener;
  #options: ServerOptions;
  #arrivals = new Arrivals<Packet>();
  #table = new Map<string, Connection>();
  #log: ActivityWriter;
  #accepted = new AsyncQueue<Connection>();
  #keyPair: KeyPair | undefined;
  #config: CommonConfig;
  #maxConnections: number;
  #allowedKeys: Set<string> | undefined;
  #allowedHostnames: Set<string> | undefined;
  #active = 0;
  #handshakes = new Set<Promise<void>>();
  #stopping = new AbortController();
  #stopped: Promise<void> | undefined;
  #acceptLoop: Promise<void>;

  /**
   * Starts a server listening on `hostname:port` (the original's `ServerNetwork(host, port)`).
   *
   * @param hostname The address to listen on, such as `"127.0.0.1"` or `"::1"`.
   * @param port The port; 0 picks a free one.
   * @param options Everything else.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If a number is out of range.
   */
  constructor(
    hostname: string,
    port: number,
    options: Omit<ServerOptions, "hostname" | "port"> = {},
  ) {
    this.#options = options;
    this.#config = commonConfig(options);
    this.#maxConnections = positive(options.maxConnections, "maxConnections", 1024);
    this.#allowedKeys = options.allowedPublicKeys && new Set(options.allowedPublicKeys.map(keyId));
    this.#allowedHostnames = options.allowedHostnames && new Set(options.allowedHostnames);
    this.activity = new ActivityLog(
      positive(options.activityLimit, "activityLimit", DEFAULT_ACTIVITY_LIMIT),
    );
    this.connections = newConnections(this.#table, this.#arrivals, this.activity);
    this.#log = internals.writerOf!(this.activity);
    this.#listener = Deno.listen({
      hostname: checkHostname(hostname),
      port: checkPort(port),
      tcpBacklog: positive(options.tcpBacklog, "tcpBacklog", 1024),
    });
    this.ready = loadKeyPair(options.keyPair).then((pair) => void (this.#keyPair = pair));
    this.ready.catch(() => this.#listener.close());
    this.#acceptLoop = this.#accept();
  }

  /**
   * Starts a server and waits until it is ready.
   *
   * @param options Where to listen, and everything else.
   * @returns The listening server.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If a number is out of range.
   * @throws {Deno.errors.AddrInUse} If the port is taken.
   */
  static async listen(options: ServerOptions = {}): Promise<ServerNetwork> {
    const server = new ServerNetwork(options.hostname ?? "127.0.0.1", options.port ?? 0, options);
    await server.ready;
    return server;
  }

  /** The hostname listened on. */
  get hostname(): string {
    return this.#listener.addr.hostname;
  }

  /** The port listened on: the chosen one when 0 was asked. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** The address listened on, `host:port`. */
  get address(): string {
    return formatAddress(this.#listener.addr);
  }

  /**
   * The server's static public key, for clients to pin.
   *
   * @throws {TypeError} Before `ready` resolves.
   */
  get publicKey(): Uint8Array<ArrayBuffer> {
    if (this.#keyPair === undefined) {
      throw new TypeError("Cannot read publicKey: await server.ready first");
    }
    return this.#keyPair.publicKey;
  }

  /**
   * Takes the next connection that completed its handshake and was not yet
   * accepted, waiting for one. Up to `maxConnections` unaccepted connections
   * are kept; older ones are only in `connections`.
   *
   * @param options A signal to stop waiting.
   * @returns The connection.
   * @throws {TypeError} If the server has stopped.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  async accept(options: ReceiveOptions = {}): Promise<Connection> {
    const connection = await this.#accepted.receive(options.signal);
    if (connection === undefined) throw new TypeError("Cannot accept: the server has stopped");
    return connection;
  }

  /**
   * Takes the oldest packet from any connection, waiting for one.
   *
   * @param options A signal to stop waiting.
   * @returns The packet, or `undefined` once the server has stopped and every packet was taken.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  receive(options: ReceiveOptions = {}): Promise<Packet | undefined> {
    return this.#arrivals.receive(options.signal);
  }

  /** Takes packets from every connection in arrival order, until the server stops. */
  async *[Symbol.asyncIterator](): AsyncIterator<Packet> {
    while (true) {
      const packet = await this.receive();
      if (packet === undefined) return;
      yield packet;
    }
  }

  /**
   * Sends a message to one connection.
   *
   * @param data A string or bytes.
   * @param address The connection's remote address, `host:port`.
   * @throws {RangeError} If no connection has that address.
   * @throws {TypeError} If `data` is neither a string nor a `Uint8Array`.
   * @throws {MessageTooLargeError} If it exceeds that peer's limit.
   * @throws {ConnectionClosedError} If that connection is closed.
   */
  async sendTo(data: string | Uint8Array, address: string): Promise<void> {
    const connection = this.connections.get(address);
    if (connection === undefined) {
      throw new RangeError(`Cannot send message: no connection from ${address}`);
    }
    await connection.send(data);
  }

  /**
   * Sends a message to every open connection.
   *
   * @param data A string or bytes.
   * @returns How many connections it was sent to.
   * @throws {TypeError} If `data` is neither a string nor a `Uint8Array`.
   * @throws {MessageTooLargeError} If it exceeds any peer's limit; then it goes to none.
   */
  async sendAll(data: string | Uint8Array): Promise<number> {
    if (typeof data !== "string" && !(data instanceof Uint8Array)) {
      throw new TypeError("Cannot send message: expected a string or a Uint8Array");
    }
    const open = [...this.connections].filter((connection) => !connection.isClosed);
    const size = typeof data === "string" ? new TextEncoder().encode(data).length : data.length;
    const limit = Math.min(...open.map((connection) => connection.peerMaxMessageSize));
    if (size > limit) throw new MessageTooLargeError(size, limit);
    const results = await Promise.allSettled(open.map((connection) => connection.send(data)));
    return results.filter((result) => result.status === "fulfilled").length;
  }

  /**
   * Stops the server: stops accepting, ends handshakes in progress, closes
   * every connection with an authenticated close after flushing what was
   * sent, and releases every socket and timer. Idempotent. Packets already
   * received stay readable.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  /** Stops the server; see {@linkcode ServerNetwork.stop}. */
  close(): Promise<void> {
    return this.stop();
  }

  /** Stops the server; see {@linkcode ServerNetwork.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #stop(): Promise<void> {
    this.#stopping.abort(new DOMException("The server is stopping", "AbortError"));
    try {
      this.#listener.close();
    } catch {
      // Closed already, after a failed start.
    }
    await this.#acceptLoop;
    await Promise.allSettled(this.#handshakes);
    await Promise.allSettled(
      [...this.connections].map((connection) => connection.close({ reason: "shutdown" })),
    );
    this.#accepted.close();
    this.#arrivals.close();
    this.#log.close();
    await this.ready.catch(() => {});
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) this.#admit(conn);
    } catch {
      // The listener was closed.
    }
  }

  #admit(conn: Deno.TcpConn): void {
    const address = formatAddress(conn.remoteAddr);
    if (this.#stopping.signal.aborted) return void conn.close();
    let refused: RefuseReason | undefined;
    if (this.#active >= this.#maxConnections) refused = "server-full";
    else if (this.#allowedHostnames && !this.#allowedHostnames.has(conn.remoteAddr.hostname)) {
      refused = "unauthorized";
    }
    if (refused !== undefined) {
      this.#refuse(address, refused, `Refused ${address}: ${refused}`);
      return this.#track(sendAndClose(conn, encodeRefuse(refused)));
    }
    this.#active++;
    this.#track(this.#handshake(conn, address));
  }

  #track(task: Promise<void>): void {
    this.#handshakes.add(task);
    task.finally(() => this.#handshakes.delete(task));
  }

  async #handshake(conn: Deno.TcpConn, address: string): Promise<void> {
    let connection: Connection;
    try {
      await abortable(this.ready, this.#stopping.signal);
      conn.setNoDelay(true);
      const established = await withDeadline(
        this.#config.handshakeTimeout,
        this.#stopping.signal,
        () =>
          establishServer(conn, {
            ...this.#config,
            keyPair: this.#keyPair!,
            authorize: (publicKey) => this.#authorize(publicKey, address),
          }),
      );
      const queue = internals.feedingQueue!(
        this.#options,
        this.#arrivals,
        () => this.#forget(address, connection),
      );
      connection = internals.openConnection!({
        conn,
        established,
        options: { ...this.#options, maxMessageSize: this.#config.maxMessageSize },
        queue,
        onClose: (closed, info) => this.#onClose(closed, info),
      });
    } catch (error) {
      this.#active--;
      closeQuietly(conn);
      const reason = this.#stopping.signal.aborted
        ? "aborted"
        : (error as { reason?: RefuseReason }).reason ??
          (error instanceof TimeoutError ? "timeout" : "aborted");
      this.#refuse(address, reason, (error as Error).message ?? String(error));
      return;
    }
    this.#table.set(address, connection);
    // Connections nobody accepts stay reachable through `connections`; the
    // accept queue keeps only the newest, so it cannot grow without bound.
    if (this.#accepted.length >= this.#maxConnections) this.#accepted.shift();
    this.#accepted.push(connection);
    this.#log.add({
      address,
      accepted: true,
      time: Date.now(),
      event: "connected",
      message: `${address} connected`,
      publicKey: connection.remotePublicKey,
    });
  }

  async #authorize(publicKey: Uint8Array<ArrayBuffer>, address: string): Promise<boolean> {
    if (this.#allowedKeys && !this.#allowedKeys.has(keyId(publicKey))) return false;
    return this.#options.authorize
      ? await this.#options.authorize({ publicKey, address }) === true
      : true;
  }

  #forget(address: string, connection: Connection): void {
    if (this.#table.get(address) === connection) this.#table.delete(address);
  }

  #onClose(connection: Connection, info: CloseInfo): void {
    this.#active--;
    if (connection.data.length === 0) this.#forget(connection.address, connection);
    this.#log.add({
      address: connection.address,
      accepted: true,
      time: Date.now(),
      event: "disconnected",
      reason: info.reason,
      clean: info.clean,
      message: info.message,
      publicKey: connection.remotePublicKey,
    });
  }

  #refuse(address: string, reason: RefuseReason, message: string): void {
    this.#log.add({
      address,
      accepted: false,
      time: Date.now(),
      event: "refused",
      reason,
      message,
    });
  }
}

function keyId(key: Uint8Array): string {
  return Array.from(key, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
