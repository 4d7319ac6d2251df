// Copyright 2026 the aesm authors. MIT license.
/**
 * The aesm byte stream over WebSocket binary messages (`PROTOCOL.md`
 * section 12): a {@linkcode Transport} on the standard `WebSocket` API, the
 * same in browsers, Deno, Node 22+ and Bun. Private.
 *
 * A message carries any run of the stream's bytes; its boundaries mean
 * nothing. The WebSocket close handshake stands for TCP's FIN: aesm's own
 * Close records (section 8) come first, so by the time either side starts
 * the WebSocket close it has nothing more to send or to read. A WebSocket
 * that ends without that handshake is a reset.
 *
 * @module
 */

import type { Transport } from "./transport.ts";

/** The WebSocket subprotocol aesm asks for and answers with. */
export const SUBPROTOCOL = "aesm.v1";
/**
 * Bytes received and not yet read past which the connection fails: the
 * WebSocket API cannot stop its peer from sending, so unread input is
 * bounded here instead of by TCP's flow control.
 */
export const MAX_UNREAD = 16 * 1024 * 1024;
// Sends pace to the socket: a write waits while more than this is queued in it.
const MAX_QUEUED = 1024 * 1024;
const POLL_MS = 2;

/** Where the two ends are, as far as the WebSocket tells. */
export interface WebSocketEnds {
  readonly remoteAddress: string;
  readonly remoteHostname: string;
  readonly localAddress: string;
}

/** A {@linkcode Transport} over an open WebSocket. */
export class WebSocketTransport implements Transport {
  readonly remoteAddress: string;
  readonly remoteHostname: string;
  readonly localAddress: string;
  #socket: WebSocket;
  #chunks: Uint8Array[] = [];
  #unread = 0;
  #ended = false;
  #error: unknown;
  #wake: (() => void) | undefined;

  constructor(socket: WebSocket, ends: WebSocketEnds) {
    this.#socket = socket;
    this.remoteAddress = ends.remoteAddress;
    this.remoteHostname = ends.remoteHostname;
    this.localAddress = ends.localAddress;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => this.#receive(event.data));
    socket.addEventListener("close", (event) => {
      if (!event.wasClean || (event.code !== 1000 && event.code !== 1005)) {
        const why = event.reason ? `: ${event.reason}` : "";
        this.#fail(new Error(`Cannot read: the WebSocket closed with code ${event.code}${why}`));
      }
      this.#end();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    const chunk = this.#chunks[0];
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    this.#unread -= n;
    return n;
  }

  async write(bytes: Uint8Array): Promise<void> {
    // A connection whose reading is paused learns of an overflow here (a heartbeat at the latest).
    if (this.#error !== undefined) throw this.#error;
    if (this.#socket.readyState !== WebSocket.OPEN) {
      throw new Error("Cannot write: the WebSocket is closed");
    }
    this.#socket.send(bytes);
    // The WebSocket API has no drain event: poll its queue, so that a peer
    // that reads nothing stalls the writer (and its write timeout) here.
    while (this.#socket.bufferedAmount > MAX_QUEUED) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (this.#socket.readyState !== WebSocket.OPEN) {
        throw new Error("Cannot write: the WebSocket closed");
      }
    }
  }

  // The WebSocket close handshake is the FIN: the peer's answer ends our reads.
  closeWrite(): Promise<void> {
    this.#abort(1000);
    return Promise.resolve();
  }

  close(): void {
    this.#abort(1000);
    this.#end();
  }

  #receive(data: unknown): void {
    if (this.#ended || this.#error !== undefined) return;
    if (!(data instanceof ArrayBuffer)) {
      this.#fail(new Error("Cannot read: a text WebSocket message (aesm sends binary ones only)"));
      return this.#abort(1003);
    }
    this.#chunks.push(new Uint8Array(data));
    this.#unread += data.byteLength;
    if (this.#unread > MAX_UNREAD) {
      this.#fail(
        new Error(
          `Cannot read: the peer sent more than ${MAX_UNREAD} bytes that were not read yet ` +
            "(a WebSocket cannot slow its sender)",
        ),
      );
      return this.#abort(1009);
    }
    this.#wakeReader();
  }

  #fail(error: Error): void {
    this.#error ??= error;
    this.#chunks = [];
    this.#unread = 0;
    this.#wakeReader();
  }

  #end(): void {
    this.#ended = true;
    this.#wakeReader();
  }

  #abort(code: number): void {
    try {
      this.#socket.close(code);
    } catch {
      // Closing already.
    }
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/**
 * Waits for `socket` to open, then wraps it. Rejects if it fails to open,
 * a client's opens without the aesm subprotocol (a server chose it when it
 * upgraded), or `signal` aborts (closing it).
 */
export function whenOpen(
  socket: WebSocket,
  ends: () => WebSocketEnds,
  signal: AbortSignal,
  client = false,
): Promise<WebSocketTransport> {
  return new Promise((resolve, reject) => {
    const settle = (error?: unknown) => {
      socket.removeEventListener("open", onOpen);
      socket.removeEventListener("close", onClose);
      signal.removeEventListener("abort", onAbort);
      if (error === undefined) return resolve(new WebSocketTransport(socket, ends()));
      try {
        socket.close();
      } catch {
        // Not open.
      }
      reject(error);
    };
    const onOpen = () => {
      if (!client || socket.protocol === SUBPROTOCOL) return settle();
      settle(new Error(`Cannot open WebSocket: the peer does not speak ${SUBPROTOCOL}`));
    };
    const onClose = (event: CloseEvent) =>
      settle(new Error(`Cannot open WebSocket: it closed with code ${event.code}`));
    const onAbort = () => settle(signal.reason);
    socket.addEventListener("open", onOpen);
    socket.addEventListener("close", onClose);
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
  });
}

/** Opens a WebSocket to `url` with the aesm subprotocol. */
export function dialWebSocket(url: URL, signal: AbortSignal): Promise<WebSocketTransport> {
  const socket = new WebSocket(url, SUBPROTOCOL);
  const remoteHostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port || (url.protocol === "wss:" ? "443" : "80");
  const remoteAddress = `${url.hostname}:${port}`;
  const ends = () => ({ remoteAddress, remoteHostname, localAddress: "" });
  return whenOpen(socket, ends, signal, true);
}
