// Copyright 2026 the aesm authors. MIT license.
/**
 * One measurement under a hard time cap: it owns the peers and links it
 * opens, and on success, failure or timeout closes all of them. Private.
 *
 * @module
 */

import { type Message, Peer } from "./_control.ts";
import type { Link } from "./_impls.ts";
import { backendCalls } from "../_crypto/primitives.ts";

/** How a measurement ended: its values, or why there are none. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | {
  readonly ok: false;
  readonly failure: string;
};

const CLEANUP_CAP_MS = 8000;

/** The resources and deadline of one measurement. */
export class Trial {
  readonly #controller = new AbortController();
  readonly #peers: Peer[] = [];
  readonly #links: Link[] = [];
  readonly #capMs: number;

  /** @param capMs The measurement's hard time cap. */
  constructor(capMs: number) {
    this.#capMs = capMs;
  }

  /** Aborts when the cap is reached. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Throws if the measurement has been aborted; call it in every loop. */
  check(): void {
    if (this.signal.aborted) throw new Error("aborted");
  }

  /** Starts a peer subprocess that lives as long as the measurement. */
  peer(role: Message): Peer {
    this.check();
    const peer = new Peer(role, this.#capMs + CLEANUP_CAP_MS);
    this.#peers.push(peer);
    return peer;
  }

  /** Registers a link to close when the measurement ends. */
  link(link: Link): Link {
    this.#links.push(link);
    return link;
  }

  /**
   * The crypto calls by backend made during the measurement: this process's
   * since `before`, plus every peer's (peers are fresh for each measurement).
   */
  async cryptoCalls(before: Record<string, number>): Promise<Record<string, number>> {
    const total: Record<string, number> = {};
    for (const [name, count] of Object.entries(backendCalls)) total[name] = count - before[name];
    for (const peer of this.#peers) {
      const usage = await peer.ask<Message>({ type: "usage" }, "usage");
      for (const name of Object.keys(backendCalls)) total[name] += Number(usage[name] ?? 0);
    }
    return total;
  }

  /** Aborts: kills the peers at once, which ends every pending read and write. */
  abort(): void {
    this.#controller.abort();
    for (const peer of this.#peers) peer.kill();
  }

  /** Closes the links, then lets the peers exit (killing them if they linger). */
  async close(): Promise<void> {
    const links = this.#links.splice(0).map((link) => link.close().catch(() => {}));
    await withCap(Promise.all(links), CLEANUP_CAP_MS / 2);
    const peers = this.#peers.splice(0).map((peer) => peer[Symbol.asyncDispose]());
    await withCap(Promise.all(peers), CLEANUP_CAP_MS / 2);
  }
}

async function withCap(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const cap = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  try {
    await Promise.race([work.then(() => {}, () => {}), cap]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `body` with a fresh {@linkcode Trial}; after `capMs` it is aborted and
 * the outcome is `"timeout"`.
 */
export async function runTrial<T>(
  capMs: number,
  body: (trial: Trial) => Promise<T>,
): Promise<Outcome<T>> {
  const trial = new Trial(capMs);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) =>
    timer = setTimeout(resolve, capMs, "timeout")
  );
  const work = body(trial);
  work.catch(() => {});
  try {
    const result = await Promise.race([work, timeout]);
    if (result === "timeout") {
      trial.abort();
      await withCap(work, CLEANUP_CAP_MS / 2);
      return { ok: false, failure: "timeout" };
    }
    return { ok: true, value: result as T };
  } catch (error) {
    trial.abort();
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, failure: `error: ${message.split("\n")[0]}` };
  } finally {
    clearTimeout(timer);
    await trial.close();
  }
}
