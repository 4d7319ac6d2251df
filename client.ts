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

import { checkHostname, checkPort, commonConfig, loadKeyPair } from "./_config.ts";
import { establishClient, withDeadline } from "./_establish.ts";
import { closeQuietly } from "./_socket.ts";
import { ConnectError, ConnectionClosedError } from "./errors.ts";
import { internals } from "./_internal.ts";
import { assertBytes, copy } from "./_bytes.ts";
import type { KeyPair } from "./cipher.ts";
import type { CloseInfo, CloseOptions, Connection, ConnectionOptions } from "./connection.ts";
import { type Packet, PacketQueue, type ReceiveOptions } from "./queue.ts";

/** Options of {@linkcode ClientNetwork}. */
export interface ClientOptions extends ConnectionOptions {
  /**
   * The server's address.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The server's port. */
  port: number;
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
  /** Aborts connecting; the connect rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * An aesm client: one encrypted connection to a server.
 *
 * Without `serverPublicKey` or a `psk`, the client does not know whom it
 * talks to: the channel is encrypted and forward-secret, but a man in the
 * middle could run it. Pin the server's key, or share a psk, to rule that out.
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
 */
export class ClientNetwork implements AsyncIterable<Packet>, AsyncDisposable {
  /**
   * The packets received, oldest first (the original's `retrieved`). The
   * same queue as `client.connection.data` (a server's connection calls its
   * queue `data`, as the original did).
   */
  readonly retrieved: PacketQueue;
  /** Resolves once connected; rejects with why connecting failed. */
  readonly ready: Promise<void>;
  #connection: Connection | undefined;
  #keyPair: KeyPair | undefined;
  #cancel = new AbortController();
  #closed: Promise<CloseInfo>;

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
    const config = {
      hostname: checkHostname(hostname),
      port: checkPort(port),
      ...commonConfig(options),
      serverPublicKey: options.serverPublicKey &&
        (assertBytes(options.serverPublicKey, "serverPublicKey", 32),
          copy(options.serverPublicKey)),
    };
    this.retrieved = new PacketQueue(options);
    this.ready = this.#connect(config, options);
    this.#closed = this.ready.then(
      () => this.#connection!.closed,
      (error) => {
        internals.sinkOf!(this.retrieved).close();
        return { reason: "aborted", clean: false, by: "local", message: "never connected", error };
      },
    );
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
   * (`code` `"ECONNREFUSED"`), or the host cannot be reached.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  static async connect(options: ClientOptions): Promise<ClientNetwork> {
    const client = new ClientNetwork(options.hostname ?? "127.0.0.1", options.port, options);
    await client.ready;
    return client;
  }

  /**
   * The connection, once connected.
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
   * Resolves once the connection has ended, with why (reason `"aborted"` if it never connected).
   * Never rejects.
   */
  get closed(): Promise<CloseInfo> {
    return this.#closed;
  }

  /**
   * Sends a message, waiting to be connected first.
   *
   * @param data A string or bytes.
   * @throws {TypeError} If `data` is neither a string nor a `Uint8Array`.
   * @throws {MessageTooLargeError} If it exceeds the server's limit.
   * @throws {ConnectionClosedError} If the connection is closed.
   * @throws {unknown} Why connecting failed, if it did (as `ready` rejects).
   */
  send(data: string | Uint8Array): Promise<void> {
    return this.#connection?.send(data) ?? this.ready.then(() => this.#connection!.send(data));
  }

  /**
   * Sends a message (the original's `sendData`); see {@linkcode ClientNetwork.send}.
   *
   * @param data A string or bytes.
   * @throws {MessageTooLargeError} If it exceeds the server's limit.
   * @throws {ConnectionClosedError} If the connection is closed.
   */
  sendData(data: string | Uint8Array): Promise<void> {
    return this.send(data);
  }

  /**
   * Waits until every message sent so far is written to the socket.
   *
   * @throws {ConnectionClosedError} If the connection ended before they were written.
   * @throws {unknown} Why connecting failed, if it did (as `ready` rejects).
   */
  async flush(): Promise<void> {
    await this.ready;
    await this.connection.flush();
  }

  /**
   * Takes the next packet, waiting for one.
   *
   * @param options A signal to stop waiting.
   * @returns The packet, or `undefined` once the connection has ended and every packet was taken.
   * @throws {unknown} `options.signal.reason` if the signal aborts.
   */
  receive(options?: ReceiveOptions): Promise<Packet | undefined> {
    return this.retrieved.receive(options);
  }

  /** Takes packets as they arrive until the connection ends. */
  [Symbol.asyncIterator](): AsyncIterator<Packet> {
    return this.retrieved[Symbol.asyncIterator]();
  }

  /**
   * Closes the connection cleanly, flushing what was sent. Idempotent.
   *
   * @param options The reason and message for the server.
   * @returns How the connection ended.
   */
  async close(options?: CloseOptions): Promise<CloseInfo> {
    if (this.#connection === undefined) {
      this.#cancel.abort(
        new ConnectionClosedError("Cannot connect: the client was closed", { reason: "aborted" }),
      );
    }
    await this.ready.catch(() => {});
    return this.#connection ? await this.#connection.close(options) : await this.#closed;
  }

  /** Closes the connection (the original's `stop()`); see {@linkcode ClientNetwork.close}. */
  async stop(): Promise<void> {
    await this.close();
  }

  /** Closes the connection; see {@linkcode ClientNetwork.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #connect(
    config: {
      hostname: string;
      port: number;
      applicationName: string;
      psk: Uint8Array<ArrayBuffer> | undefined;
      maxMessageSize: number;
      handshakeTimeout: number;
      serverPublicKey: Uint8Array<ArrayBuffer> | undefined;
    },
    options: ConnectionOptions & {
      keyPair?: KeyPair;
      keyFile?: string | URL;
      signal?: AbortSignal;
    },
  ): Promise<void> {
    await Promise.resolve();
    this.#keyPair = await loadKeyPair(options.keyPair, options.keyFile);
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#cancel.signal])
      : this.#cancel.signal;
    let conn: Deno.TcpConn | undefined;
    try {
      const established = await withDeadline(config.handshakeTimeout, signal, async (deadline) => {
        conn = await Deno.connect({
          hostname: config.hostname,
          port: config.port,
          signal: deadline,
        }).catch((error) => {
          throw deadline.aborted ? error : connectError(error, config.hostname, config.port);
        });
        deadline.throwIfAborted();
        conn.setNoDelay(true);
        return await establishClient(conn, { ...config, keyPair: this.#keyPair! });
      });
      this.#connection = internals.openConnection!({
        conn: conn!,
        established,
        options: { ...options, maxMessageSize: config.maxMessageSize },
        queue: this.retrieved,
      });
    } catch (error) {
      if (conn !== undefined) closeQuietly(conn);
      throw error;
    }
  }
}

function connectError(error: unknown, hostname: string, port: number): ConnectError {
  const address = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  const code = (error as { code?: string }).code ?? (error as Error).name ?? "ERROR";
  const hint = code === "ECONNREFUSED"
    ? "connection refused (is a server listening there?)"
    : (error as Error).message ?? String(error);
  return new ConnectError(`Cannot connect to ${address}: ${hint}`, { code, address, cause: error });
}
