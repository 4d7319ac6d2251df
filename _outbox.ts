// Copyright 2026 the aesm authors. MIT license.
/**
 * What a client was asked to do while it had no open connection: sends and
 * flushes that wait, in order, for the next connection. Private.
 *
 * @module
 */

import type { Connection } from "./connection.ts";

interface Waiting {
  readonly size: number;
  readonly run: (connection: Connection) => Promise<void>;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * A FIFO of calls waiting for a connection, holding at most `limit` bytes of
 * messages (one message of any size when it is empty, as a connection's write
 * buffer takes one message past its high-water mark).
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

  /** Whether a message of `size` bytes may wait too. */
  fits(size: number): boolean {
    return this.#waiting.length === 0 || this.#bytes + size <= this.#limit;
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
