// Copyright 2026 the aesm authors. MIT license.
/**
 * The client: connects to a server, runs the handshake, and keeps the
 * packets it receives.
 *
 * @example Pinning the server's key
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({
 *   hostname: "127.0.0.1",
 *   port: server.port,
 *   serverPublicKey: server.publicKey,
 * });
 * assert.deepEqual(client.remotePublicKey, server.publicKey);
 * ```
 *
 * @module
 */

import {
  checkHostname,
  checkPort,
  commonConfig,
  loadKeyPair,
  positive,
} from "./_connection/config.ts";
import { establishClient, withDeadline } from "./_connection/establish.ts";
import { Outbox, utf8Length } from "./_client/outbox.ts";
import {
  backoff,
  checkReconnect,
  failureReason,
  type ReconnectPolicy,
  REFUSALS_BEFORE_GIVING_UP,
  sleep,
  weigh,
  worthReconnecting,
} from "./_client/reconnect.ts";
import type { Transport } from "./_transport/transport.ts";
import { dialTcp } from "./_transport/tcp.ts";
import { dialWebSocket } from "./_transport/websocket.ts";
import {
  BufferFullError,
  type CloseReason,
  ConnectError,
  ConnectionClosedError,
  type RefuseReason,
} from "./errors.ts";
import { disconnectedRecord, openConnection, sinkOf } from "./_connection/connection.ts";
import { type ActivityWriter, activityWriter } from "./_queue/activity_log.ts";
import { assertBytes, copy } from "./_crypto/bytes.ts";
import { ActivityLog, DEFAULT_ACTIVITY_LIMIT } from "./activity.ts";
import type { KeyPair } from "./cipher.ts";
import {
  type CloseInfo,
  type CloseOptions,
  type Connection,
  type ConnectionOptions,
  DEFAULT_MAX_BUFFERED_AMOUNT,
} from "./connection.ts";
import { type Packet, PacketQueue, type ReceiveOptions } from "./queue.ts";

/** Options of {@linkcode ClientNetwork}. */
export interface ClientOptions extends ConnectionOptions {
  /**
   * The server's address.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The server's port (required unless `url` is given). */
  port?: number;
  /**
   * Connect over WebSocket instead of TCP: a `ws://` or `wss://` URL of a
   * server's WebSocket listener (`PROTOCOL.md` section 12). Replaces
   * `hostname` and `port`; the only way in a browser.
   */
  url?: string | URL;
  /**
   * More servers to reconnect to, such as the other nodes of a cluster:
   * after a connection is lost, each attempt goes to the next address in
   * turn (`hostname:port` first, then these, then round again). Every one
   * must pass the same checks (`psk`, `serverPublicKey`).
   *
   * @default {[]}
   */
  endpoints?: Endpoint[];
  /**
   * The application name, bound into the handshake: the server must use the same.
   *
   * @default {"aesm"}
   */
  applicationName?: string;
  /** The client's static key pair; generated when absent. */
  keyPair?: KeyPair;
  /**
   * A key file holding the client's static key pair (made, mode 0600, if
   * missing): a stable identity for servers that allow listed keys. Not with
   * `keyPair`.
   */
  keyFile?: string | URL;
  /** A 32-byte pre-shared key; the server must have the same one. */
  psk?: Uint8Array;
  /** The server's public key: any other is refused with an `AuthenticationError`. */
  serverPublicKey?: Uint8Array;
  /**
   * Milliseconds to connect and complete the handshake.
   *
   * @default {10000}
   */
  handshakeTimeout?: number;
  /**
   * Aborts the first connect; it rejects with `signal.reason`. Reconnect
   * attempts ignore it: `close()` stops them.
   */
  signal?: AbortSignal;
  /**
   * Reconnecting after the connection is lost: `false` turns it off. Each
   * attempt is a new handshake with the same checks (`psk`,
   * `serverPublicKey`). See {@linkcode ReconnectOptions}.
   *
   * @default {true}
   */
  reconnect?: ReconnectOptions | boolean;
  /**
   * Unread records kept in `client.activity` (the oldest go first).
   *
   * @default {10000}
   */
  activityLimit?: number;
}

/** A server address, for {@linkcode ClientOptions.endpoints}. */
export interface Endpoint {
  /**
   * The server's address.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The server's port. */
  port: number;
}

/**
 * How a {@linkcode ClientNetwork} reconnects: exponential backoff with full
 * jitter. Attempt `n` (from 1) waits a random time from 0 to
 * `min(maxDelay, initialDelay * 2^(n - 1))` ms. The backoff starts again
 * from `initialDelay` once a connection has lasted `maxDelay`; after one lost
 * sooner it goes on from where it stopped, so a server that takes connections
 * and drops them at once is not hammered.
 */
export interface ReconnectOptions {
  /**
   * Milliseconds: the most the first attempt waits (1 to 2^31 − 1).
   *
   * @default {1000}
   */
  initialDelay?: number;
  /**
   * Milliseconds: the most any attempt waits (at least `initialDelay`, at
   * most 2^31 − 1).
   *
   * @default {30000}
   */
  maxDelay?: number;
  /**
   * Attempts after a connection is lost before the client gives up, or
   * `Infinity`.
   *
   * @default {Infinity}
   */
  maxAttempts?: number;
}

interface ClientConfig {
  /** Where to connect over WebSocket, if not over TCP. */
  readonly url: URL | undefined;
  readonly hostname: string;
  readonly port: number;
  readonly applicationName: string;
  readonly psk: Uint8Array<ArrayBuffer> | undefined;
  readonly maxMessageSize: number;
  readonly handshakeTimeout: number;
  readonly serverPublicKey: Uint8Array<ArrayBuffer> | undefined;
}

/**
 * An aesm client: an encrypted connection to a server, made again when it
 * is lost.
 *
 * Without `serverPublicKey` or a `psk`, the client does not know whom it
 * talks to: the channel is encrypted and forward-secret, but a man in the
 * middle could run it. Pin the server's key, or share a psk, to rule that out.
 *
 * **Reconnecting.** A lost connection is made again after a backoff (see
 * {@linkcode ReconnectOptions}): one cut, reset or timed out (`idle-timeout`
 * included), and one the server closed because it stops (`shutdown`, most
 * often a restart) or with another reason than `normal`. Final are
 * `close()`, a `close()` or `abort()` of `client.connection`, and a server's
 * `normal` close, which it meant for this client. The client, its
 * `retrieved` queue, its iteration and its `activity` live on across
 * connections; `connection` is the latest one. Each attempt makes a new
 * handshake. A refusal that cannot heal ends the client (`gave-up`): at once
 * when this side's own check fails (a server key that is not the pinned one,
 * `key-rejected`, proven by the handshake); a server's Refuse frame saying
 * `psk-mismatch`, `application-mismatch`, `protocol-mismatch`, `version` or
 * `unauthorized` is not authenticated (anyone on the path can forge one), so
 * it makes the next attempt wait `maxDelay`, and the client gives up only
 * when three attempts in a row are refused so. `activity` records each step,
 * with the refusal's error.
 *
 * **Sending during an outage.** While no connection is open, `send()` and
 * `flush()` wait for the next connection and then go through it, in order.
 * Messages that wait count toward `maxBufferedAmount`, as a connection's
 * unwritten bytes do: once that many bytes wait, a send rejects at once with
 * a `BufferFullError` (awaited sends never come near it). If the client
 * gives up or is closed, what waits rejects with a `ConnectionClosedError`.
 * Messages the lost connection had accepted but not delivered are not sent
 * again: a send that resolved before the loss may not have arrived, and one
 * that was still waiting then rejects.
 *
 * @example Connecting with a pre-shared key
 * ```ts
 * import assert from "node:assert/strict";
 * import { AuthenticationError, ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * const hostname = "127.0.0.1";
 * const psk = crypto.getRandomValues(new Uint8Array(32));
 * await using server = await ServerNetwork.listen({ hostname, port: 0, psk });
 * await using client = await ClientNetwork.connect({ hostname, port: server.port, psk });
 * await client.send("hello");
 * assert.equal((await server.receive())?.data, "hello");
 * await assert.rejects(
 *   ClientNetwork.connect({ hostname, port: server.port, psk: new Uint8Array(32) }),
 *   (error) => error instanceof AuthenticationError && error.reason === "psk-mismatch",
 * );
 * ```
 *
 * @example Reconnecting through a server restart
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * const hostname = "127.0.0.1";
 * const dir = await Deno.makeTempDir();
 * const keyFile = `${dir}/server.key`; // The server keeps its key across restarts.
 * const first = await ServerNetwork.listen({ hostname, port: 0, keyFile });
 * const { port, publicKey } = first;
 * await using client = await ClientNetwork.connect({
 *   hostname,
 *   port,
 *   serverPublicKey: publicKey,
 *   reconnect: { initialDelay: 50, maxDelay: 500 },
 * });
 * await first.stop(); // The client sees "shutdown" and tries again.
 * const sending = client.send("sent during the outage"); // Waits for the next connection.
 * await using second = await ServerNetwork.listen({ hostname, port, keyFile });
 * await sending;
 * assert.equal((await second.receive())?.text(), "sent during the outage");
 * const events = [];
 * for (let record = client.activity.take(); record; record = client.activity.take()) {
 *   events.push(record.event);
 * }
 * assert.deepEqual(events.slice(0, 3), ["connected", "disconnected", "reconnecting"]);
 * assert.equal(events.at(-1), "connected");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ClientNetwork implements AsyncIterable<Packet>, AsyncDisposable {
  /**
   * The packets received, oldest first (the original's `retrieved`), on every
   * connection the client made. The same queue as `client.connection.data`
   * (a server's connection calls its queue `data`, as the original did).
   */
  readonly retrieved: PacketQueue;
  /**
   * The client's activity: `connected`, `disconnected` (with `reason` and
   * `clean`), `reconnecting` (with `attempt` and `delay`) and `gave-up`
   * records, as a server's `activity` holds its own. It ends when the client
   * does.
   */
  readonly activity: ActivityLog;
  /** Resolves once first connected; rejects with why the first connect failed. */
  readonly ready: Promise<void>;
  #config: ClientConfig;
  #targets: { hostname: string; port: number }[];
  #target = 0;
  #options: ConnectionOptions;
  #policy: ReconnectPolicy | false;
  #connection: Connection | undefined;
  #keyPair: KeyPair | undefined;
  #cancel = new AbortController();
  #closing = false;
  #log: ActivityWriter;
  #outbox: Outbox;
  #ended = Promise.withResolvers<CloseInfo>();
  #final: CloseInfo | undefined;
  #failure: unknown;
  #connectedAt = 0;
  #carried = 0; // Backoff steps carried over from connections that did not last.

  /**
   * Connects to `hostname:port` (the original's `ClientNetwork(host, port)`).
   * Sending waits until connected; `ready` tells when.
   *
   * @param hostname The server's address.
   * @param port The server's port.
   * @param options Everything else.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If a number is out of range.
   */
  constructor(
    hostname: string,
    port: number,
    options?: Omit<ClientOptions, "hostname" | "port">,
  ) {
    options ??= {};
    const url = options.url === undefined ? undefined : checkUrl(options.url);
    this.#config = {
      url,
      hostname: url ? url.hostname : checkHostname(hostname),
      port: url ? 0 : checkPort(port),
      ...commonConfig(options),
      serverPublicKey: options.serverPublicKey &&
        (assertBytes(options.serverPublicKey, "serverPublicKey", 32),
          copy(options.serverPublicKey)),
    };
    this.#targets = [
      { hostname: this.#config.hostname, port: this.#config.port },
      ...checkEndpoints(options.endpoints),
    ];
    this.#policy = checkReconnect(options.reconnect);
    this.#options = { ...options, maxMessageSize: this.#config.maxMessageSize };
    this.retrieved = new PacketQueue(options);
    this.activity = new ActivityLog(
      positive(options.activityLimit, "activityLimit", DEFAULT_ACTIVITY_LIMIT),
    );
    this.#log = activityWriter(this.activity);
    this.#outbox = new Outbox(options.maxBufferedAmount ?? DEFAULT_MAX_BUFFERED_AMOUNT);
    this.ready = this.#start(options);
    this.ready.catch((error) => {
      this.#failure = error;
      this.#finish({
        reason: "aborted",
        clean: false,
        by: "local",
        message: "never connected",
        error,
      });
    });
  }

  /**
   * Connects and waits for the handshake.
   *
   * @param options Where to connect, and everything else.
   * @returns The connected client.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If a number is out of range.
   * @throws {HandshakeError} If the handshake fails; an `AuthenticationError` if authentication
   * does.
   * @throws {TimeoutError} If it takes longer than `handshakeTimeout`.
   * @throws {ConnectError} If the TCP connect fails: nothing listens at the address
   * (`code` `"ECONNREFUSED"`), or the host cannot be reached; with `url`, if the WebSocket
   * does not open (`code` `"EWEBSOCKET"`).
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  static async connect(options: ClientOptions): Promise<ClientNetwork> {
    const client = new ClientNetwork(
      options.hostname ?? "127.0.0.1",
      options.port as number,
      options,
    );
    await client.ready;
    return client;
  }

  /**
   * The connection, once connected: the latest one (closed during an outage).
   *
   * @throws {TypeError} Before `ready` resolves.
   */
  get connection(): Connection {
    if (this.#connection === undefined) {
      throw new TypeError("Cannot use the connection: await client.ready first");
    }
    return this.#connection;
  }

  /**
   * The server's address, `host:port`.
   *
   * @throws {TypeError} Before `ready` resolves.
   */
  get address(): string {
    return this.connection.address;
  }

  /**
   * This side's address, `host:port`: how the server names this client.
   *
   * @throws {TypeError} Before `ready` resolves.
   */
  get localAddress(): string {
    return this.connection.localAddress;
  }

  /**
   * This client's static public key.
   *
   * @throws {TypeError} Before `ready` resolves.
   */
  get publicKey(): Uint8Array<ArrayBuffer> {
    if (this.#keyPair === undefined) {
      throw new TypeError("Cannot read publicKey: await client.ready first");
    }
    return this.#keyPair.publicKey;
  }

  /**
   * The server's static public key, as proven in the handshake.
   *
   * @throws {TypeError} Before `ready` resolves.
   */
  get remotePublicKey(): Uint8Array<ArrayBuffer> {
    return this.connection.remotePublicKey;
  }

  /**
   * The Noise handshake hash, the same on both sides.
   *
   * @throws {TypeError} Before `ready` resolves.
   */
  get handshakeHash(): Uint8Array<ArrayBuffer> {
    return this.connection.handshakeHash;
  }

  /**
   * Resolves once the client has ended for good, with how its last
   * connection ended: closed by `close()` (or a close or abort of
   * `client.connection`), by the server (`normal`), lost with reconnecting
   * off, or given up (then `message` says so and `error` holds
   * the last attempt's error). Reason `"aborted"` if it never connected or
   * was closed while reconnecting. Never rejects.
   */
  get closed(): Promise<CloseInfo> {
    return this.#ended.promise;
  }

  /**
   * Sends a message, waiting to be connected first (also while reconnecting).
   *
   * @param data A string or bytes. Bytes are copied before this returns.
   * @throws {TypeError} If `data` is neither a string nor a `Uint8Array`.
   * @throws {MessageTooLargeError} If it exceeds the server's limit.
   * @throws {ConnectionClosedError} If the client has ended, or ends while the send waits.
   * @throws {BufferFullError} If `maxBufferedAmount` bytes already wait to be written, or to be
   * sent on the next connection.
   * @throws {unknown} Why connecting failed, if the first connect did (as `ready` rejects).
   */
  send(data: string | Uint8Array): Promise<void> {
    const connection = this.#answering();
    if (connection !== undefined) return connection.send(data);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (typeof data !== "string" && !(data instanceof Uint8Array)) {
      return Promise.reject(
        new TypeError("Cannot send message: expected a string or a Uint8Array"),
      );
    }
    if (this.#outbox.full) {
      return Promise.reject(new BufferFullError(this.#outbox.bytes, this.#outbox.limit));
    }
    const message = typeof data === "string" ? data : data.slice();
    const size = typeof message === "string" ? utf8Length(message) : message.length;
    return this.#outbox.add(size, (next) => next.send(message));
  }

  /**
   * Sends a message (the original's `sendData`); see {@linkcode ClientNetwork.send}.
   *
   * @param data A string or bytes.
   * @throws {MessageTooLargeError} If it exceeds the server's limit.
   * @throws {ConnectionClosedError} If the client has ended.
   * @throws {BufferFullError} If `maxBufferedAmount` bytes already wait.
   */
  sendData(data: string | Uint8Array): Promise<void> {
    return this.send(data);
  }

  /**
   * Waits until every message sent so far is written to the socket; while
   * reconnecting, until the next connection has written those that waited.
   *
   * @throws {ConnectionClosedError} If the connection ended before they were written.
   * @throws {unknown} Why connecting failed, if the first connect did (as `ready` rejects).
   */
  flush(): Promise<void> {
    const connection = this.#answering();
    if (connection !== undefined) return connection.flush();
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return this.#outbox.add(0, (next) => next.flush());
  }

  /**
   * Takes the next packet, waiting for one.
   *
   * @param options A signal to stop waiting.
   * @returns The packet, or `undefined` once the client has ended and every packet was taken.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  receive(options?: ReceiveOptions): Promise<Packet | undefined> {
    return this.retrieved.receive(options);
  }

  /** Takes packets as they arrive, across reconnects, until the client ends. */
  [Symbol.asyncIterator](): AsyncIterator<Packet> {
    return this.retrieved[Symbol.asyncIterator]();
  }

  /**
   * Closes the connection cleanly, flushing what was sent, and stops
   * reconnecting: a wait between attempts or an attempt under way ends at
   * once. Idempotent.
   *
   * @param options The reason and message for the server.
   * @returns How the client ended (see {@linkcode ClientNetwork.closed}).
   */
  close(options?: CloseOptions): Promise<CloseInfo> {
    if (!this.#closing) {
      this.#closing = true;
      this.#cancel.abort(
        new ConnectionClosedError("Cannot connect: the client was closed", { reason: "aborted" }),
      );
      if (this.#connection?.isClosed === false) this.#connection.close(options);
    }
    return this.#ended.promise;
  }

  /** Closes the client (the original's `stop()`); see {@linkcode ClientNetwork.close}. */
  async stop(): Promise<void> {
    await this.close();
  }

  /** Closes the client; see {@linkcode ClientNetwork.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // The connection that answers a send or flush now: the open one, or the last one once no other
  // will come (its errors then tell why). Undefined while one may still come.
  #answering(): Connection | undefined {
    const connection = this.#connection;
    if (connection === undefined) return undefined;
    return !connection.isClosed || this.#closing || this.#final ? connection : undefined;
  }

  async #start(options: ClientOptions | Omit<ClientOptions, "hostname" | "port">): Promise<void> {
    await Promise.resolve();
    this.#keyPair = await loadKeyPair(options.keyPair, options.keyFile);
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#cancel.signal])
      : this.#cancel.signal;
    this.#adopt(await this.#open(signal));
  }

  // One attempt: TCP connect, handshake, connection. The signal aborts it.
  async #open(signal: AbortSignal): Promise<Connection> {
    const config = { ...this.#config, ...this.#targets[this.#target] };
    let conn: Transport | undefined;
    try {
      const established = await withDeadline(config.handshakeTimeout, signal, async (deadline) => {
        conn = await dial(config, deadline);
        deadline.throwIfAborted();
        return await establishClient(conn, { ...config, keyPair: this.#keyPair! });
      });
      return openConnection({
        conn: conn!,
        established,
        options: this.#options,
        queue: this.retrieved,
        sharedQueue: true,
      });
    } catch (error) {
      conn?.close();
      throw error;
    }
  }

  #adopt(connection: Connection, attempt?: number): void {
    this.#connection = connection;
    this.#connectedAt = performance.now();
    this.#log.add({
      address: connection.address,
      accepted: true,
      time: Date.now(),
      event: "connected",
      message: attempt === undefined ? "connected" : `connected again on attempt ${attempt}`,
      publicKey: connection.remotePublicKey,
      ...(attempt === undefined ? {} : { attempt }),
    });
    connection.closed.then((info) => this.#onLost(connection, info));
    if (this.#closing) connection.close(); // close() came as the handshake completed.
    else this.#outbox.deliver(connection);
  }

  #onLost(connection: Connection, info: CloseInfo): void {
    this.#log.add(disconnectedRecord(connection, info));
    if (this.#closing || this.#policy === false || !worthReconnecting(info)) {
      this.#finish(info);
    } else {
      // A connection that lasted as long as the longest wait starts the backoff afresh; one lost
      // sooner goes on from where the last backoff stopped, so that a server that takes
      // connections and drops them at once is not hammered.
      const lasted = performance.now() - this.#connectedAt;
      if (lasted >= this.#policy.maxDelay) this.#carried = 0;
      this.#reconnect(this.#policy, info).catch((error) => {
        // Not expected: end the client rather than leave it waiting for a connection.
        this.#finish({ ...info, message: `Cannot reconnect: ${errorMessage(error)}`, error });
      });
    }
  }

  async #reconnect(policy: ReconnectPolicy, lost: CloseInfo): Promise<void> {
    let last: { reason: RefuseReason | CloseReason | undefined; error: unknown; message: string } =
      { reason: lost.reason, error: lost.error, message: `the connection ended: ${lost.message}` };
    let refusals = 0;
    let attempt = 0;
    while (attempt < policy.maxAttempts) {
      attempt++;
      this.#target = (this.#target + 1) % this.#targets.length;
      const delay = refusals > 0 ? policy.maxDelay : backoff(policy, this.#carried + attempt);
      this.#logAttempt("reconnecting", attempt, last, delay);
      if (!await sleep(delay, this.#cancel.signal)) return this.#finishClosed(lost);
      try {
        const connection = await this.#open(this.#cancel.signal);
        this.#carried += attempt;
        return this.#adopt(connection, attempt);
      } catch (error) {
        if (this.#closing) return this.#finishClosed(lost);
        last = { reason: failureReason(error), error, message: errorMessage(error) };
        const weight = weigh(error);
        refusals = weight === "lasting" ? refusals + 1 : 0;
        if (weight === "final" || refusals >= REFUSALS_BEFORE_GIVING_UP) break;
      }
    }
    this.#logAttempt("gave-up", attempt, last);
    const message = `gave up reconnecting after ${attempt} attempt${
      attempt === 1 ? "" : "s"
    }: ${last.message}`;
    this.#finish({ ...lost, message, error: last.error });
  }

  #logAttempt(
    event: "reconnecting" | "gave-up",
    attempt: number,
    last: { reason: RefuseReason | CloseReason | undefined; error: unknown; message: string },
    delay?: number,
  ): void {
    const of = this.#policy && Number.isFinite(this.#policy.maxAttempts)
      ? ` of ${this.#policy.maxAttempts}`
      : "";
    const message = event === "reconnecting"
      ? `reconnecting in ${delay} ms (attempt ${attempt}${of}): ${last.message}`
      : `gave up after attempt ${attempt}${of}: ${last.message}`;
    this.#log.add({
      address: this.#config.url?.host ??
        formatTarget(this.#targets[this.#target].hostname, this.#targets[this.#target].port),
      accepted: false,
      time: Date.now(),
      event,
      ...(last.reason === undefined ? {} : { reason: last.reason }),
      message,
      attempt,
      ...(delay === undefined ? {} : { delay }),
      ...(last.error === undefined ? {} : { error: last.error }),
    });
  }

  #finishClosed(lost: CloseInfo): void {
    this.#finish({
      reason: "aborted",
      clean: false,
      by: "local",
      message: `closed while reconnecting (the connection had ended: ${lost.reason})`,
      ...(lost.error === undefined ? {} : { error: lost.error }),
    });
  }

  // The final end: what waits for a connection is refused, and the queue and log end.
  #finish(info: CloseInfo): void {
    if (this.#final !== undefined) return;
    this.#final = info;
    this.#outbox.fail(
      this.#failure ??
        new ConnectionClosedError(`Cannot send message: the client has ended (${info.reason})`, {
          reason: info.reason,
          cause: info.error,
        }),
    );
    sinkOf(this.retrieved).close();
    this.#log.close();
    this.#ended.resolve(info);
  }
}

function checkEndpoints(endpoints: unknown): { hostname: string; port: number }[] {
  if (endpoints === undefined) return [];
  if (!Array.isArray(endpoints)) {
    throw new TypeError(
      `Cannot use option endpoints: expected an array of { hostname, port }, got ${typeof endpoints}`,
    );
  }
  return endpoints.map((endpoint: Endpoint) => {
    if (typeof endpoint !== "object" || endpoint === null) {
      throw new TypeError(
        `Cannot use option endpoints: expected { hostname, port } items, got ${String(endpoint)}`,
      );
    }
    return {
      hostname: checkHostname(endpoint.hostname ?? "127.0.0.1"),
      port: checkPort(endpoint.port),
    };
  });
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function formatTarget(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

function dial(
  config: { url: URL | undefined; hostname: string; port: number },
  signal: AbortSignal,
): Promise<Transport> {
  const dialing = config.url
    ? dialWebSocket(config.url, signal)
    : dialTcp(config.hostname, config.port, signal);
  return dialing.catch((error) => {
    if (signal.aborted) throw error;
    if (config.url) throw webSocketError(error, config.url);
    throw connectError(error, config.hostname, config.port);
  });
}

function checkUrl(url: string | URL): URL {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // Reported below.
  }
  if (parsed?.protocol !== "ws:" && parsed?.protocol !== "wss:") {
    throw new TypeError(`Cannot connect: url must be a ws:// or wss:// URL, got ${String(url)}`);
  }
  return parsed;
}

function webSocketError(error: unknown, url: URL): ConnectError {
  const why = (error as Error).message ?? String(error);
  return new ConnectError(`Cannot connect to ${url.href}: ${why}`, {
    code: "EWEBSOCKET",
    address: url.host,
    cause: error,
  });
}

function connectError(error: unknown, hostname: string, port: number): ConnectError {
  const address = formatTarget(hostname, port);
  const code = (error as { code?: string }).code ?? (error as Error).name ?? "ERROR";
  const hint = code === "ECONNREFUSED"
    ? "connection refused (is a server listening there?)"
    : (error as Error).message ?? String(error);
  return new ConnectError(`Cannot connect to ${address}: ${hint}`, { code, address, cause: error });
}
