// Copyright 2026 the aesm authors. MIT license.
/**
 * The baselines' wire format: every message is `length (4, big-endian) ||
 * bytes`, written with one `conn.write()` and parsed from `conn.read()`
 * into a reusable buffer. Shared by Deno TLS and raw TCP. Private.
 *
 * @module
 */

/** Length of the baselines' message header. */
export const PREFIX_LENGTH = 4;

/** Builds `length || message` in one buffer. */
export function prefixed(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(PREFIX_LENGTH + message.length);
  new DataView(out.buffer).setUint32(0, message.length);
  out.set(message, PREFIX_LENGTH);
  return out;
}

/**
 * Writes all of `bytes`. Each `write()` makes progress or throws, so the loop
 * runs at most `bytes.length` times; a closed connection ends it.
 */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = await conn.write(bytes);
  for (let turns = 0; offset < bytes.length; turns++) {
    if (turns > bytes.length) throw new Error("Cannot write: no progress");
    const written = await conn.write(bytes.subarray(offset));
    if (written === 0) throw new Error("Cannot write: the socket accepted nothing");
    offset += written;
  }
}

/** Called for each whole message, a view valid only during the call. */
export type OnMessage = (message: Uint8Array) => void;

/**
 * Parses length-prefixed messages from a connection. A message that lies in
 * the read buffer is handed out as a view of it; one longer than the read
 * buffer is read straight into a second buffer, reused from message to
 * message, so that the reader allocates nothing per message.
 */
export class PrefixReader {
  #conn: Deno.Conn;
  #buffer: Uint8Array;
  #view: DataView;
  #start = 0;
  #end = 0;
  #ended = false;
  #ready: Uint8Array[] = [];
  #long = new Uint8Array(0);

  /**
   * @param conn The connection to read.
   * @param bufferSize The read buffer's size.
   */
  constructor(conn: Deno.Conn, bufferSize: number) {
    this.#conn = conn;
    this.#buffer = new Uint8Array(bufferSize);
    this.#view = new DataView(this.#buffer.buffer);
  }

  /** Whether the peer has ended the stream. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Reads once (more if a long message needs it) and hands every whole
   * message to `onMessage`.
   *
   * @returns `false` once the stream has ended.
   */
  async pump(onMessage: OnMessage): Promise<boolean> {
    if (this.#ended) return false;
    if (this.#end === this.#buffer.length) this.#compact();
    const read = await this.#readSafely(this.#buffer.subarray(this.#end));
    if (read === null) {
      this.#ended = true;
      return false;
    }
    this.#end += read;
    await this.#parse(onMessage);
    return !this.#ended;
  }

  /** Reads until the stream ends or `stop()` says so, bounded by `maxReads`. */
  async consume(onMessage: OnMessage, stop: () => boolean, maxReads: number): Promise<void> {
    for (let reads = 0; reads < maxReads && !stop(); reads++) {
      if (!await this.pump(onMessage)) return;
    }
  }

  /** The next message as a copy, or `undefined` once the stream has ended. */
  async next(maxReads = 1_000_000): Promise<Uint8Array | undefined> {
    for (let reads = 0; this.#ready.length === 0 && reads < maxReads; reads++) {
      if (!await this.pump((message) => void this.#ready.push(message.slice()))) break;
    }
    return this.#ready.shift();
  }

  async #parse(onMessage: OnMessage): Promise<void> {
    const buffer = this.#buffer;
    while (this.#end - this.#start >= PREFIX_LENGTH) {
      const length = this.#view.getUint32(this.#start);
      const body = this.#start + PREFIX_LENGTH;
      if (this.#end - body >= length) {
        onMessage(buffer.subarray(body, body + length));
        this.#start = body + length;
        continue;
      }
      if (PREFIX_LENGTH + length <= buffer.length) break;
      await this.#readLong(length, onMessage);
    }
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  // A message longer than the read buffer: gather it in the reused long-message buffer.
  async #readLong(length: number, onMessage: OnMessage): Promise<void> {
    if (this.#long.length < length) this.#long = new Uint8Array(length);
    const message = this.#long.subarray(0, length);
    const have = this.#end - this.#start - PREFIX_LENGTH;
    message.set(this.#buffer.subarray(this.#start + PREFIX_LENGTH, this.#end));
    this.#start = this.#end = 0;
    let fill = have;
    for (let reads = 0; fill < length && reads <= length; reads++) {
      const read = await this.#readSafely(message.subarray(fill));
      if (read === null) {
        this.#ended = true;
        return;
      }
      fill += read;
    }
    onMessage(message);
  }

  #compact(): void {
    this.#buffer.copyWithin(0, this.#start, this.#end);
    this.#end -= this.#start;
    this.#start = 0;
  }

  async #readSafely(into: Uint8Array): Promise<number | null> {
    try {
      return await this.#conn.read(into);
    } catch (error) {
      if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
        return null;
      }
      if (error instanceof Deno.errors.ConnectionReset) return null;
      throw error;
    }
  }
}
