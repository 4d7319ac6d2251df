// Copyright 2026 the aesm authors. MIT license.
/**
 * Helpers of the adversarial tests: a seeded PRNG, deadlines, a frame
 * splitter, a raw aesm peer that runs the handshake itself (from
 * PROTOCOL.md, with `HandshakeState`), a recording and tampering TCP proxy,
 * a watcher of a server's activity and connections, and a well-behaved
 * sentinel client. Run as a script it is a peer process for the fault and
 * backpressure tests (modes `flood`, `serve` and `sink`, at the end).
 *
 * @module
 */

import { concat } from "../_crypto/bytes.ts";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ClientNetwork } from "../client.ts";
import type { CipherState, KeyPair } from "../cipher.ts";
import type { Connection } from "../connection.ts";
import { HandshakeState } from "../handshake.ts";
import { type ActivityRecord, ServerNetwork, type ServerOptions } from "../server.ts";

export type Bytes = Uint8Array<ArrayBuffer>;

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Bytes

/** Concatenates byte strings. */

/** UTF-8 bytes of a string. */
export function utf8(text: string): Bytes {
  return encoder.encode(text) as Bytes;
}

/** Lowercase hex, for messages. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------
// Randomness

/** The fuzz seed: `AESM_FUZZ_SEED` if set, else a fresh one. */
export function fuzzSeed(): number {
  const fromEnv = Deno.env.get("AESM_FUZZ_SEED");
  if (fromEnv !== undefined && fromEnv !== "") {
    const seed = Number(fromEnv);
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Cannot use AESM_FUZZ_SEED: expected an integer, got ${fromEnv}`);
    }
    return seed >>> 0;
  }
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/** A small, fast, seeded PRNG (sfc32). Not for keys: for choosing test inputs. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(readonly seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** An integer in `[0, n)`. */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** An integer in `[min, max]`. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Bytes {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }

  /** Splits `bytes` into chunks of random sizes, some of one byte. */
  chunks(bytes: Uint8Array, maxChunk = 4096): Uint8Array[] {
    const out: Uint8Array[] = [];
    let offset = 0;
    while (offset < bytes.length) {
      const size = this.chance(0.2) ? 1 : this.range(1, maxChunk);
      out.push(bytes.subarray(offset, offset + size));
      offset += size;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// Time

/** Thrown by {@linkcode within} when a deadline passes. */
export class DeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeadlineError";
  }
}

/**
 * Settles like `promise`, or rejects with a `DeadlineError` after `ms`;
 * `onTimeout` may then unblock the work (close a socket) so nothing stays
 * pending. The timer is always cleared.
 */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  onTimeout?: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new DeadlineError(`Deadline of ${ms} ms passed: ${what}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits `ms`: only where a scenario is about time (a slow peer, an idle application). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Every unhandled rejection in this worker, caught from the first trap on: a
// connection may fail late, after the test that made it has ended, and in a
// real program each one kills the process (Deno's default).
const unhandled: unknown[] = [];
let listening = false;

/**
 * Catches unhandled promise rejections, so that a test that causes one fails
 * with it instead of the whole file dying. Once the first trap exists, every
 * later rejection in this worker is caught; a trap reports those that came
 * while it was in scope, and one that comes late is reported by the next
 * trap's test.
 */
export class RejectionTrap implements Disposable {
  #start: number;

  constructor() {
    if (!listening) {
      listening = true;
      globalThis.addEventListener("unhandledrejection", (event) => {
        event.preventDefault();
        unhandled.push(event.reason);
      });
    }
    this.#start = unhandled.length;
  }

  /** The rejections caught since this trap was made. */
  get errors(): unknown[] {
    return unhandled.slice(this.#start);
  }

  /**
   * Throws if any rejection went unhandled, or rethrows `failure` (a test's
   * own error), with both messages when there are both.
   */
  check(failure?: unknown): void {
    const errors = this.errors;
    if (errors.length === 0) {
      if (failure !== undefined) throw failure;
      return;
    }
    const first = errors[0];
    const text = first instanceof Error ? `${first.name}: ${first.stack}` : String(first);
    const also = failure === undefined
      ? ""
      : `\nThe test also failed: ${failure instanceof Error ? failure.message : String(failure)}`;
    throw new assert.AssertionError({
      message: `${errors.length} unhandled rejection(s), each of which kills a Deno ` +
        `process by default. First: ${text}${also}`,
    });
  }

  [Symbol.dispose](): void {
    // The listener stays: late rejections go to the next trap.
  }
}

// ---------------------------------------------------------------------------
// Memory

let gcFunction: (() => void) | undefined;

/** Runs a full garbage collection (V8's `gc`, exposed through `node:v8`). */
export function forceGc(): void {
  if (gcFunction === undefined) {
    setFlagsFromString("--expose-gc");
    gcFunction = runInNewContext("gc") as () => void;
  }
  gcFunction();
  gcFunction();
}

/** Heap and RSS after a full GC, in bytes. */
export function settledMemory(): { heapUsed: number; rss: number; external: number } {
  forceGc();
  const { heapUsed, rss, external } = Deno.memoryUsage();
  return { heapUsed, rss, external };
}

/** Formats bytes as MiB. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// ---------------------------------------------------------------------------
// Wire format (PROTOCOL.md)

export const MAGIC = [0x61, 0x65, 0x73, 0x6d];
export const PREAMBLE_LENGTH = 16;
export const TAG_LENGTH = 16;
export const MAX_PLAINTEXT = 65535 - TAG_LENGTH;

export const FrameType = { Handshake: 1, Refuse: 2, Transport: 3, TransportRekey: 4 } as const;
export const RecordType = { Text: 1, Binary: 2, Continuation: 3, Close: 4, Ping: 5 } as const;

export const REFUSE_REASONS: Record<number, string> = {
  1: "malformed",
  2: "version",
  3: "protocol-mismatch",
  4: "application-mismatch",
  5: "handshake-failed",
  6: "psk-mismatch",
  7: "unauthorized",
  8: "key-rejected",
  9: "server-full",
  10: "timeout",
  11: "server-busy",
  12: "too-many-from-address",
};

export const CLOSE_CODES = {
  normal: 0,
  shutdown: 1,
  "protocol-error": 2,
  "message-too-large": 3,
  timeout: 4,
  "internal-error": 5,
} as const;

/** The 16-byte preamble of section 2. */
export async function preamble(applicationName = "aesm", psk = false): Promise<Bytes> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", utf8(applicationName)));
  return concat(new Uint8Array([...MAGIC, 1, psk ? 2 : 0, 0, 0]), digest.subarray(0, 8));
}

/** A frame: `type || length || body`. */
export function frame(type: number, body: Uint8Array): Bytes {
  return concat(new Uint8Array([type, body.length >>> 8, body.length & 0xff]), body);
}

/** A record: `type || length || body`. */
export function record(type: number, body: Uint8Array): Bytes {
  return concat(new Uint8Array([type, body.length >>> 8, body.length & 0xff]), body);
}

/** The first record of a message, declaring `total` bytes and carrying `chunk`. */
export function startRecord(
  text: boolean,
  total: number,
  chunk: Uint8Array,
  sentAt = 1_700_000_000_000,
): Bytes {
  const head = new Uint8Array(12);
  const view = new DataView(head.buffer);
  view.setBigUint64(0, BigInt(sentAt));
  view.setUint32(8, total);
  return record(text ? RecordType.Text : RecordType.Binary, concat(head, chunk));
}

/** A whole message in one record. */
export function messageRecord(data: string | Uint8Array): Bytes {
  const text = typeof data === "string";
  const bytes = text ? utf8(data) : data;
  return startRecord(text, bytes.length, bytes);
}

/** A Close record. */
export function closeRecord(reason: keyof typeof CLOSE_CODES, message = ""): Bytes {
  return record(RecordType.Close, concat(new Uint8Array([CLOSE_CODES[reason]]), utf8(message)));
}

/** A transport frame sealed under `cipher`, its header as associated data (section 5). */
export async function seal(
  cipher: CipherState,
  plaintext: Uint8Array,
  type: number = FrameType.Transport,
): Promise<Bytes> {
  const length = plaintext.length + TAG_LENGTH;
  const header = new Uint8Array([type, length >>> 8, length & 0xff]);
  return concat(header, await cipher.encryptWithAd(header, plaintext));
}

/** A parsed frame. */
export interface ParsedFrame {
  readonly type: number;
  readonly header: Bytes;
  readonly body: Bytes;
}

/** Parses one whole frame (header and body). */
export function parseFrame(bytes: Bytes): ParsedFrame {
  return { type: bytes[0], header: bytes.subarray(0, 3), body: bytes.subarray(3) };
}

/** Parses the records of a plaintext (no checks beyond lengths). */
export function parseRecords(plaintext: Uint8Array): { type: number; body: Uint8Array }[] {
  const out = [];
  let offset = 0;
  while (offset + 3 <= plaintext.length) {
    const length = (plaintext[offset + 1] << 8) | plaintext[offset + 2];
    out.push({
      type: plaintext[offset],
      body: plaintext.subarray(offset + 3, offset + 3 + length),
    });
    offset += 3 + length;
  }
  return out;
}

/**
 * Splits a byte stream into whole frames (header included), after an
 * optional preamble emitted as its own unit. It trusts lengths: use it on
 * honest streams.
 */
export class FrameSplitter {
  #pending: Bytes = new Uint8Array(0);
  #preamble: number;

  constructor(preambleLength = 0) {
    this.#preamble = preambleLength;
  }

  /** Bytes of an incomplete unit held back. */
  get rest(): Bytes {
    return this.#pending;
  }

  push(chunk: Uint8Array): Bytes[] {
    const data = this.#pending.length === 0 ? new Uint8Array(chunk) : concat(this.#pending, chunk);
    const out: Bytes[] = [];
    let offset = 0;
    while (true) {
      const available = data.length - offset;
      let size: number;
      if (this.#preamble > 0) size = this.#preamble;
      else if (available < 3) break;
      else size = 3 + ((data[offset + 1] << 8) | data[offset + 2]);
      if (available < size) break;
      out.push(data.slice(offset, offset + size));
      offset += size;
      this.#preamble = 0;
    }
    this.#pending = data.slice(offset);
    return out;
  }
}

/** Reads whole frames from a connection. */
export class FrameReader {
  #conn: Deno.Conn;
  #splitter: FrameSplitter;
  #ready: Bytes[] = [];
  #buffer = new Uint8Array(65536 + 16);
  #ended = false;

  constructor(conn: Deno.Conn, preambleLength = 0) {
    this.#conn = conn;
    this.#splitter = new FrameSplitter(preambleLength);
  }

  /** Bytes of an incomplete frame at the end of the stream. */
  get rest(): Bytes {
    return this.#splitter.rest;
  }

  /** The next whole frame, or `null` once the stream ends. Rejects on a reset. */
  async next(): Promise<Bytes | null> {
    while (this.#ready.length === 0) {
      if (this.#ended) return null;
      const n = await this.#conn.read(this.#buffer);
      if (n === null) {
        this.#ended = true;
        return null;
      }
      this.#ready.push(...this.#splitter.push(this.#buffer.subarray(0, n)));
    }
    return this.#ready.shift()!;
  }

  /** Every frame until the stream ends or fails; `error` says if it failed (a reset). */
  async drain(): Promise<{ frames: Bytes[]; error?: unknown }> {
    const frames: Bytes[] = [];
    try {
      while (true) {
        const next = await this.next();
        if (next === null) return { frames };
        frames.push(next);
      }
    } catch (error) {
      return { frames, error };
    }
  }
}

/** Writes all of `bytes`. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Closes a resource, ignoring "already closed". */
export function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}

// ---------------------------------------------------------------------------
// A raw peer

/** Options of {@linkcode RawClient.connect}. */
export interface RawClientOptions {
  port: number;
  hostname?: string;
  applicationName?: string;
  psk?: Uint8Array;
  keyPair?: KeyPair;
  /** The `max_message_size` this peer announces. */
  maxMessageSize?: number;
  /** How the handshake's bytes are written (default: all at once). */
  write?: (conn: Deno.Conn, bytes: Uint8Array) => Promise<void>;
}

/**
 * An aesm client written from PROTOCOL.md alone: it runs the handshake with
 * `HandshakeState` and then sends whatever frames and records a test makes,
 * sealed with the session's real keys.
 */
export class RawClient {
  readonly conn: Deno.TcpConn;
  readonly reader: FrameReader;
  send!: CipherState;
  receive!: CipherState;
  peerMaxMessageSize = 0;
  /** The server's address as it sees this client. */
  readonly localAddress: string;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.reader = new FrameReader(conn);
    this.localAddress = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
  }

  /** Opens the TCP connection only. */
  static async open(options: RawClientOptions): Promise<RawClient> {
    const conn = await Deno.connect({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port,
    });
    conn.setNoDelay(true);
    return new RawClient(conn);
  }

  /** Opens a connection and completes the handshake. */
  static async connect(options: RawClientOptions, keyPair: KeyPair): Promise<RawClient> {
    const client = await RawClient.open(options);
    try {
      await client.handshake({ ...options, keyPair });
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Runs the initiator's side of section 4, writing each message as it is ready. */
  async handshake(options: RawClientOptions & { keyPair: KeyPair }): Promise<void> {
    const applicationName = options.applicationName ?? "aesm";
    const psk = options.psk;
    const pre = await preamble(applicationName, psk !== undefined);
    const hs = await HandshakeState.create({
      protocolName: psk ? "Noise_XXpsk0_25519_AESGCM_SHA256" : "Noise_XX_25519_AESGCM_SHA256",
      initiator: true,
      prologue: concat(pre, utf8(applicationName)),
      staticPrivateKey: options.keyPair.privateKey,
      psks: psk ? [psk] : [],
    });
    const write = options.write ?? writeAll;
    await write(this.conn, concat(pre, frame(FrameType.Handshake, await hs.writeMessage())));
    const second = await this.expectFrame(FrameType.Handshake, "message 2");
    const params = await hs.readMessage(second.body);
    this.peerMaxMessageSize = new DataView(params.buffer, params.byteOffset).getUint32(0);
    const mine = new Uint8Array(4);
    new DataView(mine.buffer).setUint32(0, options.maxMessageSize ?? 16 * 1024 * 1024);
    await write(this.conn, frame(FrameType.Handshake, await hs.writeMessage(mine)));
    const { send, receive } = await hs.split();
    this.send = send;
    this.receive = receive;
    const acceptance = await this.expectFrame(FrameType.Transport, "the acceptance");
    const plaintext = await receive.decryptWithAd(acceptance.header, acceptance.body);
    assert.equal(plaintext.length, 0, "the acceptance is empty");
  }

  /** Reads a frame and checks its type; a Refuse frame throws with its reason. */
  async expectFrame(type: number, what: string): Promise<ParsedFrame> {
    const next = await this.reader.next();
    if (next === null) throw new Error(`Raw client: the stream ended before ${what}`);
    const parsed = parseFrame(next);
    if (parsed.type === FrameType.Refuse) {
      throw new Error(`Raw client: refused (${REFUSE_REASONS[parsed.body[0]]}) before ${what}`);
    }
    assert.equal(parsed.type, type, `frame type of ${what}`);
    return parsed;
  }

  /** Seals `plaintext` into one transport frame and writes it. */
  async sendPlaintext(plaintext: Uint8Array, type: number = FrameType.Transport): Promise<void> {
    await writeAll(this.conn, await seal(this.send, plaintext, type));
  }

  /** Writes raw bytes. */
  async write(bytes: Uint8Array): Promise<void> {
    await writeAll(this.conn, bytes);
  }

  /**
   * Reads until the server ends the stream and decrypts what came: the
   * records received and the close code, if a Close record came.
   */
  async readToEnd(): Promise<{ records: { type: number; body: Uint8Array }[]; close?: number }> {
    const { frames } = await this.reader.drain();
    const records = [];
    for (const bytes of frames) {
      const parsed = parseFrame(bytes);
      if (parsed.type !== FrameType.Transport && parsed.type !== FrameType.TransportRekey) break;
      const plaintext = await this.receive.decryptWithAd(parsed.header, parsed.body);
      if (parsed.type === FrameType.TransportRekey) await this.receive.rekey();
      records.push(...parseRecords(plaintext));
    }
    const close = records.find((r) => r.type === RecordType.Close)?.body[0];
    return close === undefined ? { records } : { records, close };
  }

  close(): void {
    closeQuietly(this.conn);
  }
}

/** Reads what a server sends until it ends the stream: the Refuse reason if any. */
export async function readRefusal(conn: Deno.Conn): Promise<string | undefined> {
  const { frames } = await new FrameReader(conn).drain();
  const refuse = frames.map(parseFrame).find((f) => f.type === FrameType.Refuse);
  return refuse && REFUSE_REASONS[refuse.body[0]];
}

// ---------------------------------------------------------------------------
// The recording, tampering proxy

export type Direction = "c2s" | "s2c";

/** What the proxy does with one frame: the bytes to forward instead, and how to end. */
export interface TamperAction {
  send: Uint8Array[];
  /** `"fin"`: shut down this direction after sending; `"close"`: close both sockets. */
  end?: "fin" | "close";
}

/** Decides what to forward for each frame of a session, by direction and index. */
export type Tamper = (direction: Direction, index: number, frame: Bytes) => TamperAction;

/** A recorded frame: its type, its length, and the bytes when kept. */
export interface RecordedFrame {
  readonly type: number;
  readonly size: number;
  readonly bytes?: Bytes;
}

/** One proxied TCP connection. */
export interface ProxySession {
  /** The client's address as the server sees it (the proxy's upstream socket). */
  upstreamAddress: string;
  /** Frames as the honest endpoints sent them (for c2s, the preamble is frame 0). */
  frames: Record<Direction, RecordedFrame[]>;
  /** Bytes seen per direction. */
  bytes: Record<Direction, number>;
  /** Resolves once the upstream connection is open (or failed to open). */
  ready: Promise<void>;
  /** Resolves once both directions have ended. */
  done: Promise<void>;
}

/** Options of {@linkcode RecordingProxy.start}. */
export interface ProxyOptions {
  targetPort: number;
  /** Makes the tamper function of each new session; absent, the proxy forwards faithfully. */
  tamper?: (sessionIndex: number) => Tamper | undefined;
  /** Keep the bytes of recorded frames (default true; false records types and sizes only). */
  keepBytes?: boolean;
}

/**
 * A TCP proxy on loopback between an aesm client and server that records
 * each session's frames per direction, and can replace, drop, duplicate or
 * reorder them, or cut the stream at a frame boundary.
 */
export class RecordingProxy {
  readonly port: number;
  readonly sessions: ProxySession[] = [];
  #listener: Deno.TcpListener;
  #options: ProxyOptions;
  #loop: Promise<void>;
  #open = new Set<Deno.Conn>();
  #arrived = new Set<() => void>();

  private constructor(listener: Deno.TcpListener, options: ProxyOptions) {
    this.#listener = listener;
    this.#options = options;
    this.port = listener.addr.port;
    this.#loop = this.#accept();
  }

  static start(options: ProxyOptions): RecordingProxy {
    return new RecordingProxy(Deno.listen({ hostname: "127.0.0.1", port: 0 }), options);
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) this.#serve(client, this.sessions.length);
    } catch {
      // The listener was closed.
    }
  }

  /** Waits for the session of the `index`-th accepted connection. */
  async session(index: number, ms = 5000): Promise<ProxySession> {
    if (this.sessions[index] === undefined) {
      const { promise, resolve } = Promise.withResolvers<void>();
      const waiter = () => this.sessions[index] && resolve();
      this.#arrived.add(waiter);
      try {
        await within(promise, ms, `proxy session ${index}`);
      } finally {
        this.#arrived.delete(waiter);
      }
    }
    const session = this.sessions[index];
    await session.ready;
    return session;
  }

  #serve(client: Deno.TcpConn, index: number): void {
    const done = Promise.withResolvers<void>();
    const ready = Promise.withResolvers<void>();
    const session: ProxySession = {
      upstreamAddress: "",
      frames: { c2s: [], s2c: [] },
      bytes: { c2s: 0, s2c: 0 },
      ready: ready.promise,
      done: done.promise,
    };
    this.sessions.push(session);
    for (const waiter of [...this.#arrived]) waiter();
    this.#open.add(client);
    const run = async () => {
      let upstream: Deno.TcpConn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#options.targetPort });
      } catch {
        this.#drop(client);
        return;
      } finally {
        ready.resolve();
      }
      this.#open.add(upstream);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      session.upstreamAddress = `${upstream.localAddr.hostname}:${upstream.localAddr.port}`;
      const tamper = this.#options.tamper?.(index);
      const both = () => {
        this.#drop(client);
        this.#drop(upstream);
      };
      await Promise.all([
        this.#pump(client, upstream, "c2s", session, tamper, both),
        this.#pump(upstream, client, "s2c", session, tamper, both),
      ]);
      both();
    };
    run().finally(() => done.resolve());
  }

  async #pump(
    src: Deno.Conn,
    dst: Deno.Conn,
    direction: Direction,
    session: ProxySession,
    tamper: Tamper | undefined,
    closeBoth: () => void,
  ): Promise<void> {
    const splitter = new FrameSplitter(direction === "c2s" ? PREAMBLE_LENGTH : 0);
    const buffer = new Uint8Array(65536 + 16);
    const keep = this.#options.keepBytes ?? true;
    let index = 0;
    let forwarding = true;
    try {
      while (true) {
        const n = await src.read(buffer);
        if (n === null) break;
        session.bytes[direction] += n;
        if (!forwarding) continue;
        for (const unit of splitter.push(buffer.subarray(0, n))) {
          session.frames[direction].push(
            keep ? { type: unit[0], size: unit.length, bytes: unit } : {
              type: unit[0],
              size: unit.length,
            },
          );
          const action = tamper ? tamper(direction, index, unit) : { send: [unit] };
          index++;
          for (const bytes of action.send) await writeAll(dst, bytes);
          if (action.end === "close") return closeBoth();
          if (action.end === "fin") {
            forwarding = false;
            await dst.closeWrite();
            break;
          }
        }
      }
      if (!forwarding) return;
      if (splitter.rest.length > 0) await writeAll(dst, splitter.rest);
      await dst.closeWrite();
    } catch {
      closeBoth();
    }
  }

  #drop(conn: Deno.Conn): void {
    if (this.#open.delete(conn)) closeQuietly(conn);
  }

  /** Stops listening, cuts what is still open, and waits for every session to end. */
  async close(): Promise<void> {
    closeQuietly(this.#listener);
    await this.#loop;
    for (const conn of [...this.#open]) this.#drop(conn);
    await Promise.all(this.sessions.map((session) => session.done));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Forwards every frame unchanged. */
export const faithful: Tamper = (_direction, _index, bytes) => ({ send: [bytes] });

/**
 * Forwards every frame, but XORs `mask` into byte `position` (negative: from
 * the end) of frame `index` in `direction`.
 */
export function flipAt(direction: Direction, index: number, position: number, mask = 0xff): Tamper {
  return (d, i, bytes) => {
    if (d !== direction || i !== index) return { send: [bytes] };
    const copy = bytes.slice();
    const at = position < 0 ? copy.length + position : position;
    if (at < 0 || at >= copy.length) {
      throw new RangeError(`No byte ${position} in a ${copy.length}-byte frame`);
    }
    copy[at] ^= mask;
    return { send: [copy] };
  };
}

// ---------------------------------------------------------------------------
// Watching a server

/** A point in a watch's history: lookups after it ignore earlier connections from a reused port. */
export interface WatchMark {
  readonly records: number;
  readonly accepted: number;
}

/**
 * Drains a server's activity log and accepted connections into arrays, so
 * tests can wait for a record about one address without stealing another's.
 * It must be the only reader of `server.activity` and `server.accept()`.
 * Loopback reuses ports quickly: a test that opens many connections takes a
 * {@linkcode ServerWatch.mark} before each and looks up after it.
 */
export class ServerWatch {
  readonly records: ActivityRecord[] = [];
  /** The latest connection from each address. */
  readonly connections = new Map<string, Connection>();
  readonly #accepted: Connection[] = [];
  /** Called with each connection the server accepts (for relays). */
  onConnection: ((connection: Connection) => void) | undefined;
  #waiters = new Set<() => void>();
  #loops: Promise<void>;
  #server: ServerNetwork;

  constructor(server: ServerNetwork) {
    this.#server = server;
    this.#loops = Promise.all([this.#activity(), this.#accept()]).then(() => {});
  }

  async #activity(): Promise<void> {
    for await (const entry of this.#server.activity) {
      this.records.push(entry);
      this.#wake();
    }
  }

  async #accept(): Promise<void> {
    while (true) {
      let connection: Connection;
      try {
        connection = await this.#server.accept();
      } catch {
        return;
      }
      this.connections.set(connection.address, connection);
      this.#accepted.push(connection);
      this.onConnection?.(connection);
      this.#wake();
    }
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Waits until `check` returns a value, re-checking after every new record or connection. */
  async until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
    const found = check();
    if (found !== undefined) return found;
    const { promise, resolve } = Promise.withResolvers<T>();
    const waiter = () => {
      const value = check();
      if (value !== undefined) resolve(value);
    };
    this.#waiters.add(waiter);
    try {
      return await within(promise, ms, what);
    } finally {
      this.#waiters.delete(waiter);
    }
  }

  /** The present point in the history. */
  mark(): WatchMark {
    return { records: this.records.length, accepted: this.#accepted.length };
  }

  /** The records about `address` (after `since`). */
  about(address: string, since?: WatchMark): ActivityRecord[] {
    return this.records.slice(since?.records ?? 0).filter((entry) => entry.address === address);
  }

  /** The server side of `address` accepted after `since` (or the latest), if any yet. */
  accepted(address: string, since?: WatchMark): Connection | undefined {
    if (since === undefined) return this.connections.get(address);
    return this.#accepted.slice(since.accepted).find((c) => c.address === address);
  }

  /** Waits for the record that ends `address` (refused or disconnected) after `since`. */
  end(address: string, ms = 5000, since?: WatchMark): Promise<ActivityRecord> {
    return this.until(
      () => this.about(address, since).find((entry) => entry.event !== "connected"),
      ms,
      `the end of ${address}`,
    );
  }

  /** Waits for the server side of `address` (accepted after `since`). */
  connection(address: string, ms = 5000, since?: WatchMark): Promise<Connection> {
    return this.until(
      () => this.accepted(address, since),
      ms,
      `a connection from ${address}`,
    );
  }

  /** Ends the watch: call after `server.stop()`. */
  async done(): Promise<void> {
    await this.#loops;
  }
}

/** Takes every packet queued on a connection, without waiting. */
export function drainPackets(connection: Connection): (string | Uint8Array)[] {
  const out = [];
  for (let packet = connection.data.getData(); packet; packet = connection.data.getData()) {
    out.push(packet.data);
  }
  return out;
}

/** A well-behaved client kept connected to a server throughout a test. */
export class Sentinel {
  #rounds = 0;

  private constructor(readonly client: ClientNetwork, readonly serverSide: Connection) {}

  static async connect(
    server: ServerNetwork,
    watch: ServerWatch,
    options: { keyPair?: KeyPair; psk?: Uint8Array; applicationName?: string } = {},
  ): Promise<Sentinel> {
    const client = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: server.port,
      ...options,
    });
    return new Sentinel(client, await watch.connection(client.localAddress));
  }

  /** A message each way; throws if either does not arrive intact. */
  async roundTrip(): Promise<void> {
    const n = ++this.#rounds;
    await within(
      (async () => {
        await this.client.send(`sentinel ${n}`);
        assert.equal((await this.serverSide.receive())?.data, `sentinel ${n}`);
        await this.serverSide.send(utf8(`echo ${n}`));
        assert.deepEqual((await this.client.receive())?.data, utf8(`echo ${n}`));
      })(),
      10_000,
      `sentinel round trip ${n}`,
    );
  }

  get rounds(): number {
    return this.#rounds;
  }

  async close(): Promise<void> {
    const info = await this.client.close();
    assert.equal(info.reason, "normal", "the sentinel closes cleanly");
  }
}

/** Runs `task` over `items` with at most `limit` at once; results in item order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// ---------------------------------------------------------------------------
// As a script: a peer process for the fault tests

/** A sequence-numbered message: 8 bytes of index, then a pattern. */
export function sequenced(index: number, size: number): Bytes {
  const bytes = new Uint8Array(Math.max(8, size));
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(index));
  for (let i = 8; i < bytes.length; i++) bytes[i] = (index + i) & 0xff;
  return bytes;
}

/** Checks a sequence-numbered message, returning its index. */
export function checkSequenced(bytes: Uint8Array): number {
  const index = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0));
  for (let i = 8; i < bytes.length; i++) {
    if (bytes[i] !== ((index + i) & 0xff)) throw new Error(`Message ${index} is corrupt at ${i}`);
  }
  return index;
}

/** A peer in its own process (this file run as a script), to be killed for real. */
export class PeerProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#reader = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line the peer prints. */
  async line(): Promise<string> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("The peer process ended without printing a line");
      this.#buffer += value;
    }
    const end = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 1);
    return line;
  }

  /** Kills the peer with SIGKILL: no cleanup, no FIN from its code. */
  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill();
    await this.child.status;
    await this.#reader.cancel().catch(() => {});
  }
}

/**
 * `deno run -A tests/_adversary.ts flood <port>`: connects and sends
 * sequence-numbered messages until killed; prints `ready <its address>`
 * once connected.
 *
 * `deno run -A tests/_adversary.ts serve`: runs a server that discards what
 * it receives; prints its port; runs until killed.
 *
 * `deno run -A tests/_adversary.ts pskflood <port> <inFlight> <ms> [rate]`: an
 * attacker without the server's psk: up to `inFlight` connections at once,
 * started at `rate` per second (0: as fast as the server answers), each
 * sending the preamble and the best message 1 it can make (valid but for the
 * psk), reading the server's first answer and resetting; for `ms`. Prints
 * `ready`, then one JSON line: attempts, message 2 answers, refusals.
 *
 * `deno run -A tests/_adversary.ts sink <idleMs> <highWaterMark> <maxMessageSize>`:
 * runs a server in its own process (so its RSS is its own) for one client;
 * prints its port, then `reading` once it has read nothing for `idleMs`
 * after the first message, then reads and checks sequence-numbered messages
 * until the client closes, and prints one JSON line of figures.
 */
async function main(args: string[]): Promise<void> {
  const [mode, port] = args;
  if (mode === "flood") {
    const client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: Number(port) });
    console.log(`ready ${client.localAddress}`);
    for (let i = 0;; i++) await client.send(sequenced(i, 1000 + (i % 7) * 3000));
  } else if (mode === "serve") {
    const { ServerNetwork } = await import("../server.ts");
    const server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
    console.log(String(server.port));
    for await (const _ of server) {
      // Discard.
    }
  } else if (mode === "sink") {
    await sink(Number(args[1]), Number(args[2]), Number(args[3]));
  } else if (mode === "pskflood") {
    await pskFlood(Number(port), Number(args[2]), Number(args[3]), Number(args[4] ?? 0));
  } else {
    throw new TypeError(`Cannot run: unknown mode ${mode}`);
  }
}

async function sink(idleMs: number, highWaterMark: number, maxMessageSize: number): Promise<void> {
  const { ServerNetwork } = await import("../server.ts");
  const server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    highWaterMark,
    maxMessageSize,
  });
  console.log(String(server.port));
  const connection = await server.accept();
  forceGc();
  const rssBefore = Deno.memoryUsage().rss;
  let peakQueue = 0;
  let peakRss = rssBefore;
  const sampler = setInterval(() => {
    peakQueue = Math.max(peakQueue, connection.data.bytes);
    peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
  }, 5);
  await connection.data.wait();
  await pause(idleMs);
  peakQueue = Math.max(peakQueue, connection.data.bytes);
  console.log("reading");
  let messages = 0;
  let bytes = 0;
  let error: string | undefined;
  try {
    for await (const packet of connection) {
      const data = packet.data as Uint8Array;
      if (checkSequenced(data) !== messages) throw new Error(`message ${messages} out of order`);
      messages++;
      bytes += data.length;
    }
  } catch (e) {
    error = String(e);
  }
  clearInterval(sampler);
  const closed = await connection.closed;
  console.log(JSON.stringify({
    messages,
    bytes,
    peakQueue,
    rssBefore,
    peakRss,
    closed: closed.reason,
    error,
  }));
  await server.stop();
}

async function pskFlood(port: number, inFlight: number, ms: number, rate: number): Promise<void> {
  // Imported here, so that this file runs against any version of the code.
  const { encodePreamble, PROTOCOLS } = await import("../_connection/establish.ts");
  const { generateKeyPair } = await import("../cipher.ts");
  const keyPair = await generateKeyPair();
  const wrongPsk = crypto.getRandomValues(new Uint8Array(32));
  const config = { applicationName: "aesm", keyPair, psk: wrongPsk, maxMessageSize: 1 << 24 };
  const pre = await encodePreamble(config);
  // A pool of first flights, replayed: the server cannot tell.
  const pool: Bytes[] = [];
  for (let i = 0; i < 32; i++) {
    const hs = await HandshakeState.create({
      protocolName: PROTOCOLS[pre[5]],
      initiator: true,
      prologue: concat(pre, utf8("aesm")),
      staticPrivateKey: keyPair.privateKey,
      psks: [wrongPsk],
    });
    pool.push(concat(pre, frame(FrameType.Handshake, await hs.writeMessage())));
  }
  const started = performance.now();
  const deadline = started + ms;
  const seen = { attempts: 0, message2: 0, refused: 0, other: 0 };
  console.log("ready");
  const worker = async (start: number) => {
    const first = new Uint8Array(1);
    for (let i = start; performance.now() < deadline; i += inFlight) {
      // Open loop: attempt k starts at k / rate s, or later if all workers are busy.
      const due = rate > 0 ? started + (seen.attempts * 1000) / rate - performance.now() : 0;
      if (due > 0) await pause(due);
      if (performance.now() >= deadline) break;
      seen.attempts++;
      let conn: Deno.TcpConn | undefined;
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await writeAll(conn, pool[i % pool.length]);
        const n = await conn.read(first);
        if (n === null) seen.other++;
        else if (first[0] === FrameType.Handshake) seen.message2++;
        else if (first[0] === FrameType.Refuse) seen.refused++;
        else seen.other++;
      } catch {
        seen.other++;
      } finally {
        if (conn) closeQuietly(conn); // With message 2 unread: a reset.
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)));
  console.log(JSON.stringify(seen));
}

if (import.meta.main) await main(Deno.args);

/**
 * Runs `run` against a fresh loopback server with a sentinel client that must
 * still get a round trip through afterwards (pass `sentinel: false` to skip
 * it); then stops the server and fails on any escaped rejection.
 */
export async function withServer(
  options: ServerOptions,
  run: (server: ServerNetwork, watch: ServerWatch, sentinel: Sentinel) => Promise<void>,
  fixture: { sentinel?: boolean } = {},
): Promise<void> {
  using trap = new RejectionTrap();
  const server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    closeTimeout: 500,
    ...options,
  });
  const watch = new ServerWatch(server);
  let failure: unknown;
  try {
    if (fixture.sentinel === false) {
      await run(server, watch, undefined as unknown as Sentinel);
    } else {
      const sentinel = await Sentinel.connect(server, watch);
      await run(server, watch, sentinel);
      await sentinel.roundTrip();
      await sentinel.close();
    }
  } catch (error) {
    failure = error;
  } finally {
    await server.stop();
    await watch.done();
  }
  trap.check(failure);
}
export { concat };
