// Copyright 2026 the aesm authors. MIT license.
/**
 * Waiting with an abort signal, without leaving anything behind when the
 * signal aborts. Private.
 *
 * @module
 */

/** Resolves or rejects like `promise`, or rejects with `signal.reason` on abort. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  signal.throwIfAborted();
  const { promise: aborted, reject } = Promise.withResolvers<never>();
  const onAbort = () => reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  return Promise.race([promise, aborted]).finally(() =>
    signal.removeEventListener("abort", onAbort)
  );
}

/**
 * Parked waiters that `wake()` releases all at once. An aborted waiter is
 * removed at once, so waits that keep aborting while nothing happens hold
 * no memory (a shared promise would keep a reaction per aborted wait).
 */
export class Waiters {
  #waiting = new Set<() => void>();

  /** Waits for the next `wake()`; rejects with `signal.reason` if the signal aborts first. */
  wait(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    if (signal === undefined) {
      this.#waiting.add(resolve);
      return promise;
    }
    const onAbort = () => {
      this.#waiting.delete(wake);
      reject(signal.reason);
    };
    const wake = () => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    this.#waiting.add(wake);
    return promise;
  }

  /** Releases every parked waiter. */
  wake(): void {
    if (this.#waiting.size === 0) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const wake of waiting) wake();
  }
}

/** Options of the waiting methods. */
export interface ReceiveOptions {
  /** Aborts the wait; the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}
