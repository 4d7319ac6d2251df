// Copyright 2026 the aesm authors. MIT license.
/** Helpers for the tests that open real loopback sockets. Private to the tests. */

import assert from "node:assert/strict";
import type { ActivityRecord } from "../activity.ts";
import type { ServerNetwork } from "../server.ts";

/** The loopback address every test listens on. */
export const HOST = "127.0.0.1";

/** How long any single wait in a test may take before the test fails instead of hanging. */
export const WAIT_MS = 15_000;

/** A signal that bounds one wait. */
export function bounded(ms: number = WAIT_MS): { signal: AbortSignal } {
  return { signal: AbortSignal.timeout(ms) };
}

/** Resolves like `promise`, or rejects if it takes longer than `ms`. Leaves no timer behind. */
export async function within<T>(
  promise: Promise<T>,
  what: string,
  ms: number = WAIT_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error `promise` rejects with; fails if it resolves or takes too long. */
export async function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  return await within(
    promise.then(
      (value) => assert.fail(`expected ${what} to reject, it resolved with ${String(value)}`),
      (error: unknown) => error,
    ),
    what,
  );
}

/** Takes the next activity record, failing if none comes in time. */
export async function nextActivity(server: ServerNetwork): Promise<ActivityRecord> {
  const record = await server.activity.receive(bounded());
  assert.ok(record !== undefined, "the activity log ended early");
  return record;
}

/** Takes activity records until one has `event`, failing if none comes in time. */
export async function activityOf(
  server: ServerNetwork,
  event: ActivityRecord["event"],
): Promise<ActivityRecord> {
  while (true) {
    const record = await nextActivity(server);
    if (record.event === event) return record;
  }
}

/** Deterministic bytes, different for each `seed`. */
export function pattern(length: number, seed = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Lets the event loop run one macrotask turn (I/O and timers), without waiting on the clock. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Whether `promise` is still pending after `turns` event-loop turns. */
export async function pendingAfter(promise: Promise<unknown>, turns: number): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let i = 0; i < turns && !settled; i++) await turn();
  return !settled;
}

/** Reads from a raw connection until it ends; returns everything read. */
export async function readToEnd(conn: Deno.Conn): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) break;
      throw error;
    }
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** The preamble an aesm client sends: `PROTOCOL.md`, section 2. */
export async function preamble(
  applicationName = "aesm",
  withPsk = false,
): Promise<Uint8Array<ArrayBuffer>> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(applicationName)),
  );
  const out = new Uint8Array(16);
  out.set([0x61, 0x65, 0x73, 0x6d, 0x01, withPsk ? 2 : 0, 0, 0]);
  out.set(digest.subarray(0, 8), 8);
  return out;
}

/** Whether this machine can listen on IPv6 loopback. */
export function hasIpv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/** Frame counts seen by a {@linkcode Relay}, one direction. */
export interface Direction {
  /** How many frames of each type passed. */
  readonly frames: Map<number, number>;
  /** How many bytes passed. */
  bytes: number;
  /** The first bytes that passed, up to the relay's capture limit. */
  readonly captured: Uint8Array[];
}

/**
 * A TCP relay between clients and a server that counts the frames going
 * each way, parsing the wire format of `PROTOCOL.md` on its own.
 */
export class Relay implements AsyncDisposable {
  readonly toServer: Direction = { frames: new Map(), bytes: 0, captured: [] };
  readonly toClient: Direction = { frames: new Map(), bytes: 0, captured: [] };
  #listener: Deno.TcpListener;
  #target: number;
  #capture: number;
  #conns: Deno.Conn[] = [];
  #tasks: Promise<void>[] = [];
  #loop: Promise<void>;

  constructor(targetPort: number, capture = 0) {
    this.#target = targetPort;
    this.#capture = capture;
    this.#listener = Deno.listen({ hostname: HOST, port: 0 });
    this.#loop = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    try {
      for await (const inbound of this.#listener) {
        const outbound = await Deno.connect({ hostname: HOST, port: this.#target });
        this.#conns.push(inbound, outbound);
        this.#tasks.push(
          this.#pipe(inbound, outbound, this.toServer, 16),
          this.#pipe(outbound, inbound, this.toClient, 0),
        );
      }
    } catch {
      // The listener was closed.
    }
  }

  async #pipe(from: Deno.Conn, to: Deno.Conn, direction: Direction, skip: number): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    const header: number[] = [];
    let body = 0;
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        if (direction.bytes < this.#capture) direction.captured.push(chunk);
        direction.bytes += n;
        for (let i = 0; i < n;) {
          if (skip > 0) {
            const take = Math.min(skip, n - i);
            skip -= take;
            i += take;
          } else if (body > 0) {
            const take = Math.min(body, n - i);
            body -= take;
            i += take;
          } else {
            header.push(chunk[i++]);
            if (header.length === 3) {
              direction.frames.set(header[0], (direction.frames.get(header[0]) ?? 0) + 1);
              body = (header[1] << 8) | header[2];
              header.length = 0;
            }
          }
        }
        let written = 0;
        while (written < n) written += await to.write(chunk.subarray(written));
      }
      await to.closeWrite();
    } catch {
      // Either side went away: the test looks at what the peers saw.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#loop;
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await Promise.all(this.#tasks);
  }
}

/** A child's output read line by line, each wait bounded. */
export class LineReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buffered = "";

  constructor(stream: ReadableStream<Uint8Array>, readonly who: string = "the child") {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line, without its newline; fails if none comes within `ms`. */
  async line(what: string, ms: number = 30_000): Promise<string> {
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await within(this.#reader.read(), what, ms);
      if (done) throw new Error(`${this.who} ended before ${what}`);
      this.#buffered += value;
    }
    const end = this.#buffered.indexOf("\n");
    const line = this.#buffered.slice(0, end);
    this.#buffered = this.#buffered.slice(end + 1);
    return line;
  }

  /** Stops reading. */
  cancel(): Promise<void> {
    return this.#reader.cancel().catch(() => {});
  }
}

/** A child process, one of whose outputs the test reads line by line; killed with SIGKILL on dispose. */
export class Child implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  #lines: LineReader;
  #gone = false;

  constructor(child: Deno.ChildProcess, output: ReadableStream<Uint8Array>, who: string) {
    this.child = child;
    this.#lines = new LineReader(output, who);
  }

  /** The next line of its output; fails if none comes within `ms`. */
  line(what: string, ms?: number): Promise<string> {
    return this.#lines.line(what, ms);
  }

  /** Kills the child at once, as a crash would, and waits for it to be gone. Idempotent. */
  async kill(): Promise<void> {
    if (this.#gone) return;
    this.#gone = true;
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await this.child.status;
    await this.#lines.cancel();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/** A `deno eval` subprocess whose output the test reads line by line, killed with SIGKILL on dispose. */
export class Subprocess extends Child {
  constructor(code: string) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    super(child, child.stdout, "The child");
  }

  /** Sends the child SIGTERM (a graceful stop) and waits, bounded, for it to exit. */
  async terminate(): Promise<Deno.CommandStatus> {
    this.child.kill("SIGTERM");
    try {
      return await within(this.child.status, "the child to exit on SIGTERM", 30_000);
    } finally {
      await this.kill(); // Stops reading; a child that did not exit is killed.
    }
  }
}
