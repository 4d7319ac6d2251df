// Copyright 2026 the aesm authors. MIT license.
/**
 * What a client was asked to do while it had no open connection: sends and
 * flushes that wait, in order, for the next connection. Private.
 *
 * @module
 */

import type { Connection } from "../_connection/connection.ts";

interface Waiting {
  readonly size: number;
  readonly run: (connection: Connection) => Promise<void>;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * A FIFO of calls waiting for a connection, bounded as a connection's write
 * buffer is by `maxBufferedAmount`: a message is refused once `limit` bytes
 * wait (so the one message that crosses the limit is still taken).
 */
export class Outbox {
  #waiting: Waiting[] = [];
  #bytes = 0;
  #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Bytes of messages waiting. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The most bytes that wait before a message is refused. */
  get limit(): number {
    return this.#limit;
  }

  /** Whether another message may wait. */
  get full(): boolean {
    return this.#bytes >= this.#limit;
  }

  /** Parks `run` until {@linkcode Outbox.deliver}; settles as its promise does then. */
  add(size: number, run: (connection: Connection) => Promise<void>): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#waiting.push({ size, run, resolve, reject });
    this.#bytes += size;
    return promise;
  }

  /** Runs every waiting call on `connection`, oldest first, all before this returns. */
  deliver(connection: Connection): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#bytes = 0;
    for (const { run, resolve, reject } of waiting) run(connection).then(resolve, reject);
  }

  /** Rejects every waiting call with `error`. */
  fail(error: unknown): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#bytes = 0;
    for (const { reject } of waiting) reject(error);
  }
}

/** The length of `text` in UTF-8, without encoding it (a lone surrogate counts as U+FFFD). */
export function utf8Length(text: string): number {
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) length += 1;
    else if (unit < 0x800) length += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && isLowSurrogate(text.charCodeAt(i + 1))) {
      length += 4;
      i++;
    } else length += 3;
  }
  return length;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit < 0xe000;
}
