// Copyright 2026 the aesm authors. MIT license.
/**
 * The implementations behind one small interface: aesm, Deno TLS with a
 * self-signed certificate, and raw TCP; and for the WebSocket rows, aesm
 * over WebSocket and Deno's own WebSocket over TLS (`wss://`, one binary
 * message per message). TLS and TCP carry `length (4) || message` (see
 * `_wire.ts`). Private.
 *
 * @module
 */

import { ClientNetwork, type Connection, ServerNetwork } from "../mod.ts";
import { PREFIX_LENGTH, prefixed, PrefixReader, writeAll } from "./_wire.ts";

/** An implementation's name. */
export type Impl = "aesm" | "tls" | "tcp" | "aesm-ws" | "wss";

/** The implementations of the TCP scenarios, in the order the tables list them. */
export const IMPLS: readonly Impl[] = ["aesm", "tls", "tcp"];
/** The implementations of the WebSocket scenarios: aesm over WebSocket, and its baseline. */
export const WS_IMPLS: readonly Impl[] = ["aesm-ws", "wss"];

/** How the tables name an implementation. */
export const IMPL_LABEL: Record<Impl, string> = {
  aesm: "aesm",
  tls: "Deno TLS",
  tcp: "raw TCP",
  "aesm-ws": "aesm over WebSocket",
  wss: "Deno WebSocket over TLS",
};

/** Whether `impl` needs the certificate. */
export function usesTls(impl: Impl): boolean {
  return impl === "tls" || impl === "wss";
}

/** The hostname everything listens on and connects to. */
export const HOST = "127.0.0.1";

/** The self-signed certificate TLS uses, as PEM. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
}

/** What the caller knows about where and how to connect. */
export interface Endpoint {
  readonly impl: Impl;
  readonly port: number;
  readonly tls?: TlsMaterial | undefined;
}

/** Sizing of reads and queues. */
export interface LinkOptions {
  /** The baselines' per-connection read buffer. */
  readonly readBuffer?: number;
}

/** One end of a connection carrying whole messages. */
export interface Link {
  /** Sends one message, resolving as the implementation's send does. */
  send(message: Uint8Array): Promise<void>;
  /**
   * Hands every message to `onMessage` (a view that is valid only during the
   * call) until `stop()` is true after a delivery or the stream ends.
   */
  consume(onMessage: (message: Uint8Array) => void, stop: () => boolean): Promise<void>;
  /** The next message, or `undefined` at the end of the stream. */
  next(): Promise<Uint8Array | undefined>;
  /** Closes the connection as the implementation does it cleanly. */
  close(): Promise<void>;
}

/** A server accepting links. */
export interface Server {
  readonly port: number;
  /** Links accepted and not yet ended. */
  readonly open: number;
  /** Every link accepted so far (handshake complete). */
  readonly accepted: number;
  /** Calls `onLink` for each link as it is accepted, until closed. */
  serve(onLink: (link: Link) => void | Promise<void>): void;
  /** Sends one message to every open link. */
  broadcast(message: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Options for servers. */
export interface ServerOptions extends LinkOptions {
  readonly tls?: TlsMaterial | undefined;
  readonly maxConnections?: number;
  readonly tcpBacklog?: number;
}

// Bounds on loops that otherwise run until a stream ends.
const MAX_DELIVERIES = 100_000_000;
const MAX_READS = 100_000_000;
const SMALL_WRITE = 64 * 1024;

/** Starts a server of `impl` on an ephemeral loopback port. */
export async function listen(impl: Impl, options: ServerOptions = {}): Promise<Server> {
  if (impl === "aesm" || impl === "aesm-ws") {
    return await AesmServer.start(options, impl === "aesm-ws");
  }
  if (impl === "wss") return new WssServer(options);
  return new StreamServer(impl, options);
}

/** Connects to `endpoint`, including the handshake. */
export async function connect(endpoint: Endpoint, options: LinkOptions = {}): Promise<Link> {
  if (endpoint.impl === "aesm" || endpoint.impl === "aesm-ws") {
    const client = await ClientNetwork.connect({
      ...endpoint.impl === "aesm"
        ? { hostname: HOST, port: endpoint.port }
        : { url: `ws://${HOST}:${endpoint.port}/` },
      handshakeTimeout: 60_000,
    });
    return new AesmLink(client);
  }
  if (endpoint.impl === "wss") {
    if (endpoint.tls === undefined) throw new TypeError("Cannot connect: wss needs a certificate");
    const client = Deno.createHttpClient({ caCerts: [endpoint.tls.cert] });
    const socket = new WebSocket(
      `wss://${HOST}:${endpoint.port}/`,
      { client } as unknown as string[], // Deno's options bag: trust the bench's certificate.
    );
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error("Cannot connect: the WebSocket failed to open"));
    });
    return new WsLink(socket, () => client.close());
  }
  if (endpoint.impl === "tls") {
    if (endpoint.tls === undefined) throw new TypeError("Cannot connect: TLS needs a certificate");
    const conn = await Deno.connectTls({
      hostname: HOST,
      port: endpoint.port,
      caCerts: [endpoint.tls.cert],
    });
    await conn.handshake();
    return new StreamLink(conn, options.readBuffer);
  }
  const conn = await Deno.connect({ hostname: HOST, port: endpoint.port });
  conn.setNoDelay(true);
  return new StreamLink(conn, options.readBuffer);
}

class AesmLink implements Link {
  #peer: ClientNetwork | Connection;

  constructor(peer: ClientNetwork | Connection) {
    this.#peer = peer;
  }

  send(message: Uint8Array): Promise<void> {
    return this.#peer.send(message);
  }

  async consume(onMessage: (message: Uint8Array) => void, stop: () => boolean): Promise<void> {
    let count = 0;
    for await (const packet of this.#peer) {
      onMessage(packet.data as Uint8Array);
      if (stop() || ++count >= MAX_DELIVERIES) return;
    }
  }

  async next(): Promise<Uint8Array | undefined> {
    return (await this.#peer.receive())?.data as Uint8Array | undefined;
  }

  async close(): Promise<void> {
    await this.#peer.close();
  }
}

class StreamLink implements Link {
  #conn: Deno.Conn;
  #reader: PrefixReader;
  #closed = false;

  constructor(conn: Deno.Conn, readBuffer = 256 * 1024) {
    this.#conn = conn;
    this.#reader = new PrefixReader(conn, readBuffer);
  }

  async send(message: Uint8Array): Promise<void> {
    if (message.length <= SMALL_WRITE) return await writeAll(this.#conn, prefixed(message));
    const header = new Uint8Array(PREFIX_LENGTH);
    new DataView(header.buffer).setUint32(0, message.length);
    await writeAll(this.#conn, header);
    await writeAll(this.#conn, message);
  }

  /** Writes an already prefixed message. */
  sendPrefixed(frame: Uint8Array): Promise<void> {
    return writeAll(this.#conn, frame);
  }

  async consume(onMessage: (message: Uint8Array) => void, stop: () => boolean): Promise<void> {
    let done = false;
    await this.#reader.consume(
      (message) => {
        if (done) return;
        onMessage(message);
        done = stop();
      },
      () => done,
      MAX_READS,
    );
  }

  next(): Promise<Uint8Array | undefined> {
    return this.#reader.next();
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Closed by the peer's reset already.
      }
    }
    return Promise.resolve();
  }
}

class AesmServer implements Server {
  #server: ServerNetwork;
  #open = 0;
  #accepted = 0;
  #serving: Promise<void> | undefined;

  private constructor(server: ServerNetwork, webSocket: boolean) {
    this.#server = server;
    this.#webSocket = webSocket;
  }

  #webSocket: boolean;

  static async start(options: ServerOptions, webSocket = false): Promise<AesmServer> {
    const server = await ServerNetwork.listen({
      hostname: HOST,
      port: 0,
      ...webSocket ? { webSocket: { port: 0 } } : {},
      maxConnections: options.maxConnections ?? 1024,
      // Every client comes from 127.0.0.1, many at once: no per-address bounds.
      maxConnectionsPerAddress: options.maxConnections ?? 1024,
      maxPendingHandshakes: 1024,
      maxHandshakesPerAddress: 1024,
      tcpBacklog: options.tcpBacklog ?? 1024,
      handshakeTimeout: 60_000,
      activityLimit: 16,
    });
    return new AesmServer(server, webSocket);
  }

  get port(): number {
    return this.#webSocket ? this.#server.webSocketPort! : this.#server.port;
  }

  get open(): number {
    return this.#open;
  }

  get accepted(): number {
    return this.#accepted;
  }

  serve(onLink: (link: Link) => void | Promise<void>): void {
    this.#serving ??= this.#loop(onLink);
  }

  async #loop(onLink: (link: Link) => void | Promise<void>): Promise<void> {
    for (let i = 0; i < MAX_DELIVERIES; i++) {
      let connection: Connection;
      try {
        connection = await this.#server.accept();
      } catch {
        return; // Stopped.
      }
      this.#accepted++;
      this.#open++;
      connection.closed.then(() => this.#open--);
      // Nobody reads the activity log here; take what `activityLimit` kept.
      for (let n = 0; n < 16 && this.#server.connections.activity() !== undefined; n++);
      const link = new AesmLink(connection);
      Promise.resolve()
        .then(() => onLink(link))
        .catch(() => {})
        .finally(() => link.close());
    }
  }

  async broadcast(message: Uint8Array): Promise<void> {
    await this.#server.sendAll(message);
  }

  async close(): Promise<void> {
    await this.#server.stop();
    await this.#serving;
  }
}

class StreamServer implements Server {
  #listener: Deno.Listener;
  #links = new Set<StreamLink>();
  #accepted = 0;
  #readBuffer: number;
  #serving: Promise<void> | undefined;

  constructor(impl: "tls" | "tcp", options: ServerOptions) {
    const backlog = options.tcpBacklog ?? 1024;
    if (impl === "tls") {
      if (options.tls === undefined) throw new TypeError("Cannot listen: TLS needs a certificate");
      this.#listener = Deno.listenTls({
        hostname: HOST,
        port: 0,
        cert: options.tls.cert,
        key: options.tls.key,
        tcpBacklog: backlog,
      });
    } else {
      this.#listener = Deno.listen({ hostname: HOST, port: 0, tcpBacklog: backlog });
    }
    this.#readBuffer = options.readBuffer ?? 256 * 1024;
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  get open(): number {
    return this.#links.size;
  }

  get accepted(): number {
    return this.#accepted;
  }

  serve(onLink: (link: Link) => void | Promise<void>): void {
    this.#serving ??= this.#loop(onLink);
  }

  async #loop(onLink: (link: Link) => void | Promise<void>): Promise<void> {
    for (let i = 0; i < MAX_DELIVERIES; i++) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // Closed.
      }
      this.#admit(conn, onLink);
    }
  }

  async #admit(conn: Deno.Conn, onLink: (link: Link) => void | Promise<void>): Promise<void> {
    try {
      if ("handshake" in conn) await (conn as Deno.TlsConn).handshake();
      else (conn as Deno.TcpConn).setNoDelay(true);
    } catch {
      return void closeQuietly(conn);
    }
    const link = new StreamLink(conn, this.#readBuffer);
    this.#accepted++;
    this.#links.add(link);
    try {
      await onLink(link);
    } catch {
      // The peer went away.
    } finally {
      this.#links.delete(link);
      await link.close();
    }
  }

  async broadcast(message: Uint8Array): Promise<void> {
    const frame = prefixed(message);
    await Promise.allSettled([...this.#links].map((link) => link.sendPrefixed(frame)));
  }

  async close(): Promise<void> {
    closeQuietly(this.#listener);
    await this.#serving;
    await Promise.all([...this.#links].map((link) => link.close()));
  }
}

/** One message per binary WebSocket message; sends pace to `bufferedAmount` as aesm's do. */
class WsLink implements Link {
  #socket: WebSocket;
  #messages: Uint8Array[] = [];
  #ended = false;
  #wake: (() => void) | undefined;
  #onClose: () => void;

  constructor(socket: WebSocket, onClose: () => void = () => {}) {
    this.#socket = socket;
    this.#onClose = onClose;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => {
      this.#messages.push(new Uint8Array(event.data as ArrayBuffer));
      this.#wakeUp();
    });
    socket.addEventListener("close", () => {
      this.#ended = true;
      this.#wakeUp();
    });
  }

  async send(message: Uint8Array): Promise<void> {
    this.#socket.send(message);
    for (let i = 0; i < MAX_READS && this.#socket.bufferedAmount > 1024 * 1024; i++) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  async consume(onMessage: (message: Uint8Array) => void, stop: () => boolean): Promise<void> {
    for (let i = 0; i < MAX_DELIVERIES; i++) {
      const message = await this.next();
      if (message === undefined) return;
      onMessage(message);
      if (stop()) return;
    }
  }

  async next(): Promise<Uint8Array | undefined> {
    for (let i = 0; i < MAX_READS && this.#messages.length === 0 && !this.#ended; i++) {
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    return this.#messages.shift();
  }

  close(): Promise<void> {
    if (this.#socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) =>
      this.#socket.addEventListener("close", () => resolve())
    );
    this.#socket.close();
    return closed.finally(this.#onClose);
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

class WssServer implements Server {
  #server: Deno.HttpServer<Deno.NetAddr>;
  #links = new Set<WsLink>();
  #accepted = 0;
  #onLink: ((link: Link) => void | Promise<void>) | undefined;

  constructor(options: ServerOptions) {
    if (options.tls === undefined) throw new TypeError("Cannot listen: wss needs a certificate");
    this.#server = Deno.serve({
      hostname: HOST,
      port: 0,
      cert: options.tls.cert,
      key: options.tls.key,
      onListen() {},
    }, (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.addEventListener("open", () => this.#admit(new WsLink(socket)), { once: true });
      return response;
    });
  }

  get port(): number {
    return this.#server.addr.port;
  }

  get open(): number {
    return this.#links.size;
  }

  get accepted(): number {
    return this.#accepted;
  }

  serve(onLink: (link: Link) => void | Promise<void>): void {
    this.#onLink = onLink;
  }

  async #admit(link: WsLink): Promise<void> {
    this.#accepted++;
    this.#links.add(link);
    try {
      await this.#onLink?.(link);
    } catch {
      // The peer went away.
    } finally {
      this.#links.delete(link);
      await link.close();
    }
  }

  async broadcast(message: Uint8Array): Promise<void> {
    await Promise.allSettled([...this.#links].map((link) => link.send(message)));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#links].map((link) => link.close()));
    await this.#server.shutdown();
  }
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}
