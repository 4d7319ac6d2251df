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

import { Arrivals } from "./_queue/arrivals.ts";
import { ByteBudget } from "./_bounds/budget.ts";
import { AsyncQueue } from "./_queue/async_queue.ts";
import {
  checkHostname,
  checkPort,
  type CommonConfig,
  commonConfig,
  describe,
  loadKeyPair,
  positive,
} from "./_connection/config.ts";
import { encodeRefuse, establishServer, withDeadline } from "./_connection/establish.ts";
import { abortable } from "./_queue/abort.ts";
import { checkCluster, ClusterNode, hex } from "./cluster/_node.ts";
import {
  disconnectedRecord,
  disconnectSlow,
  drained,
  enqueueMessage,
  feedingQueue,
  isBehind,
  isFull,
  openConnection,
  progress,
} from "./_connection/connection.ts";
import { type ActivityWriter, activityWriter } from "./_queue/activity_log.ts";
import { openFileLimit } from "./_bounds/open_files.ts";
import { sourceOf } from "./_bounds/source.ts";
import { sendAndClose, type Transport } from "./_transport/transport.ts";
import { type Listener, listenTcp } from "./_transport/tcp.ts";
import { upgradeRequest, WebSocketListener } from "./_transport/websocket_server.ts";
import { ActivityLog, type ActivityRecord, DEFAULT_ACTIVITY_LIMIT } from "./activity.ts";
import type { KeyPair } from "./cipher.ts";
import type { ClusterOptions, ClusterPresence } from "./cluster.ts";
import { type CloseInfo, Connection, type ConnectionOptions, formatAddress } from "./connection.ts";
import { RefusedError, type RefuseReason, TimeoutError } from "./errors.ts";
import { Packet, type ReceiveOptions } from "./queue.ts";

export type { ActivityRecord } from "./activity.ts";

/** Options of {@linkcode Connections.wait}. */
export interface WaitOptions extends ReceiveOptions {
  /**
   * Wake on unread activity records (joins, leaves, refusals) as well as on packets.
   *
   * @default {false}
   */
  activity?: boolean;
}

const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024;
// Descriptors kept for everything else a process opens (stdio, the listener, files).
const RESERVED_DESCRIPTORS = 64;
// Refusals decided at accept time, before any handshake, are cheap to cause in
// bulk: each burst is logged once, then summed up every BURST_MS.
const ADMISSION_REASONS: ReadonlySet<RefuseReason> = new Set([
  "server-full",
  "server-busy",
  "too-many-from-address",
]);
const BURST_MS = 1000;
// Backoff of the accept loop after a failed accept (out of descriptors, ...).
const MIN_ACCEPT_BACKOFF = 10;
const MAX_ACCEPT_BACKOFF = 1000;

/** How many handshakes and connections one address has. */
interface PerAddress {
  handshakes: number;
  connections: number;
}

/** A burst of refusals for one reason, summed up every BURST_MS. */
interface Burst {
  count: number;
  last: string;
  timer: ReturnType<typeof setTimeout>;
}

/** The peer of an HTTP request, as `Deno.serve` passes it (a `Deno.ServeHandlerInfo` fits). */
export interface UpgradeInfo {
  /** The peer's address. */
  readonly remoteAddr: { readonly hostname: string; readonly port: number };
}

/** Where a server accepts WebSocket clients. */
export interface WebSocketOptions {
  /**
   * The port of the HTTP server; 0 picks a free one (read it from `webSocketPort`).
   *
   * @default {0}
   */
  port?: number;
  /**
   * The path upgraded; other paths are answered 404.
   *
   * @default {"/"}
   */
  path?: string;
}

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
   * Also accept clients over WebSocket (`PROTOCOL.md` section 12): an HTTP
   * server on `hostname` that upgrades requests to `path`, feeding the same
   * connections, queues and activity log. To serve WebSocket from your own
   * HTTP server instead, pass its requests to {@linkcode ServerNetwork.upgrade}.
   */
  webSocket?: WebSocketOptions;
  /**
   * The application name, bound into the handshake: clients must use the same.
   *
   * @default {"aesm"}
   */
  applicationName?: string;
  /**
   * The server's static key pair; generated when absent (and then new on each
   * start, so clients that pinned the old public key are refused: use
   * `keyFile` to keep one). Share its public key for pinning.
   */
  keyPair?: KeyPair;
  /**
   * A key file holding the server's static key pair: made (mode 0600) on the
   * first start, loaded after, so the public key stays the same across
   * restarts. Its format is in the `key-file` module. Not with `keyPair`.
   */
  keyFile?: string | URL;
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
   * Established connections at once; more are refused with reason
   * `"server-full"`. Handshakes in progress do not count: they have
   * `maxPendingHandshakes`. Where the process's open-file limit can be read
   * (Linux, with read permission for `/proc/self/limits`), the default is
   * lowered to fit it, and a value given that does not fit
   * (`maxConnections + 2 × maxPendingHandshakes + 64` descriptors) is a
   * `RangeError`.
   *
   * @default {1024}
   */
  maxConnections?: number;
  /**
   * Handshakes in progress at once, apart from established connections;
   * more are refused with reason `"server-busy"`. Refused sockets lingering
   * to deliver their refusal have a bound of the same size; past it they
   * are closed at once.
   *
   * @default {128}
   */
  maxPendingHandshakes?: number;
  /**
   * Handshakes in progress at once from one IP address (for IPv6, one /64
   * prefix); more are refused with reason `"too-many-from-address"`. Raise
   * it for tests that open many clients at once from one address.
   *
   * @default {32}
   */
  maxHandshakesPerAddress?: number;
  /**
   * Established connections at once from one IP address (for IPv6, one /64
   * prefix); more are refused with reason `"too-many-from-address"`. Raise
   * it for tests or proxies that connect many clients from one address.
   *
   * @default {256}
   */
  maxConnectionsPerAddress?: number;
  /**
   * Bytes of received messages held across all connections (queued, or
   * being assembled) before connections holding some pause reading: a
   * server-wide bound under every connection's `highWaterMark`. Paused
   * connections all resume once the application takes packets; nothing is
   * dropped. A connection holding nothing still reads, so that a close gets
   * through. Memory can pass the bound by one read per connection (256 KiB)
   * and one message being finished (`maxMessageSize`). An application that
   * reads some connections and never others can stall the ones it reads
   * once the others fill this.
   *
   * @default {268435456}
   */
  maxQueuedBytes?: number;
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
   * What `sendAll()` and `broadcast()` do with a member that reads slower
   * than messages come (its write buffer would pass `maxBufferedAmount`): end
   * it with reason `"slow-consumer"` (`"disconnect"`), skip it for that
   * message (`"drop"`, reported in `broadcast()`'s result), or wait for it
   * once past its `writeHighWaterMark` (`"wait"`, which lets one member stall
   * every broadcast). Disconnecting is the
   * default, as in NATS: nothing is lost silently, the member learns why, and
   * the others are never held up.
   *
   * @default {"disconnect"}
   */
  slowConsumer?: SlowConsumerPolicy;
  /**
   * The listen backlog, for bursts of connects.
   *
   * @default {1024}
   */
  tcpBacklog?: number;
  /**
   * Let several processes listen on one port (`SO_REUSEPORT`): on Linux the
   * kernel spreads new connections over them, so N processes joined by a
   * `cluster` use N cores. Deno has it behind `--unstable-net`.
   *
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Join a cluster of servers that act as one (see `@aesm/aesm/cluster`):
   * `sendAll()` and `broadcast()` reach the clients of every node, and
   * `sendTo()` a client by public key or address on whichever node holds it.
   *
   * @default {undefined (this server alone)}
   */
  cluster?: ClusterOptions;
}

let resolveTarget: (connections: Connections, to: SendTarget) => Connection;
let findByKey: (connections: Connections, key: string) => Connection | undefined;
let newConnections: (arrivals: Arrivals<Packet>, activity: ActivityLog) => {
  connections: Connections;
  add(connection: Connection): void;
  remove(connection: Connection): void;
};

/**
 * The server's connections and the server-wide view of their packets in
 * arrival order. A connection is listed from its handshake until it has
 * closed and its last packet was taken.
 *
 * Two counts, not to be confused: `size` is how many connections are
 * listed, `length` how many packets wait across them (the original's
 * `len(connections)`).
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
 * assert.equal(server.connections.get(fromB.id), fromB);
 * assert.equal(server.connections.getDataOrdinal(false)?.data, "two");
 * assert.equal(server.connections.getDataOrdinal()?.data, "one");
 * ```
 */
export class Connections implements Iterable<Connection> {
  #byId = new Map<number, Connection>();
  #byAddress = new Map<string, Connection[]>();
  #byKey = new Map<string, Connection[]>();
  #arrivals: Arrivals<Packet>;
  #activity: ActivityLog;

  static {
    newConnections = (arrivals, activity) => {
      const connections = new Connections(arrivals, activity);
      return {
        connections,
        add: (connection) => connections.#add(connection),
        remove: (connection) => connections.#remove(connection),
      };
    };
    findByKey = (connections, key) => connections.#findByKey(key);
    resolveTarget = (connections, to) => {
      if (to instanceof Packet) return to.connection;
      if (typeof to === "string") return connections.#only(to);
      if (to instanceof Connection) return to;
      if (to instanceof Uint8Array) return connections.#withKey(to);
      if (typeof to !== "number") {
        throw new TypeError(
          "Cannot send message: expected a connection, a packet, a connection id, an " +
            `address or a public key, got ${describe(to)}`,
        );
      }
      const connection = connections.#byId.get(to);
      if (connection === undefined) {
        throw new RangeError(`Cannot send message: no connection with id ${to} is listed`);
      }
      return connection;
    };
  }

  private constructor(arrivals: Arrivals<Packet>, activity: ActivityLog) {
    this.#arrivals = arrivals;
    this.#activity = activity;
  }

  /** How many connections are listed (open ones, and closed ones with packets left); not packets. */
  get size(): number {
    return this.#byId.size;
  }

  /** How many packets wait across all connections (the original's `len()`); not connections. */
  get length(): number {
    return this.#arrivals.length;
  }

  /**
   * The connection with this id, or from this address.
   *
   * @param key A connection's `id`, or an address `host:port` as in a packet's
   * `address`. When connections from one address are listed at once (an
   * earlier one closed with packets left, a later one open), an address
   * gives the earliest.
   * @returns The connection, or `undefined`.
   */
  get(key: number | string): Connection | undefined {
    return typeof key === "number" ? this.#byId.get(key) : this.#byAddress.get(key)?.[0];
  }

  /**
   * Whether a connection with this id, or from this address, is listed.
   *
   * @param key A connection's `id`, or an address `host:port`.
   * @returns Whether it is listed.
   */
  has(key: number | string): boolean {
    return this.get(key) !== undefined;
  }

  /** The listed connections, oldest first. */
  [Symbol.iterator](): IterableIterator<Connection> {
    return this.#byId.values();
  }

  /**
   * The addresses of the listed connections, each once.
   *
   * @returns The addresses, `host:port`.
   */
  addresses(): string[] {
    return [...this.#byAddress.keys()];
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
   * @default {true}
   * @returns The packet, or `undefined` if none waits.
   */
  getDataOrdinal(oldToNew?: boolean): Packet | undefined {
    return this.#arrivals.take(oldToNew ?? true);
  }

  /**
   * Waits until a packet is waiting on any connection, without taking it;
   * with `{ activity: true }`, until a packet or an unread activity record (a
   * join, a leave, a refusal) is waiting, so that one loop can serve both
   * without a timer.
   *
   * @param options A signal to stop waiting, and whether activity wakes the wait too.
   * @returns Whether something waits: `false` once the server has stopped with nothing left.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   *
   * @example A seed-style loop: joins, leaves and messages, no timer
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
   *
   * const server = new ServerNetwork("127.0.0.1", 0);
   * await server.ready;
   * const client = new ClientNetwork("127.0.0.1", server.port);
   * await client.sendData("hi");
   * await client.stop();
   * const seen: string[] = [];
   * while (seen.length < 3 && await server.connections.wait({ activity: true })) {
   *   for (let r = server.connections.activity(); r; r = server.connections.activity()) {
   *     seen.push(r.event);
   *   }
   *   for (let p = server.connections.getDataOrdinal(); p; p = server.connections.getDataOrdinal()) {
   *     seen.push(p.text());
   *   }
   * }
   * assert.deepEqual(seen, ["connected", "hi", "disconnected"]);
   * await server.stop();
   * ```
   */
  async wait(options?: WaitOptions): Promise<boolean> {
    if (!options?.activity) return await this.#arrivals.wait(options?.signal);
    const signal = options.signal;
    signal?.throwIfAborted();
    if (this.length > 0 || this.#activity.length > 0) return true;
    // Whichever comes first; the other wait is aborted so that it leaves nothing behind.
    // (Not AbortSignal.any: in Deno 2.9 a long-lived signal keeps every signal made from it.)
    const both = new AbortController();
    const onAbort = () => both.abort(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([
        this.#arrivals.wait(both.signal),
        this.#activity.wait({ signal: both.signal }),
      ]);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      both.abort();
    }
    return this.length > 0 || this.#activity.length > 0;
  }

  /**
   * The one connection an address names, for sending to it.
   *
   * @throws {RangeError} If none, or more than one, is listed from it.
   */
  #only(address: string): Connection {
    const listed = this.#byAddress.get(address);
    if (listed === undefined) {
      throw new RangeError(`Cannot send message: no connection from ${address}`);
    }
    if (listed.length > 1) {
      throw new RangeError(
        `Cannot send message: ${listed.length} connections from ${address} are listed; ` +
          "reply with packet.connection.send() or name the connection or its id",
      );
    }
    return listed[0];
  }

  /**
   * The newest open connection whose client proved this public key.
   *
   * @throws {RangeError} If none is open.
   */
  #withKey(publicKey: Uint8Array): Connection {
    const id = hex(publicKey);
    const open = this.#findByKey(id);
    if (open === undefined) {
      throw new RangeError(`Cannot send message: no open connection with public key ${id}`);
    }
    return open;
  }

  #findByKey(key: string): Connection | undefined {
    return this.#byKey.get(key)?.findLast((connection) => !connection.isClosed);
  }

  #add(connection: Connection): void {
    this.#byId.set(connection.id, connection);
    const key = hex(connection.remotePublicKey);
    const withKey = this.#byKey.get(key);
    if (withKey === undefined) this.#byKey.set(key, [connection]);
    else withKey.push(connection);
    const listed = this.#byAddress.get(connection.address);
    if (listed === undefined) this.#byAddress.set(connection.address, [connection]);
    else listed.push(connection);
  }

  #remove(connection: Connection): void {
    if (this.#byId.get(connection.id) !== connection) return;
    this.#byId.delete(connection.id);
    const listed = this.#byAddress.get(connection.address)!;
    if (listed.length === 1) this.#byAddress.delete(connection.address);
    else listed.splice(listed.indexOf(connection), 1);
    const key = hex(connection.remotePublicKey);
    const withKey = this.#byKey.get(key)!;
    if (withKey.length === 1) this.#byKey.delete(key);
    else withKey.splice(withKey.indexOf(connection), 1);
  }
}

/**
 * Where {@linkcode ServerNetwork.sendTo} sends: a connection, the packet to
 * answer (its connection), a connection's `id`, an address `host:port`, or
 * a client's public key (its newest open connection). In a cluster, an
 * address or a public key not held here is sent to the node that holds it.
 */
export type SendTarget = Connection | Packet | number | string | Uint8Array;

/** What {@linkcode ServerNetwork.broadcast} did with one message. */
export interface BroadcastResult {
  /** How many connections the message was queued for. */
  readonly sent: number;
  /** Open connections skipped because the message exceeds their `maxMessageSize`. */
  readonly tooLarge: readonly Connection[];
  /** Connections that closed (or refused the message) before it could be queued for them. */
  readonly failed: readonly Connection[];
  /** Slow members the message was not sent to (policy `"drop"`). */
  readonly dropped: readonly Connection[];
  /** Slow members ended with reason `"slow-consumer"` (policy `"disconnect"`). */
  readonly disconnected: readonly Connection[];
}

/**
 * What a broadcast does with a member too slow to take a message (its write
 * buffer would pass `maxBufferedAmount`): end it (`"disconnect"`, reason
 * `"slow-consumer"`) or skip it for this message (`"drop"`); or wait for any
 * member past its `writeHighWaterMark` (`"wait"`, which lets one member hold
 * up the broadcast).
 */
export type SlowConsumerPolicy = "disconnect" | "drop" | "wait";

/** Options of {@linkcode ServerNetwork.broadcast}. */
export interface BroadcastOptions {
  /**
   * The policy for slow members, for this message.
   *
   * @default {"disconnect"}
   */
  slowConsumer?: SlowConsumerPolicy;
}

const SLOW_CONSUMER_POLICIES: readonly string[] = ["disconnect", "drop", "wait"];
// The longest a broadcast waits for members that are behind but still writing.
const PACE_MS = 250;

function checkSlowConsumer(policy: unknown): SlowConsumerPolicy {
  if (!SLOW_CONSUMER_POLICIES.includes(policy as string)) {
    throw new TypeError(
      `Cannot use slowConsumer: expected "disconnect", "drop" or "wait", got ${describe(policy)}`,
    );
  }
  return policy as SlowConsumerPolicy;
}

/**
 * An aesm server.
 *
 * Listens as soon as it is constructed. Each client runs the handshake
 * (`Noise_XX_25519_AESGCM_SHA256`, or `Noise_XXpsk0_25519_AESGCM_SHA256`
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

  #listener: Listener;
  #webListener: WebSocketListener | undefined;
  #options: ServerOptions;
  #arrivals = new Arrivals<Packet>();
  #table: { add(connection: Connection): void; remove(connection: Connection): void };
  #log: ActivityWriter;
  #accepted = new AsyncQueue<Connection>();
  #keyPair: KeyPair | undefined;
  #config: CommonConfig;
  #slowConsumer: SlowConsumerPolicy;
  #progressSeen = new WeakMap<Connection, number>();
  #maxConnections: number;
  #maxPendingHandshakes: number;
  #maxHandshakesPerAddress: number;
  #maxConnectionsPerAddress: number;
  #budget: ByteBudget;
  #allowedKeys: Set<string> | undefined;
  #allowedHostnames: Set<string> | undefined;
  #connected = 0;
  #pending = 0;
  #lingering = 0;
  #perAddress = new Map<string, PerAddress>();
  #bursts = new Map<RefuseReason, Burst>();
  #listenerClosed = false;
  #handshakes = new Set<Promise<void>>();
  #stopping = new AbortController();
  #stopped: Promise<void> | undefined;
  #acceptLoop: Promise<void>;
  #cluster: ClusterNode | undefined;

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
    options?: Omit<ServerOptions, "hostname" | "port">,
  ) {
    options ??= {};
    this.#options = options;
    this.#config = commonConfig(options);
    this.#maxPendingHandshakes = positive(
      options.maxPendingHandshakes,
      "maxPendingHandshakes",
      128,
    );
    this.#maxConnections = fitDescriptors(options.maxConnections, this.#maxPendingHandshakes);
    this.#slowConsumer = checkSlowConsumer(options.slowConsumer ?? "disconnect");
    this.#budget = new ByteBudget(
      positive(options.maxQueuedBytes, "maxQueuedBytes", DEFAULT_MAX_QUEUED_BYTES),
    );
    this.#maxHandshakesPerAddress = positive(
      options.maxHandshakesPerAddress,
      "maxHandshakesPerAddress",
      32,
    );
    this.#maxConnectionsPerAddress = positive(
      options.maxConnectionsPerAddress,
      "maxConnectionsPerAddress",
      256,
    );
    this.#allowedKeys = options.allowedPublicKeys && new Set(options.allowedPublicKeys.map(keyId));
    this.#allowedHostnames = options.allowedHostnames && new Set(options.allowedHostnames);
    this.activity = new ActivityLog(
      positive(options.activityLimit, "activityLimit", DEFAULT_ACTIVITY_LIMIT),
    );
    const table = newConnections(this.#arrivals, this.activity);
    this.connections = table.connections;
    this.#table = table;
    this.#log = activityWriter(this.activity);
    this.#cluster = options.cluster && this.#joinCluster(checkCluster(options.cluster));
    if (this.#cluster && options.cluster?.shareActivity) this.#log = this.#cluster.share(this.#log);
    this.#listener = listenTcp(
      checkHostname(hostname),
      checkPort(port),
      positive(options.tcpBacklog, "tcpBacklog", 1024),
      options.reusePort === true,
    );
    try {
      this.#webListener = this.#listenWebSocket(options.webSocket);
    } catch (error) {
      this.#listener.close();
      throw error;
    }
    this.ready = Promise.all([
      this.#listener.ready,
      loadKeyPair(options.keyPair, options.keyFile),
    ]).then(async ([, pair]) => {
      this.#keyPair = pair;
      await this.#cluster?.join();
    });
    this.ready.catch(() => this.#closeListener());
    this.#acceptLoop = this.#accept();
  }

  /**
   * Starts a server and waits until it is ready.
   *
   * @param options Where to listen, and everything else.
   * @returns The listening server.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If a number is out of range.
   * @throws {Deno.errors.AddrInUse} If the port is taken (the message names the address).
   */
  static async listen(options?: ServerOptions): Promise<ServerNetwork> {
    const server = new ServerNetwork(options?.hostname ?? "127.0.0.1", options?.port ?? 0, options);
    await server.ready;
    return server;
  }

  /** The hostname listened on. */
  get hostname(): string {
    return this.#listener.hostname;
  }

  /** The port listened on: the chosen one when 0 was asked. */
  get port(): number {
    return this.#listener.port;
  }

  /** The address listened on, `host:port`. */
  get address(): string {
    return formatAddress({ transport: "tcp", ...this.#listener });
  }

  /** The port of the WebSocket listener, if the server has one (`webSocket` option). */
  get webSocketPort(): number | undefined {
    return this.#webListener?.port;
  }

  /**
   * Upgrades an HTTP request to an aesm WebSocket connection, for a server
   * that serves WebSocket from its own `Deno.serve` (or any framework that
   * gives a `Request`): the connection joins this server's connections,
   * queues and activity log like a TCP one. A request that is not a
   * WebSocket upgrade offering the `aesm.v1.window` or `aesm.v1`
   * subprotocol is answered with a 426 or 400 response saying why.
   *
   * @param request The request.
   * @param info The peer's address, as `Deno.serve` passes it: the per-address bounds and
   * `connection.address` use it (without it, the address is `""`, and every such client counts
   * against the bounds of one address).
   * @returns The response to return to the HTTP server.
   *
   * @example Serving aesm from your own HTTP server
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
   *
   * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
   * await using http = Deno.serve(
   *   { hostname: "127.0.0.1", port: 0, onListen() {} },
   *   (request, info) => server.upgrade(request, info),
   * );
   * await using client = await ClientNetwork.connect({ url: `ws://127.0.0.1:${http.addr.port}/` });
   * await client.send("over WebSocket");
   * assert.equal((await server.receive())?.data, "over WebSocket");
   * await client.close();
   * await server.stop();
   * ```
   */
  upgrade(request: Request, info?: UpgradeInfo): Response {
    if (this.#stopping.signal.aborted) {
      return new Response("Cannot upgrade: the server is stopping", { status: 503 });
    }
    const local = this.#webListener
      ? formatAddress({ transport: "tcp", ...this.#webListener })
      : new URL(request.url).host;
    const { response, opened } = upgradeRequest(
      request,
      info,
      local,
      this.#config.handshakeTimeout,
      this.#stopping.signal,
    );
    this.#track(opened.then((transport) => this.#admit(transport), () => {}));
    return response;
  }

  #listenWebSocket(options: WebSocketOptions | undefined): WebSocketListener | undefined {
    if (options === undefined) return undefined;
    const path = options.path ?? "/";
    if (typeof path !== "string" || !path.startsWith("/")) {
      throw new TypeError(`Cannot listen: webSocket.path must start with "/", got ${path}`);
    }
    return new WebSocketListener(
      { hostname: this.hostname, port: checkPort(options.port ?? 0), path },
      (request, info) => this.upgrade(request, info),
    );
  }

  /**
   * The most established connections at once: `maxConnections`, or its
   * default lowered to fit the process's open-file limit.
   */
  get maxConnections(): number {
    return this.#maxConnections;
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
   * are kept; older ones are only in `connections`. A connection can end
   * before it is accepted: it still comes, in its turn, with `isClosed` true
   * and `closed` saying why, and its packets stay readable. Check `isClosed`
   * (or catch `ConnectionClosedError`) before sending to it.
   *
   * @param options A signal to stop waiting.
   * @returns The connection.
   * @throws {TypeError} If the server has stopped.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  async accept(options?: ReceiveOptions): Promise<Connection> {
    const connection = await this.#accepted.receive(options?.signal);
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
  receive(options?: ReceiveOptions): Promise<Packet | undefined> {
    return this.#arrivals.receive(options?.signal);
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
   * @param to The connection: itself, the packet to answer, its `id`, its address `host:port`,
   * or its client's public key. In a cluster, an address or a key that no connection here
   * matches is sent to the node that holds it, without waiting for that node to deliver it.
   * @throws {RangeError} If no listed connection (and in a cluster, no node) matches, an
   * address matches several (two connections from one address in turn: name the connection or
   * reply to the packet), or a message for another node is larger than the cluster carries.
   * @throws {TypeError} If `data` is neither a string nor a `Uint8Array`.
   * @throws {MessageTooLargeError} If it exceeds that peer's limit.
   * @throws {ConnectionClosedError} If that connection is closed.
   */
  async sendTo(data: string | Uint8Array, to: SendTarget): Promise<void> {
    const cluster = this.#cluster;
    if (cluster !== undefined && !this.#holds(to)) {
      const { bytes, text } = encodeData(data);
      cluster.checkSize(bytes.length);
      return cluster.sendTo(to as string | Uint8Array, bytes, text);
    }
    await resolveTarget(this.connections, to).send(data);
  }

  /** Whether this node answers for a target itself (only addresses and keys can be elsewhere). */
  #holds(to: SendTarget): boolean {
    if (typeof to === "string") return this.connections.has(to);
    if (!(to instanceof Uint8Array)) return true;
    return findByKey(this.connections, hex(to)) !== undefined;
  }

  /**
   * What this server knows of its cluster: its node id, the other nodes,
   * and which node holds which client; `undefined` without a `cluster` option.
   */
  get cluster(): ClusterPresence | undefined {
    return this.#cluster;
  }

  /**
   * Sends a message to every open connection (the original's `sendAll`),
   * never waiting on one member. A connection whose peer accepts no message
   * that large is skipped, not failed: the others still get it; a member that
   * reads too slowly is handled by the `slowConsumer` policy (by default
   * disconnected). {@linkcode ServerNetwork.broadcast} says which were which.
   *
   * In a cluster, every other node sends it to its clients too.
   *
   * @param data A string or bytes.
   * @returns How many connections of this node it was queued for.
   * @throws {TypeError} If `data` is neither a string nor a `Uint8Array`.
   * @throws {RangeError} In a cluster, if it is larger than the cluster carries.
   */
  async sendAll(data: string | Uint8Array): Promise<number> {
    return (await this.broadcast(data)).sent;
  }

  /**
   * Sends a message to every open connection, and says what happened to each.
   * It never waits on one member: a member too slow to take the message (its
   * write buffer would pass its `maxBufferedAmount`) is handled by the
   * `slowConsumer` policy: disconnected (the default, reason
   * `"slow-consumer"`) or skipped (`"drop"`); with `"wait"`, a member past
   * its `writeHighWaterMark` is waited for instead. When members are past
   * their `writeHighWaterMark`, the broadcast gives the event loop one turn
   * before it resolves, so a loop of broadcasts lets the sockets drain.
   *
   * In a cluster the message is also published to every other node, which
   * sends it to its own clients by its own policy; the result counts this
   * node's clients only.
   *
   * @param data A string or bytes.
   * @param options The slow-consumer policy for this message, if not the server's.
   * @returns How many got it here, and which were skipped, dropped, disconnected or had closed.
   * @throws {TypeError} If `data` is neither a string nor a `Uint8Array`, or the policy is unknown.
   * @throws {RangeError} In a cluster, if it is larger than the cluster carries.
   *
   * @example One member that stopped reading does not hold up the others
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
   *
   * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
   * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
   * const result = await server.broadcast("news", { slowConsumer: "drop" });
   * assert.deepEqual([result.sent, result.dropped.length], [1, 0]);
   * assert.equal((await client.receive())?.text(), "news");
   * ```
   */
  async broadcast(data: string | Uint8Array, options?: BroadcastOptions): Promise<BroadcastResult> {
    const { bytes, text } = encodeData(data);
    const policy = checkSlowConsumer(options?.slowConsumer ?? this.#slowConsumer);
    this.#cluster?.checkSize(bytes.length);
    this.#cluster?.broadcast(bytes, text);
    return await this.#broadcastHere(bytes, text, policy);
  }

  async #broadcastHere(
    bytes: Uint8Array,
    text: boolean,
    policy: SlowConsumerPolicy,
  ): Promise<BroadcastResult> {
    const result = { sent: 0, tooLarge: [], failed: [], dropped: [], disconnected: [] } as {
      sent: number;
      tooLarge: Connection[];
      failed: Connection[];
      dropped: Connection[];
      disconnected: Connection[];
    };
    const waits: Promise<void>[] = [];
    let behind = false;
    for (const connection of this.connections) {
      if (connection.isClosed) continue;
      if (bytes.length > connection.peerMaxMessageSize) {
        result.tooLarge.push(connection);
      } else if (policy === "wait" && isBehind(connection)) {
        waits.push(
          connection.send(text ? new TextDecoder().decode(bytes) : bytes).then(
            () => void result.sent++,
            () => {
              result.failed.push(connection);
            },
          ),
        );
      } else if (policy !== "wait" && isFull(connection, bytes.length)) {
        if (policy === "drop") result.dropped.push(connection);
        else {
          result.disconnected.push(connection);
          disconnectSlow(connection);
        }
      } else {
        try {
          enqueueMessage(connection, bytes, text);
          result.sent++;
          behind ||= isBehind(connection);
        } catch {
          result.failed.push(connection);
        }
      }
    }
    await Promise.all(waits);
    if (behind) await this.#pace();
    return result;
  }

  // A loop of broadcasts must go at the pace of the members that keep up, not
  // faster than the sockets (or this process's own encryption) drain, or every
  // member would end up "slow". So wait, for at most PACE_MS, until the members
  // past their mark that are still writing drain below it. A member that wrote
  // nothing since the last look is stalled: it is not waited for, and falls
  // behind until the slow-consumer policy takes it.
  async #pace(): Promise<void> {
    const draining: Promise<void>[] = [];
    for (const connection of this.connections) {
      if (connection.isClosed || !isBehind(connection)) continue;
      const written = progress(connection);
      if (this.#progressSeen.get(connection) !== written) {
        this.#progressSeen.set(connection, written);
        draining.push(drained(connection).catch(() => {}));
      }
    }
    if (draining.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const capped = new Promise<void>((resolve) => timer = setTimeout(resolve, PACE_MS));
    try {
      await Promise.race([Promise.all(draining), capped]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops the server: stops accepting, ends handshakes in progress, closes
   * every connection with an authenticated close after flushing what was
   * sent, and releases every socket and timer. Idempotent. Packets already
   * received stay readable. Resolves within about twice `closeTimeout`,
   * plus up to a second to send a last Close to peers that never answered
   * and the 500 ms a refused socket lingers, whatever the peers do.
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
    this.#closeListener();
    await this.#cluster?.close();
    await this.#acceptLoop;
    await Promise.allSettled(this.#handshakes);
    await Promise.allSettled(
      [...this.connections].map((connection) => connection.close({ reason: "shutdown" })),
    );
    await this.#webListener?.close();
    for (const reason of [...this.#bursts.keys()]) this.#endBurst(reason, true);
    this.#accepted.close();
    this.#arrivals.close();
    this.#log.close();
    await this.ready.catch(() => {});
  }

  #joinCluster(options: ClusterOptions): ClusterNode {
    const log = (event: ActivityRecord["event"], node: string, message: string) =>
      this.#log.add({ address: node, accepted: true, time: Date.now(), event, message });
    return new ClusterNode(options, {
      deliverAll: (bytes, text) => void this.#broadcastHere(bytes, text, this.#slowConsumer),
      deliverTo: (client, bytes, text) => {
        const connection = client.key !== undefined
          ? findByKey(this.connections, client.key)
          : this.connections.get(client.address ?? "");
        if (connection === undefined || connection.isClosed) return;
        connection.send(text ? new TextDecoder().decode(bytes) : bytes).catch(() => {});
      },
      record: (record) => this.#log.add(record),
      log,
    });
  }

  #closeListener(): void {
    this.#listenerClosed = true;
    this.#listener.close();
    this.#webListener?.close();
  }

  // Ends only once the listener is closed: a failed accept (out of file
  // descriptors, a connection aborted in the backlog) is logged and retried
  // with a growing pause, so that the server serves again once it can.
  async #accept(): Promise<void> {
    let backoff = 0;
    while (!this.#listenerClosed) {
      let conn: Transport | undefined;
      try {
        conn = await this.#listener.accept();
        if (conn === undefined) return;
      } catch (error) {
        if (this.#listenerClosed) return;
        backoff = Math.min(MAX_ACCEPT_BACKOFF, Math.max(MIN_ACCEPT_BACKOFF, backoff * 2));
        const why = error instanceof Error ? error.message : String(error);
        this.#refuse(
          this.address,
          "server-busy",
          `Cannot accept a connection: ${why}; retrying in ${backoff} ms`,
        );
        await pause(backoff, this.#stopping.signal);
        continue;
      }
      backoff = 0;
      this.#admit(conn);
    }
  }

  #admit(conn: Transport): void {
    const address = conn.remoteAddress;
    if (this.#stopping.signal.aborted) return void conn.close();
    const host = sourceOf(conn.remoteHostname);
    const refused = this.#admission(conn.remoteHostname, host);
    if (refused !== undefined) return this.#refuseAtAccept(conn, address, refused);
    this.#count(host, 1, 0);
    this.#track(this.#handshake(conn, address, host));
  }

  #admission(hostname: string, host: string): RefuseReason | undefined {
    if (this.#allowedHostnames && !this.#allowedHostnames.has(hostname)) return "unauthorized";
    if (this.#connected >= this.#maxConnections) return "server-full";
    const mine = this.#perAddress.get(host);
    if ((mine?.handshakes ?? 0) >= this.#maxHandshakesPerAddress) return "too-many-from-address";
    if ((mine?.connections ?? 0) >= this.#maxConnectionsPerAddress) return "too-many-from-address";
    if (this.#pending >= this.#maxPendingHandshakes) return "server-busy";
    return undefined;
  }

  // A refused socket lingers to deliver its refusal (closing it with unread
  // data would reset it); lingering sockets hold descriptors too, so they
  // have their own bound, past which a refused socket is closed at once.
  #refuseAtAccept(conn: Transport, address: string, reason: RefuseReason): void {
    this.#refuse(address, reason, `Refused ${address}: ${reason}`);
    this.#sendRefusal(conn, reason);
  }

  #sendRefusal(conn: Transport, reason: RefuseReason): void {
    const linger = this.#lingering < this.#maxPendingHandshakes ? undefined : 0;
    this.#lingering++;
    const refusing = sendAndClose(conn, encodeRefuse(reason), linger);
    this.#track(refusing.finally(() => this.#lingering--));
  }

  // Handshakes and connections, counted per address and in all.
  #count(host: string, handshakes: number, connections: number): void {
    this.#pending += handshakes;
    this.#connected += connections;
    const mine = this.#perAddress.get(host) ?? { handshakes: 0, connections: 0 };
    mine.handshakes += handshakes;
    mine.connections += connections;
    if (mine.handshakes === 0 && mine.connections === 0) this.#perAddress.delete(host);
    else this.#perAddress.set(host, mine);
  }

  #track(task: Promise<void>): void {
    this.#handshakes.add(task);
    task.finally(() => this.#handshakes.delete(task));
  }

  async #handshake(conn: Transport, address: string, host: string): Promise<void> {
    let connection: Connection;
    const slot = { taken: false, over: false };
    try {
      await abortable(this.ready, this.#stopping.signal);
      const established = await withDeadline(
        this.#config.handshakeTimeout,
        this.#stopping.signal,
        () =>
          establishServer(conn, {
            ...this.#config,
            keyPair: this.#keyPair!,
            authorize: (publicKey) => this.#authorize(publicKey, address, host, slot),
          }),
      );
      const queue = feedingQueue(
        this.#options,
        this.#arrivals,
        () => this.#table.remove(connection),
        this.#budget,
      );
      connection = openConnection({
        conn,
        established,
        options: { ...this.#options, maxMessageSize: this.#config.maxMessageSize },
        queue,
        onClose: (closed, info) => this.#onClose(closed, info, host),
        budget: this.#budget,
      });
    } catch (error) {
      slot.over = true; // An authorizer still running must not take a slot now.
      this.#count(host, -1, slot.taken ? -1 : 0);
      // A client past the deadline is told so (PROTOCOL.md section 4), best effort.
      if (error instanceof TimeoutError && !this.#stopping.signal.aborted) {
        this.#sendRefusal(conn, "timeout");
      } else conn.close();
      const reason = this.#stopping.signal.aborted
        ? "aborted"
        : (error as { reason?: RefuseReason }).reason ??
          (error instanceof TimeoutError ? "timeout" : "aborted");
      this.#refuse(address, reason, (error as Error).message ?? String(error));
      return;
    }
    this.#count(host, -1, 0);
    this.#table.add(connection);
    this.#cluster?.joined(connection.id, connection.remotePublicKey, address);
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

  async #authorize(
    publicKey: Uint8Array<ArrayBuffer>,
    address: string,
    host: string,
    slot: { taken: boolean; over: boolean },
  ): Promise<boolean> {
    if (this.#allowedKeys && !this.#allowedKeys.has(keyId(publicKey))) return false;
    const allowed = this.#options.authorize
      ? await this.#options.authorize({ publicKey, address }) === true
      : true;
    if (!allowed || slot.over) return false;
    this.#takeSlot(host, slot);
    return true;
  }

  // The connection's slot is taken once the client is proven and allowed,
  // with no await before the count: concurrent handshakes cannot overshoot.
  #takeSlot(host: string, slot: { taken: boolean; over: boolean }): void {
    let reason: RefuseReason | undefined;
    if (this.#connected >= this.#maxConnections) reason = "server-full";
    else if ((this.#perAddress.get(host)?.connections ?? 0) >= this.#maxConnectionsPerAddress) {
      reason = "too-many-from-address";
    }
    if (reason !== undefined) {
      throw new RefusedError(`Cannot accept client: ${reason}`, { reason });
    }
    slot.taken = true;
    this.#count(host, 0, 1);
  }

  #onClose(connection: Connection, info: CloseInfo, host: string): void {
    this.#count(host, 0, -1);
    this.#cluster?.left(connection.id);
    if (connection.data.length === 0) this.#table.remove(connection);
    this.#log.add(disconnectedRecord(connection, info));
  }

  #refuse(address: string, reason: RefuseReason, message: string): void {
    if (ADMISSION_REASONS.has(reason)) {
      const burst = this.#bursts.get(reason);
      if (burst !== undefined) {
        burst.count++;
        burst.last = address;
        return;
      }
      const timer = setTimeout(() => this.#endBurst(reason, false), BURST_MS);
      this.#bursts.set(reason, { count: 0, last: address, timer });
    }
    this.#log.add({
      address,
      accepted: false,
      time: Date.now(),
      event: "refused",
      reason,
      message,
    });
  }

  // Sums up a burst's refusals since its last record; the burst ends once a
  // whole period passes without one.
  #endBurst(reason: RefuseReason, stopping: boolean): void {
    const burst = this.#bursts.get(reason)!;
    clearTimeout(burst.timer);
    if (burst.count > 0) {
      this.#log.add({
        address: burst.last,
        accepted: false,
        time: Date.now(),
        event: "refused",
        reason,
        message: `Refused ${burst.count} more connections (${reason}), the last from ${burst.last}`,
        count: burst.count,
      });
    }
    if (burst.count === 0 || stopping) return void this.#bursts.delete(reason);
    burst.count = 0;
    burst.timer = setTimeout(() => this.#endBurst(reason, false), BURST_MS);
  }
}

/**
 * `maxConnections`, checked against the process's open-file limit: each
 * connection, handshake in progress and lingering refusal holds a
 * descriptor. The default is lowered to fit; a value given that does not fit
 * is refused.
 */
function fitDescriptors(maxConnections: number | undefined, maxPending: number): number {
  const wanted = positive(maxConnections, "maxConnections", 1024);
  const limit = openFileLimit();
  if (limit === undefined) return wanted;
  const room = limit - RESERVED_DESCRIPTORS - 2 * maxPending;
  if (wanted <= room) return wanted;
  if (maxConnections === undefined && room >= 1) return room;
  const asked = maxConnections === undefined ? "one connection" : `maxConnections ${wanted}`;
  const need = (maxConnections ?? 1) + 2 * maxPending + RESERVED_DESCRIPTORS;
  throw new RangeError(
    `Cannot listen: ${asked} and maxPendingHandshakes ${maxPending} need ${need} file ` +
      `descriptors, but the open-file limit is ${limit}; raise it (ulimit -n) or lower them`,
  );
}

/** Waits `ms`, or less if `signal` aborts; leaves no timer behind. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function encodeData(data: string | Uint8Array): { bytes: Uint8Array; text: boolean } {
  if (typeof data === "string") return { bytes: new TextEncoder().encode(data), text: true };
  if (data instanceof Uint8Array) return { bytes: data, text: false };
  throw new TypeError("Cannot send message: expected a string or a Uint8Array");
}

function keyId(key: Uint8Array): string {
  return Array.from(key, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
