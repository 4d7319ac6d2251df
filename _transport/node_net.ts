// Copyright 2026 the aesm authors. MIT license.
/**
 * TCP on `node:net`, for Node.js and Bun: the {@linkcode Transport}, the
 * listener and the dialer chosen when there is no `Deno`. Private.
 *
 * Sockets allow half-open connections (a FIN read does not end the sending
 * side: `PROTOCOL.md` section 8 needs it) and are read in paused mode, so a
 * connection that stops reading stops the peer through TCP. `node:net` comes
 * from `process.getBuiltinModule`, so that no bundler has to resolve it for
 * a browser.
 *
 * @module
 */

import type * as Net from "node:net";
import { AsyncQueue } from "../_queue/async_queue.ts";
import { hostPort, type Transport } from "./transport.ts";

function net(): typeof Net {
  const process = (globalThis as {
    process?: { getBuiltinModule?: (name: string) => unknown };
  }).process;
  const module = process?.getBuiltinModule?.("node:net") as typeof Net | undefined;
  if (module === undefined) {
    throw new TypeError(
      "Cannot open a TCP connection: this runtime has neither Deno nor node:net " +
        "(in a browser, connect with a ws:// or wss:// url)",
    );
  }
  return module;
}

/** A {@linkcode Transport} over a `node:net` socket, with Nagle's algorithm off. */
export class NodeTransport implements Transport {
  readonly remoteAddress: string;
  readonly remoteHostname: string;
  readonly localAddress: string;
  #socket: Net.Socket;
  #rest: Uint8Array | undefined;
  #ended = false;
  #error: unknown;
  #wake: (() => void) | undefined;

  constructor(socket: Net.Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    this.remoteHostname = socket.remoteAddress ?? "";
    this.remoteAddress = hostPort(this.remoteHostname, socket.remotePort ?? 0);
    this.localAddress = hostPort(socket.localAddress ?? "", socket.localPort ?? 0);
    socket.on("readable", () => this.#wakeReader());
    socket.on("end", () => this.#end());
    socket.on("close", () => this.#end());
    socket.on("error", (error) => {
      this.#error ??= error;
      this.#wakeReader();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (true) {
      const chunk: Uint8Array | null = this.#rest ?? this.#socket.read();
      this.#rest = undefined;
      if (chunk !== null) {
        const n = Math.min(buffer.length, chunk.length);
        buffer.set(chunk.subarray(0, n));
        if (n < chunk.length) this.#rest = chunk.subarray(n);
        return n;
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => error ? reject(error) : resolve());
    });
  }

  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(resolve));
  }

  close(): void {
    this.#socket.destroy();
    this.#end();
  }

  #end(): void {
    this.#ended = true;
    this.#wakeReader();
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** A `node:net` listener handing out transports; listening once `ready` resolves. */
export class NodeListener {
  readonly ready: Promise<void>;
  #server: Net.Server;
  #accepted = new AsyncQueue<Transport>();
  #hostname: string;
  #port: number;

  constructor(hostname: string, port: number, backlog: number) {
    this.#hostname = hostname;
    this.#port = port;
    this.#server = net().createServer(
      { allowHalfOpen: true, pauseOnConnect: true },
      (socket) => this.#accepted.push(new NodeTransport(socket)),
    );
    this.ready = new Promise((resolve, reject) => {
      this.#server.once("error", (error: Error & { code?: string }) => {
        const message = error.code === "EADDRINUSE"
          ? `Cannot listen on ${hostPort(hostname, port)}: the address is in use ` +
            "(another server?); stop it, or pick another port (0 picks a free one)"
          : `Cannot listen on ${hostPort(hostname, port)}: ${error.message}`;
        reject(Object.assign(new Error(message, { cause: error }), { code: error.code }));
      });
      this.#server.listen({ host: hostname, port, backlog }, () => {
        const address = this.#server.address() as Net.AddressInfo;
        this.#hostname = address.address;
        this.#port = address.port;
        resolve();
      });
    });
  }

  get hostname(): string {
    return this.#hostname;
  }

  get port(): number {
    return this.#port;
  }

  accept(): Promise<Transport | undefined> {
    return this.#accepted.receive();
  }

  close(): void {
    this.#server.close();
    this.#accepted.close();
  }
}

/** Connects over TCP with `node:net`; rejects with Node's error (its `code` says why). */
export function dialNode(hostname: string, port: number, signal: AbortSignal): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = net().connect({ host: hostname, port, allowHalfOpen: true });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => {
      signal.removeEventListener("abort", onAbort);
      socket.pause();
      resolve(new NodeTransport(socket));
    });
    socket.once("error", (error) => {
      signal.removeEventListener("abort", onAbort);
      reject(error);
    });
  });
}
