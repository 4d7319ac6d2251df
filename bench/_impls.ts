// Copyright 2026 the aesm authors. MIT license.
/**
 * The three implementations behind one small interface: aesm, Deno TLS with
 * a self-signed certificate, and raw TCP. TLS and TCP carry
 * `length (4) || message` (see `_wire.ts`). Private.
 *
 * @module
 */

import { ClientNetwork, type Connection, ServerNetwork } from "../mod.ts";
import { PREFIX_LENGTH, prefixed, PrefixReader, writeAll } from "./_wire.ts";

/** An implementation's name. */
export type Impl = "aesm" | "tls" | "tcp";

/** Every implementation, in the order the tables list them. */
export const IMPLS: readonly Impl[] = ["aesm", "tls", "tcp"];

/** How the tables name an implementation. */
export const IMPL_LABEL: Record<Impl, string> = {
  aesm: "aesm",
  tls: "Deno TLS",
  tcp: "raw TCP",
};

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
  if (impl === "aesm") return await AesmServer.start(options);
  return new StreamServer(impl, options);
}

/** Connects to `endpoint`, including the handshake. */
export async function connect(endpoint: Endpoint, options: LinkOptions = {}): Promise<Link> {
  if (endpoint.impl === "aesm") {
    const client = await ClientNetwork.connect({
      hostname: HOST,
      port: endpoint.port,
      handshakeTimeout: 60_000,
    });
    return new AesmLink(client);
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

  private constructor(server: ServerNetwork) {
    this.#server = server;
  }

  static async start(options: ServerOptions): Promise<AesmServer> {
    const server = await ServerNetwork.listen({
      hostname: HOST,
      port: 0,
      maxConnections: options.maxConnections ?? 1024,
      // Every client comes from 127.0.0.1, many at once: no per-address bounds.
      maxConnectionsPerAddress: options.maxConnections ?? 1024,
      maxPendingHandshakes: 1024,
      maxHandshakesPerAddress: 1024,
      tcpBacklog: options.tcpBacklog ?? 1024,
      handshakeTimeout: 60_000,
      activityLimit: 16,
    });
    return new AesmServer(server);
  }

  get port(): number {
    return this.#server.port;
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

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}
