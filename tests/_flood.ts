// Copyright 2026 the aesm authors. MIT license.
/**
 * Connection floods for the admission tests, from another loopback address
 * (127.0.0.2, bound with `node:net`'s `localAddress`, since `Deno.connect`
 * cannot choose its source), and the connect times of a legitimate client
 * from 127.0.0.1 while they run.
 *
 * @module
 */

import net from "node:net";
import { ClientNetwork } from "../client.ts";
import { concat, frame, FrameType, preamble } from "./_adversary.ts";

/** The flooding peers' address. */
export const ATTACKER = "127.0.0.2";

/** A running flood. */
export interface Flood {
  /** Sockets open now. */
  readonly open: number;
  /** Connections made so far. */
  readonly opened: number;
  /** Sockets the server answered (a Refuse frame, or message 2) so far. */
  readonly replies: number;
  /** Ends the flood and closes every socket. */
  stop(): Promise<void>;
}

interface FloodOptions {
  port: number;
  /** Sockets kept open (or in flight) at once. */
  sockets: number;
  /** Open a new socket when one is closed (by the server), at most this many a second. */
  reopen: number;
  /** What each socket sends once connected: nothing (silent), or the preamble and a message 1. */
  send?: Uint8Array;
  /** Reset a socket once the server's message 2 arrives. */
  resetOnReply?: boolean;
}

/** Opens `sockets` connections from {@linkcode ATTACKER} and keeps them as told. */
export function flood(options: FloodOptions): Flood {
  const live = new Set<net.Socket>();
  const closed = new Set<Promise<void>>();
  let stopped = false;
  let opened = 0;
  let replies = 0;
  const openOne = (): void => {
    const socket = net.connect({ port: options.port, host: "127.0.0.1", localAddress: ATTACKER });
    opened++;
    live.add(socket);
    const { promise, resolve } = Promise.withResolvers<void>();
    closed.add(promise);
    socket.on("error", () => {});
    socket.on("connect", () => {
      if (options.send) socket.write(options.send);
    });
    socket.on("data", () => {
      replies++;
      if (options.resetOnReply) socket.resetAndDestroy();
    });
    socket.on("close", () => {
      live.delete(socket);
      closed.delete(promise);
      resolve();
      if (options.reopen > 0 && !stopped) reopen();
    });
  };
  // Re-opens are spread over time: at most options.reopen a second.
  let nextReopen = 0;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const reopen = (): void => {
    const now = performance.now();
    nextReopen = Math.max(now, nextReopen + 1000 / options.reopen);
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!stopped) openOne();
    }, nextReopen - now);
    timers.add(timer);
  };
  for (let i = 0; i < options.sockets; i++) openOne();
  return {
    get open() {
      return live.size;
    },
    get opened() {
      return opened;
    },
    get replies() {
      return replies;
    },
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      for (const socket of live) socket.destroy();
      while (closed.size > 0) await Promise.all(closed);
    },
  };
}

/** The preamble and a message 1 of 32 random bytes: the server then does its DH work. */
export async function dhBait(): Promise<Uint8Array> {
  return concat(
    await preamble(),
    frame(FrameType.Handshake, crypto.getRandomValues(new Uint8Array(32))),
  );
}

/** Connect times of a legitimate client, and the errors of those that failed. */
export interface ConnectFigures {
  readonly times: number[];
  readonly errors: string[];
  readonly p50: number;
  readonly p99: number;
}

/** Connects `count` times in turn from 127.0.0.1 (closing each), timing each connect. */
export async function timeConnects(port: number, count: number): Promise<ConnectFigures> {
  const times: number[] = [];
  const errors: string[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    try {
      const client = await ClientNetwork.connect({
        hostname: "127.0.0.1",
        port,
        handshakeTimeout: 15_000,
      });
      times.push(performance.now() - started);
      await client.close();
    } catch (error) {
      errors.push(String((error as { reason?: string }).reason ?? error));
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { times, errors, p50: at(0.5) ?? NaN, p99: at(0.99) ?? NaN };
}

/** `p50/p99 ms, n refused` for a report line. */
export function describe(figures: ConnectFigures): string {
  const refused = figures.errors.length;
  return `p50/p99 ${figures.p50.toFixed(1)}/${figures.p99.toFixed(1)} ms, ` +
    `${refused} of ${figures.times.length + refused} failed` +
    (refused > 0 ? ` (${[...new Set(figures.errors)].join(", ")})` : "");
}
