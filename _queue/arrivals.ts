// Copyright 2026 the aesm authors. MIT license.
/**
 * The server-wide view of packets in arrival order, kept consistent with the
 * per-connection queues: a packet taken through either is gone from both.
 * Private.
 *
 * @module
 */

import { AsyncQueue } from "./async_queue.ts";
import { Waiters } from "./abort.ts";

/** A packet's place in the queues. */
export interface Entry<P> {
  readonly packet: P;
  readonly size: number;
  taken: boolean;
  /** Called once when the packet is taken from the server-wide view. */
  readonly detach: (entry: Entry<P>) => void;
}

const COMPACT_MIN = 256;

/**
 * Entries in arrival order. Entries taken through their connection's queue
 * stay as tombstones until skipped, and are compacted away once they
 * outnumber the live ones.
 */
export class Arrivals<P> {
  #queue = new AsyncQueue<Entry<P>>();
  #live = 0;
  #arrived = new Waiters();

  get length(): number {
    return this.#live;
  }

  get hasWaiter(): boolean {
    return this.#queue.hasWaiter;
  }

  /** Adds an entry, or hands it to a waiting receiver (then it is taken at once). */
  add(entry: Entry<P>): void {
    if (this.#queue.hasWaiter) entry.taken = true;
    else this.#live++;
    this.#queue.push(entry);
    this.#wake();
  }

  /** Waits until an entry is live, without taking it; `false` once closed with none. */
  async wait(signal?: AbortSignal): Promise<boolean> {
    signal?.throwIfAborted();
    while (this.#live === 0 && !this.#queue.closed) await this.#arrived.wait(signal);
    return this.#live > 0;
  }

  #wake(): void {
    this.#arrived.wake();
  }

  /** Notes that `entry` was taken through its connection's queue. */
  forget(entry: Entry<P>): void {
    this.#live--;
    this.#queue.removeEnd(entry) || this.#maybeCompact();
  }

  take(oldToNew: boolean): P | undefined {
    while (this.#queue.length > 0) {
      const entry = oldToNew ? this.#queue.shift()! : this.#queue.pop()!;
      if (entry.taken) continue;
      this.#claim(entry);
      return entry.packet;
    }
    return undefined;
  }

  async receive(signal?: AbortSignal): Promise<P | undefined> {
    const taken = this.take(true);
    if (taken !== undefined) return taken;
    const entry = await this.#queue.receive(signal);
    if (entry !== undefined && !entry.taken) this.#claim(entry);
    return entry?.packet;
  }

  close(): void {
    this.#queue.close();
    this.#wake();
  }

  #claim(entry: Entry<P>): void {
    entry.taken = true;
    this.#live--;
    entry.detach(entry);
  }

  #maybeCompact(): void {
    const dead = this.#queue.length - this.#live;
    if (dead < COMPACT_MIN || dead < this.#live) return;
    const live: Entry<P>[] = [];
    while (this.#queue.length > 0) {
      const entry = this.#queue.shift()!;
      if (!entry.taken) live.push(entry);
    }
    for (const entry of live) this.#queue.push(entry);
  }
}
