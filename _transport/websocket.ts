// Copyright 2026 the aesm authors. MIT license.
/**
 * The aesm byte stream over WebSocket binary messages (`PROTOCOL.md`
 * section 12): a {@linkcode Transport} on the standard `WebSocket` API, the
 * same in browsers, Deno, Node 22+ and Bun. Private.
 *
 * A message carries any run of the stream's bytes; its boundaries mean
 * nothing. The WebSocket close handshake stands for the first closer's FIN:
 * aesm's own Close records (section 8) come first, so by the time it starts
 * the WebSocket close neither side has anything more to send or to read. A
 * WebSocket that ends without that handshake is a reset.
 *
 * The WebSocket API cannot stop a peer from sending. Under the
 * `aesm.v1.window` subprotocol each side grants the other a window: a
 * writer waits while {@linkcode WINDOW} bytes it sent are not credited yet,
 * and a reader credits what it has read, in text messages. Under `aesm.v1`
 * there is no window; either way, unread input past {@linkcode MAX_UNREAD}
 * fails the connection.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import type { Transport } from "./transport.ts";

/** The WebSocket subprotocol without flow control. */
export const SUBPROTOCOL = "aesm.v1";
/** The WebSocket subprotocol with a window: aesm's choice when the peer offers it. */
export const WINDOW_SUBPROTOCOL = "aesm.v1.window";
/** What a client offers, in its order of preference. */
export const SUBPROTOCOLS: readonly string[] = [WINDOW_SUBPROTOCOL, SUBPROTOCOL];
/** Bytes a writer may have sent and not yet been credited for, under `aesm.v1.window`. */
export const WINDOW = 8 * 1024 * 1024;
/** A reader credits what it has read once this much is uncredited. */
export const CREDIT_STEP = 1024 * 1024;
const CREDIT = /^[1-9][0-9]{0,9}$/;
/**
 * Bytes received and not yet read past which the connection fails: the
 * WebSocket API cannot stop its peer from sending, so unread input is
 * bounded here instead of by TCP's flow control.
 */
export const MAX_UNREAD = 16 * 1024 * 1024;
// Sends pace to the socket: a write waits while more than this is queued in it.
const MAX_QUEUED = 1024 * 1024;
const POLL_MS = 2;

/** Where the two ends are, as far as the WebSocket tells, and the subprotocol they speak. */
export interface WebSocketEnds {
  readonly remoteAddress: string;
  readonly remoteHostname: string;
  readonly localAddress: string;
  /**
   * The subprotocol chosen: a client reads it from its socket; a server's
   * socket in Deno does not say, so the server passes what it answered with.
   */
  readonly subprotocol: string;
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
  readonly #windowed: boolean;
  #uncredited = 0; // Bytes sent that the peer has not credited yet.
  #readSinceCredit = 0;
  #wakeWriter: (() => void) | undefined;
  #writeClosed = false;

  constructor(socket: WebSocket, ends: WebSocketEnds) {
    this.#socket = socket;
    this.#windowed = ends.subprotocol === WINDOW_SUBPROTOCOL;
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
    if (this.#windowed) this.#credit(n);
    return n;
  }

  #credit(read: number): void {
    this.#readSinceCredit += read;
    if (this.#readSinceCredit < CREDIT_STEP || this.#writeClosed) return;
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(String(this.#readSinceCredit));
    this.#readSinceCredit = 0;
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.#checkWritable();
    while (this.#windowed && this.#uncredited >= WINDOW) {
      await new Promise<void>((resolve) => (this.#wakeWriter = resolve));
      this.#checkWritable();
    }
    this.#socket.send(bytes);
    this.#uncredited += bytes.length;
    // The WebSocket API has no drain event: poll its queue, so that a peer
    // that reads nothing stalls the writer (and its write timeout) here.
    while (this.#socket.bufferedAmount > MAX_QUEUED) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      this.#checkWritable();
    }
  }

  #checkWritable(): void {
    // A connection whose reading is paused learns of an overflow here (a heartbeat at the latest).
    if (this.#error !== undefined) throw this.#error;
    if (this.#writeClosed) throw new Error("Cannot write: this side has ended its output");
    if (this.#socket.readyState !== WebSocket.OPEN) {
      throw new Error("Cannot write: the WebSocket is closed");
    }
  }

  // No Close frame here (PROTOCOL.md section 12, "Close"): one would end the
  // peer's side too, whatever it has read, and a window update the peer sends
  // in the meantime would break the close. The side that closed first starts
  // the close handshake when it closes the transport, once it has read our
  // Close record; our WebSocket answers it, which ends our reads.
  closeWrite(): Promise<void> {
    this.#writeClosed = true;
    return Promise.resolve();
  }

  close(): void {
    this.#abort(1000);
    this.#end();
  }

  #receive(data: unknown): void {
    if (this.#ended || this.#error !== undefined) return;
    if (typeof data === "string" && this.#windowed) return this.#credited(data);
    if (!(data instanceof ArrayBuffer)) {
      this.#fail(
        new ProtocolError("Cannot read: a text WebSocket message under aesm.v1 (binary ones only)"),
      );
      return this.#abort(1003);
    }
    if (data.byteLength === 0) {
      this.#fail(new ProtocolError("Cannot read: an empty binary WebSocket message"));
      return this.#abort(1002);
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

  #credited(text: string): void {
    const credit = CREDIT.test(text) ? Number(text) : 0;
    if (credit === 0 || credit > this.#uncredited) {
      const shown = text.length > 20 ? `${text.slice(0, 20)}...` : text;
      this.#fail(
        new ProtocolError(
          `Cannot read: a window update must credit 1 to ${this.#uncredited} bytes, got ${
            JSON.stringify(shown)
          }`,
        ),
      );
      return this.#abort(1002);
    }
    this.#uncredited -= credit;
    this.#wakeWaitingWriter();
  }

  #fail(error: Error): void {
    this.#error ??= error;
    this.#chunks = [];
    this.#unread = 0;
    this.#wakeReader();
    this.#wakeWaitingWriter();
  }

  #end(): void {
    this.#ended = true;
    this.#wakeReader();
    this.#wakeWaitingWriter();
  }

  #abort(code: number): void {
    try {
      this.#socket.close(code);
    } catch {
      // A client's WebSocket API sends no code below 3000 but 1000: 1002 goes as 4002.
      this.#socket.close(code + 3000);
    }
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #wakeWaitingWriter(): void {
    const wake = this.#wakeWriter;
    this.#wakeWriter = undefined;
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
      if (!client || SUBPROTOCOLS.includes(socket.protocol)) return settle();
      settle(
        new Error(`Cannot open WebSocket: the peer speaks neither ${SUBPROTOCOLS.join(" nor ")}`),
      );
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

/** Opens a WebSocket to `url`, offering both aesm subprotocols. */
export function dialWebSocket(url: URL, signal: AbortSignal): Promise<WebSocketTransport> {
  const socket = new WebSocket(url, [...SUBPROTOCOLS]);
  const remoteHostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port || (url.protocol === "wss:" ? "443" : "80");
  const remoteAddress = `${url.hostname}:${port}`;
  const ends = () => ({
    remoteAddress,
    remoteHostname,
    localAddress: "",
    subprotocol: socket.protocol,
  });
  return whenOpen(socket, ends, signal, true);
}
