// Copyright 2026 the aesm authors. MIT license.
/**
 * A FIFO with awaiting receivers, used by packet queues and the activity
 * log. Private.
 *
 * @module
 */

import { Waiters } from "./abort.ts";

interface Waiter<T> {
  resolve(value: T | undefined): void;
  reject(reason: unknown): void;
}

const COMPACT_AT = 1024;

/**
 * A double-ended FIFO. `receive()` waits for an item; once `close()` is
 * called, waiting receivers get `undefined` and the items already queued can
 * still be taken.
 */
export class AsyncQueue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  #waiters: Waiter<T>[] = [];
  #closed = false;
  #arrived = new Waiters();

  get length(): number {
    return this.#items.length - this.#head;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether a receiver is waiting (and so `push` would hand the item over). */
  get hasWaiter(): boolean {
    return this.#waiters.length > 0;
  }

  at(index: number): T | undefined {
    const length = this.length;
    const i = index < 0 ? index + length : index;
    return Number.isInteger(i) && i >= 0 && i < length ? this.#items[this.#head + i] : undefined;
  }

  /** Adds an item, or hands it to the oldest waiting receiver. */
  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) return waiter.resolve(item);
    this.#items.push(item);
    this.#wake();
  }

  /** Waits until an item is queued, without taking it; `false` once closed and empty. */
  async wait(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) throw signal.reason;
    while (this.length === 0 && !this.#closed) await this.#arrived.wait(signal);
    return this.length > 0;
  }

  #wake(): void {
    this.#arrived.wake();
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  pop(): T | undefined {
    return this.length === 0 ? undefined : this.#items.pop();
  }

  /** Removes the item at the front if it is `item`, else at the back if it is `item`. */
  removeEnd(item: T): boolean {
    if (this.at(0) === item) return this.shift(), true;
    if (this.at(-1) === item) return this.pop(), true;
    return false;
  }

  /** Removes the oldest item that matches, scanning from the front. */
  removeFirst(matches: (item: T) => boolean): boolean {
    for (let i = this.#head; i < this.#items.length; i++) {
      if (!matches(this.#items[i] as T)) continue;
      if (i === this.#head) this.shift();
      else this.#items.splice(i, 1);
      return true;
    }
    return false;
  }

  /**
   * Takes the oldest item, waiting for one. Resolves `undefined` once the
   * queue is closed and empty; rejects with `signal.reason` on abort.
   */
  receive(signal?: AbortSignal): Promise<T | undefined> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.length > 0) return Promise.resolve(this.shift());
    if (this.#closed) return Promise.resolve(undefined);
    const { promise, resolve, reject } = Promise.withResolvers<T | undefined>();
    const waiter: Waiter<T> = { resolve, reject };
    this.#waiters.push(waiter);
    if (signal !== undefined) {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const unwire = () => signal.removeEventListener("abort", onAbort);
      promise.then(unwire, unwire);
    }
    return promise;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(undefined);
    this.#wake();
  }

  async *drain(signal?: AbortSignal): AsyncGenerator<T, void, undefined> {
    while (true) {
      const item = await this.receive(signal);
      if (item === undefined) return;
      yield item;
    }
  }
}
