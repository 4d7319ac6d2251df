// Copyright 2026 the aesm authors. MIT license.
/**
 * TCP on `Deno.Conn`: the first {@linkcode Transport}, and the listener and
 * dialer that make it; where there is no `Deno` (Node.js, Bun), the same on
 * `node:net` (`_transport/node_net.ts`). Private.
 *
 * It reads with `conn.read` and never uses `conn.readable`: that stream
 * closes the whole socket when it reaches the peer's FIN, which would make
 * the close of `PROTOCOL.md` section 8 impossible.
 *
 * @module
 */

import { dialNode, NodeListener } from "./node_net.ts";
import { hostPort, type Transport } from "./transport.ts";

/** A {@linkcode Transport} over a Deno TCP connection, with Nagle's algorithm off. */
export class TcpTransport implements Transport {
  readonly remoteAddress: string;
  readonly remoteHostname: string;
  readonly localAddress: string;
  #conn: Deno.TcpConn;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    conn.setNoDelay(true);
    this.remoteHostname = conn.remoteAddr.hostname;
    this.remoteAddress = hostPort(conn.remoteAddr.hostname, conn.remoteAddr.port);
    this.localAddress = hostPort(conn.localAddr.hostname, conn.localAddr.port);
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#conn.read(buffer);
  }

  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** A TCP listener handing out transports. */
export interface Listener {
  /** Resolves once listening; rejects if it cannot listen. */
  readonly ready: Promise<void>;
  /** The hostname listened on (the one asked for, until `ready`). */
  readonly hostname: string;
  /** The port listened on (the one asked for, until `ready`). */
  readonly port: number;
  /** The next connection; `undefined` once closed. Rejects if accepting failed (and may be retried). */
  accept(): Promise<Transport | undefined>;
  /** Stops listening. Idempotent. */
  close(): void;
}

/** Listens for TCP connections with the runtime's own API. */
export function listenTcp(
  hostname: string,
  port: number,
  backlog: number,
  reusePort = false,
): Listener {
  if (typeof Deno !== "undefined") return new TcpListener(hostname, port, backlog, reusePort);
  if (reusePort) throw new TypeError("Cannot listen with reusePort: it needs Deno");
  return new NodeListener(hostname, port, backlog);
}

/** A {@linkcode Listener} on `Deno.listen`. */
export class TcpListener implements Listener {
  readonly ready: Promise<void> = Promise.resolve();
  readonly hostname: string;
  readonly port: number;
  #listener: Deno.TcpListener;
  #closed = false;

  constructor(hostname: string, port: number, backlog: number, reusePort = false) {
    this.#listener = listen(hostname, port, backlog, reusePort);
    this.hostname = this.#listener.addr.hostname;
    this.port = this.#listener.addr.port;
  }

  async accept(): Promise<Transport | undefined> {
    try {
      return new TcpTransport(await this.#listener.accept());
    } catch (error) {
      if (this.#closed || error instanceof Deno.errors.BadResource) return undefined;
      throw error;
    }
  }

  close(): void {
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
  }
}

function listen(
  hostname: string,
  port: number,
  tcpBacklog: number,
  reusePort: boolean,
): Deno.TcpListener {
  // Without the flag, Deno ends the process on reusePort instead of throwing;
  // Deno.listenDatagram exists exactly when the flag is given.
  if (reusePort && typeof (Deno as { listenDatagram?: unknown }).listenDatagram !== "function") {
    throw new TypeError("Cannot listen with reusePort: run Deno with --unstable-net");
  }
  try {
    return Deno.listen({ hostname, port, tcpBacklog, ...(reusePort ? { reusePort } : {}) });
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    throw new Deno.errors.AddrInUse(
      `Cannot listen on ${hostPort(hostname, port)}: the address is in use (another server?); ` +
        "stop it, or pick another port (0 picks a free one)",
      { cause: error },
    );
  }
}

/** Connects over TCP with the runtime's own API; rejects with the runtime's error. */
export async function dialTcp(
  hostname: string,
  port: number,
  signal: AbortSignal,
): Promise<Transport> {
  if (typeof Deno === "undefined") return await dialNode(hostname, port, signal);
  return new TcpTransport(await Deno.connect({ hostname, port, signal }));
}
