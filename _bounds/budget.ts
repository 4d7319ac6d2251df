// Copyright 2026 the aesm authors. MIT license.
/**
 * A server-wide budget of received bytes held in memory: queued messages and
 * messages being assembled, across every connection. Private.
 *
 * @module
 */

/**
 * Bytes held across a server's connections, against `limit`. A connection
 * asks for room before each read from its socket; past the limit it waits,
 * and every waiting connection is woken once bytes are taken and the total
 * falls below the limit again, so each gets its turn: nothing is dropped,
 * TCP slows the senders. One connection at a time may overdraw, to finish a
 * message it is assembling while its queue is empty: otherwise messages cut
 * in half could fill the budget with nothing for the application to read.
 */
export class ByteBudget {
  readonly limit: number;
  #used = 0;
  #overdraft: object | undefined;
  #room: PromiseWithResolvers<void> | undefined;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Counts `bytes` more (or fewer, when negative) held. */
  add(bytes: number): void {
    this.#used += bytes;
    if (bytes < 0 && this.#used < this.limit) this.#wake();
  }

  /**
   * Whether `reader` may read now: there is room, or it may overdraw to
   * finish a message (`assembling` with an empty queue) and no other does.
   */
  admits(reader: object, assembling: boolean): boolean {
    if (this.#used < this.limit) return true;
    if (!assembling || (this.#overdraft !== undefined && this.#overdraft !== reader)) return false;
    this.#overdraft = reader;
    return true;
  }

  /** Ends `reader`'s overdraft, if it has one: its message is complete, or it closed. */
  settle(reader: object): void {
    if (this.#overdraft !== reader) return;
    this.#overdraft = undefined;
    this.#wake();
  }

  /** Resolves the next time room may have been made. */
  changed(): Promise<void> {
    this.#room ??= Promise.withResolvers<void>();
    return this.#room.promise;
  }

  #wake(): void {
    this.#room?.resolve();
    this.#room = undefined;
  }
}
