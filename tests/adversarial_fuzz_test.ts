// Copyright 2026 the aesm authors. MIT license.
// Garbage and fuzzing with a seeded PRNG (printed; AESM_FUZZ_SEED replays a
// run): random bytes and mutated valid sessions at every stage. Most cases
// run in memory (the read pipeline, and each side of the handshake over a
// fake connection); a few hundred run over real sockets against one server,
// which must never throw, never hang, keep serving a good client, and give
// its memory back.

import { DecryptStream, Fault, FrameFaultStream, RecordDecoderStream } from "./_stages.ts";
import assert from "node:assert/strict";
import { establishClient, establishServer } from "../_connection/establish.ts";
import type { Transport } from "../_transport/transport.ts";
import { RecordBatcher } from "../_wire/record.ts";
import { CipherState, generateKeyPair, type KeyPair } from "../cipher.ts";
import { HandshakeError, ProtocolError } from "../errors.ts";
import { HandshakeState } from "../handshake.ts";
import { ServerNetwork } from "../server.ts";
import {
  type Bytes,
  concat,
  drainPackets,
  frame,
  FrameType,
  fuzzSeed,
  mapLimit,
  mib,
  parseFrame,
  preamble,
  Prng,
  RawClient,
  RecordType,
  RejectionTrap,
  seal,
  Sentinel,
  ServerWatch,
  settledMemory,
  utf8,
  within,
} from "./_adversary.ts";

const SEED = fuzzSeed();
console.log(`fuzz seed ${SEED} (replay a run with AESM_FUZZ_SEED=${SEED})`);

const PIPELINE_CASES = 8_500;
const HANDSHAKE_CASES = 1_200;
const SOCKET_CASES = 300;
const MAX_MESSAGE_SIZE = 256 * 1024;

type Data = string | Uint8Array;

/** A valid stream of transport frames, and what it carries. */
interface Session {
  key: Bytes;
  plaintexts: Bytes[];
  rekeys: boolean[];
  frames: Bytes[];
  wire: Bytes;
  messages: Data[];
  closed: boolean;
}

const ALPHABET = "abc xyz é中😀\n";

function randomText(prng: Prng, length: number): string {
  let out = "";
  while (out.length < length) out += prng.pick([...ALPHABET]);
  return out;
}

/** Packs random messages and control records the way a connection does. */
function randomPlaintexts(prng: Prng): { plaintexts: Bytes[]; messages: Data[]; closed: boolean } {
  const batcher = new RecordBatcher();
  const plaintexts: Bytes[] = [];
  const messages: Data[] = [];
  const flush = () => {
    for (let p = batcher.take(); p !== undefined; p = batcher.take()) plaintexts.push(p.slice());
  };
  const count = prng.range(1, 6);
  for (let i = 0; i < count; i++) {
    const kind = prng.int(10);
    if (kind < 5) {
      const text = randomText(prng, prng.int(120));
      batcher.addMessage(utf8(text), true, 1_700_000_000_000 + i);
      messages.push(text);
    } else {
      const size = kind < 9 ? prng.int(3000) : prng.range(60_000, 140_000);
      const bytes = prng.bytes(size);
      batcher.addMessage(bytes, false, 1_700_000_000_000 + i);
      messages.push(bytes);
    }
    if (prng.chance(0.2)) batcher.addControl(RecordType.Ping, new Uint8Array(0));
    if (prng.chance(0.1)) batcher.addControl(0x40 + prng.int(0xc0), prng.bytes(prng.int(20)));
    if (prng.chance(0.4)) flush();
  }
  const closed = prng.chance(0.5);
  if (closed) batcher.addControl(RecordType.Close, new Uint8Array([0]));
  flush();
  return { plaintexts, messages, closed };
}

/** Seals plaintexts into frames, some of them TransportRekey. */
async function sealAll(
  cipher: CipherState,
  plaintexts: Bytes[],
  rekeys: boolean[],
): Promise<Bytes[]> {
  const frames: Bytes[] = [];
  for (let i = 0; i < plaintexts.length; i++) {
    frames.push(
      await seal(cipher, plaintexts[i], rekeys[i] ? FrameType.TransportRekey : FrameType.Transport),
    );
    if (rekeys[i]) await cipher.rekey();
  }
  return frames;
}

async function makeSession(prng: Prng): Promise<Session> {
  const key = prng.bytes(32);
  const { plaintexts, messages, closed } = randomPlaintexts(prng);
  const rekeys = plaintexts.map(() => prng.chance(0.15));
  const frames = await sealAll(await CipherState.create(key), plaintexts, rekeys);
  return { key, plaintexts, rekeys, frames, wire: concat(...frames), messages, closed };
}

// ---------------------------------------------------------------------------
// Mutations

type Mutation =
  | "none"
  | "bit-flips"
  | "header-byte"
  | "truncate"
  | "insert"
  | "delete"
  | "duplicate-frame"
  | "drop-frame"
  | "swap-frames"
  | "splice-frame"
  | "garbage-tail"
  | "random"
  | "random-framed"
  | "records";

const MUTATIONS: Mutation[] = [
  "none",
  "bit-flips",
  "bit-flips",
  "header-byte",
  "truncate",
  "insert",
  "delete",
  "duplicate-frame",
  "drop-frame",
  "swap-frames",
  "splice-frame",
  "garbage-tail",
  "random",
  "random-framed",
  "records",
  "records",
];

/** Mutates a session's wire bytes; `records` mutates a plaintext and reseals instead. */
async function mutate(
  prng: Prng,
  mutation: Mutation,
  session: Session,
  donor: Session,
): Promise<Bytes> {
  const { wire, frames } = session;
  const at = (n: number) => prng.int(Math.max(1, n));
  switch (mutation) {
    case "none":
      return wire;
    case "bit-flips": {
      const out = wire.slice();
      const flips = prng.range(1, 3);
      for (let i = 0; i < flips; i++) out[at(out.length)] ^= 1 << prng.int(8);
      return out;
    }
    case "header-byte": {
      const index = at(frames.length);
      const offset = frames.slice(0, index).reduce((sum, f) => sum + f.length, 0);
      const out = wire.slice();
      out[offset + prng.int(3)] ^= prng.range(1, 255);
      return out;
    }
    case "truncate":
      return wire.slice(0, at(wire.length));
    case "insert": {
      const position = at(wire.length + 1);
      return concat(
        wire.subarray(0, position),
        prng.bytes(prng.range(1, 40)),
        wire.subarray(position),
      );
    }
    case "delete": {
      const position = at(wire.length);
      return concat(wire.subarray(0, position), wire.subarray(position + prng.range(1, 40)));
    }
    case "duplicate-frame": {
      const i = at(frames.length);
      return concat(...frames.slice(0, i + 1), frames[i], ...frames.slice(i + 1));
    }
    case "drop-frame": {
      const i = at(frames.length);
      return concat(...frames.slice(0, i), ...frames.slice(i + 1));
    }
    case "swap-frames": {
      if (frames.length < 2) return concat(frames[0], frames[0]);
      const i = at(frames.length - 1);
      return concat(...frames.slice(0, i), frames[i + 1], frames[i], ...frames.slice(i + 2));
    }
    case "splice-frame": {
      const i = at(frames.length);
      const other = donor.frames[at(donor.frames.length)];
      return concat(...frames.slice(0, i), other, ...frames.slice(i + 1));
    }
    case "garbage-tail":
      return concat(wire.subarray(0, at(wire.length)), prng.bytes(prng.range(1, 300)));
    case "random":
      return prng.bytes(prng.int(2000));
    case "random-framed": {
      const parts: Bytes[] = [];
      for (let i = prng.range(1, 4); i > 0; i--) {
        parts.push(frame(prng.chance(0.8) ? 3 : 4, prng.bytes(prng.int(300))));
      }
      return concat(...parts);
    }
    case "records":
      return await resealMutated(prng, session);
  }
}

/** A valid encryption of malformed records: fuzzes the record decoder behind the tag. */
async function resealMutated(prng: Prng, session: Session): Promise<Bytes> {
  const plaintexts = session.plaintexts.map((p) => p.slice());
  const i = prng.int(plaintexts.length);
  let p = plaintexts[i];
  switch (prng.int(6)) {
    case 0: // Random bytes anywhere, often headers.
      for (let n = prng.range(1, 4); n > 0 && p.length > 0; n--) {
        p[prng.int(p.length)] = prng.int(256);
      }
      break;
    case 1: // A record type byte at the start.
      if (p.length > 0) p[0] = prng.int(256);
      break;
    case 2: // Truncated.
      p = p.slice(0, prng.int(p.length + 1));
      break;
    case 3: // A random record appended.
      p = concat(p, new Uint8Array([prng.int(256), 0, 5]), prng.bytes(prng.int(8)));
      break;
    case 4: // A message start declaring a random total.
      p = concat(
        new Uint8Array([prng.range(1, 2), 0, 12 + 4]),
        new Uint8Array(8),
        new Uint8Array([prng.int(256), prng.int(256), prng.int(256), prng.int(256)]),
        prng.bytes(4),
        p,
      );
      break;
    default: // Invalid UTF-8 in a text message.
      p = concat(
        p,
        new Uint8Array([1, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xfe, 0xc0]),
      );
  }
  if (p.length > 65519) p = p.slice(0, 65519);
  plaintexts[i] = p;
  const frames = await sealAll(await CipherState.create(session.key), plaintexts, session.rekeys);
  return concat(...frames);
}

// ---------------------------------------------------------------------------
// The read pipeline in memory

interface PipelineResult {
  messages: Data[];
  closes: number;
  error?: unknown;
}

/**
 * Runs `chunks` through frame decoder, decryption and record decoder. It
 * returns once every decryption it started has settled, so that what they
 * do late happens while the caller still watches for unhandled rejections.
 */
async function runPipeline(key: Bytes, chunks: Uint8Array[]): Promise<PipelineResult> {
  const receiver = await CipherState.create(key);
  const pending: Promise<unknown>[] = [];
  const tracked = {
    decryptWithAd: (ad: Uint8Array, ciphertext: Uint8Array) => {
      const plaintext = receiver.decryptWithAd(ad, ciphertext);
      pending.push(plaintext);
      return plaintext;
    },
    rekey: () => receiver.rekey(),
  } as unknown as CipherState;
  const result: PipelineResult = { messages: [], closes: 0 };
  const done = ReadableStream.from(chunks)
    .pipeThrough(new FrameFaultStream())
    .pipeThrough(new DecryptStream(tracked))
    .pipeThrough(new RecordDecoderStream(MAX_MESSAGE_SIZE))
    .pipeTo(
      new WritableStream({
        write(chunk) {
          if (chunk instanceof Fault) throw chunk.error;
          for (const event of chunk) {
            if (event.kind === "message") result.messages.push(event.data);
            else result.closes++;
          }
        },
      }),
    )
    .catch((error) => void (result.error = error));
  await within(done, 10_000, "the read pipeline to end");
  await Promise.allSettled(pending);
  return result;
}

function checkPipeline(
  mutation: Mutation,
  session: Session,
  result: PipelineResult,
): string | undefined {
  if (result.error !== undefined && !(result.error instanceof ProtocolError)) {
    return `the pipeline failed with an untyped error: ${String(result.error)}`;
  }
  for (const message of result.messages) {
    if (typeof message !== "string" && !(message instanceof Uint8Array)) return "a bad packet";
    const size = typeof message === "string" ? utf8(message).length : message.length;
    if (size > MAX_MESSAGE_SIZE) return `a message of ${size} bytes passed the limit`;
  }
  if (mutation === "records") return undefined; // Authentic, so anything well-formed may come.
  if (result.messages.length > session.messages.length) return "more messages than were sent";
  try {
    assert.deepEqual(result.messages, session.messages.slice(0, result.messages.length));
  } catch {
    return "FORGERY: a delivered message is not one the sender sent, in order";
  }
  if (mutation === "none") {
    if (result.error !== undefined) return `an untouched session failed: ${result.error}`;
    if (result.messages.length !== session.messages.length) return "an untouched session lost data";
    if (result.closes !== (session.closed ? 1 : 0)) return "an untouched session lost its close";
  }
  return undefined;
}

Deno.test(`The read pipeline survives ${PIPELINE_CASES} mutated and random streams (seed ${SEED})`, async () => {
  using trap = new RejectionTrap();
  const prng = new Prng(SEED);
  const sessions = await Promise.all(Array.from({ length: 48 }, () => makeSession(prng)));
  const failures: string[] = [];
  const counts = new Map<string, number>();
  let bytes = 0;
  for (let i = 0; i < PIPELINE_CASES; i++) {
    const mutation = prng.pick(MUTATIONS);
    const session = prng.pick(sessions);
    const wire = await mutate(prng, mutation, session, prng.pick(sessions));
    bytes += wire.length;
    const result = await runPipeline(session.key, prng.chunks(wire));
    const outcome = result.error === undefined ? "ok" : (result.error as Error).name;
    counts.set(`${mutation}/${outcome}`, (counts.get(`${mutation}/${outcome}`) ?? 0) + 1);
    const problem = checkPipeline(mutation, session, result);
    if (problem) failures.push(`case ${i} (${mutation}, seed ${SEED}): ${problem}`);
  }
  await new Promise((resolve) => setTimeout(resolve, 0)); // A turn for late rejection events.
  console.log(
    `pipeline: ${PIPELINE_CASES} cases, ${mib(bytes)} fed; outcomes ${
      JSON.stringify(Object.fromEntries([...counts].sort()))
    }`,
  );
  trap.check(
    failures.length === 0 ? undefined : new assert.AssertionError({
      message: `${failures.length} cases failed (seed ${SEED}):\n  ${
        failures.slice(0, 20).join("\n  ")
      }`,
    }),
  );
});

// ---------------------------------------------------------------------------
// The handshake in memory, each side against a scripted peer

/**
 * A connection whose other end the test holds: feed bytes in, read what was
 * written. It offers both `read`/`write`/`closeWrite`/`close` and
 * `readable`/`writable`, whichever the handshake code uses.
 */
class FakeConn {
  #incoming: Uint8Array[] = [];
  #ended = false;
  #closed = false;
  #readWaiter: (() => void) | undefined;
  #written: Bytes[] = [];
  #waiting: (() => void) | undefined;

  get conn(): Transport {
    return this as unknown as Transport;
  }

  /** Feeds bytes in small chunks. */
  feed(bytes: Uint8Array, prng: Prng): void {
    if (this.#ended) return;
    for (const chunk of prng.chunks(bytes, 64)) this.#incoming.push(chunk.slice());
    this.#readWaiter?.();
  }

  /** Ends the input (the peer's FIN). */
  end(): void {
    this.#ended = true;
    this.#readWaiter?.();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#incoming.length === 0 && !this.#ended && !this.#closed) {
      await new Promise<void>((resolve) => (this.#readWaiter = resolve));
      this.#readWaiter = undefined;
    }
    if (this.#closed) throw new Deno.errors.BadResource("The fake connection is closed");
    const chunk = this.#incoming.shift();
    if (chunk === undefined) return null;
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#incoming.unshift(chunk.subarray(n));
    return n;
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("closed"));
    this.#written.push(new Uint8Array(bytes));
    this.#waiting?.();
    return Promise.resolve(bytes.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    this.#readWaiter?.();
  }

  get readable(): ReadableStream<Uint8Array> {
    return new ReadableStream({
      pull: async (controller) => {
        const buffer = new Uint8Array(4096);
        const n = await this.read(buffer);
        if (n === null) controller.close();
        else controller.enqueue(buffer.subarray(0, n));
      },
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return new WritableStream({ write: (chunk) => this.write(chunk).then(() => {}) });
  }

  /** Waits for the next frame the other side writes, or `undefined` if `work` ends first. */
  async nextFrame(
    reader: { next(): Bytes | undefined },
    work: Promise<unknown>,
  ): Promise<Bytes | undefined> {
    let settled = false;
    work.then(() => (settled = true), () => (settled = true)).finally(() => this.#waiting?.());
    while (true) {
      const next = reader.next();
      if (next !== undefined || settled) return next;
      await new Promise<void>((resolve) => (this.#waiting = resolve));
      this.#waiting = undefined;
    }
  }

  /** Parses what was written into frames, after `skip` preamble bytes. */
  frames(skip = 0): { next(): Bytes | undefined } {
    let offset = 0;
    let buffer: Bytes = new Uint8Array(0);
    let skipped = false;
    return {
      next: () => {
        if (offset < this.#written.length) {
          buffer = concat(buffer, ...this.#written.slice(offset));
          offset = this.#written.length;
        }
        if (!skipped) {
          if (buffer.length < skip) return undefined;
          buffer = buffer.slice(skip);
          skipped = true;
        }
        if (buffer.length < 3) return undefined;
        const size = 3 + ((buffer[1] << 8) | buffer[2]);
        if (buffer.length < size) return undefined;
        const out = buffer.slice(0, size);
        buffer = buffer.slice(size);
        return out;
      },
    };
  }
}

/** Flips one bit; `header` says if it hit a frame header (so the reader may wait for more). */
function flipSomewhere(prng: Prng, bytes: Bytes): { bytes: Bytes; header: boolean } {
  const out = bytes.slice();
  const position = prng.int(out.length);
  out[position] ^= 1 << prng.int(8);
  return { bytes: out, header: position < 3 };
}

const PROLOGUE_NAME = utf8("aesm");

/** The server's side against a scripted client; `stage` says where the client goes wrong. */
async function fuzzServerSide(
  prng: Prng,
  keys: { client: KeyPair; server: KeyPair },
): Promise<string | undefined> {
  const fake = new FakeConn();
  const work = establishServer(fake.conn, {
    applicationName: "aesm",
    keyPair: keys.server,
    psk: undefined,
    maxMessageSize: MAX_MESSAGE_SIZE,
    authorize: () => true,
  });
  work.catch(() => {});
  const stage = prng.pick([
    "none",
    "random",
    "preamble",
    "message1",
    "message3",
    "message3-random",
  ]);
  const pre = await preamble();
  if (stage === "random") {
    fake.feed(prng.bytes(prng.int(300)), prng);
  } else {
    const client = await HandshakeState.create({
      protocolName: "Noise_XX_25519_AESGCM_SHA256",
      initiator: true,
      prologue: concat(pre, PROLOGUE_NAME),
      staticPrivateKey: keys.client.privateKey,
    });
    let first = concat(pre, frame(FrameType.Handshake, await client.writeMessage()));
    let stalls = false; // A tampered length leaves the server waiting for more.
    if (stage === "preamble") {
      first = concat(flipSomewhere(prng, first.subarray(0, 16)).bytes, first.subarray(16));
    }
    if (stage === "message1") {
      const flipped = flipSomewhere(prng, first.subarray(16));
      first = concat(first.subarray(0, 16), flipped.bytes);
      stalls = flipped.header;
    }
    fake.feed(first, prng);
    const second = stalls ? undefined : await fake.nextFrame(fake.frames(), work);
    if (second !== undefined && parseFrame(second).type === FrameType.Handshake) {
      let third: Bytes;
      try {
        await client.readMessage(parseFrame(second).body);
        third = frame(FrameType.Handshake, await client.writeMessage(new Uint8Array([0, 1, 0, 0])));
      } catch {
        third = frame(FrameType.Handshake, prng.bytes(prng.int(100)));
      }
      if (stage === "message3") third = flipSomewhere(prng, third).bytes;
      if (stage === "message3-random") {
        third = concat(third.subarray(0, 3), prng.bytes(third.length - 3));
      }
      fake.feed(third, prng);
    }
  }
  fake.end();
  const outcome = await within(work.then(() => "ok", (e) => e), 10_000, "the server's handshake");
  if (stage === "none") return outcome === "ok" ? undefined : `a good client failed: ${outcome}`;
  if (outcome === "ok") return `FORGERY: the server accepted a client tampered at ${stage}`;
  if (!(outcome instanceof HandshakeError) || !(outcome as { reason?: string }).reason) {
    return `the server failed with an untyped error at ${stage}: ${outcome}`;
  }
  return undefined;
}

/** The client's side against a scripted server. */
async function fuzzClientSide(
  prng: Prng,
  keys: { client: KeyPair; server: KeyPair },
): Promise<string | undefined> {
  const fake = new FakeConn();
  const work = establishClient(fake.conn, {
    applicationName: "aesm",
    keyPair: keys.client,
    psk: undefined,
    maxMessageSize: MAX_MESSAGE_SIZE,
    serverPublicKey: undefined,
  });
  work.catch(() => {});
  const stage = prng.pick([
    "none",
    "random",
    "message2",
    "message2-random",
    "acceptance",
    "acceptance-random",
  ]);
  const written = fake.frames(16);
  const first = await fake.nextFrame(written, work);
  if (first !== undefined) {
    if (stage === "random") {
      fake.feed(prng.bytes(prng.int(300)), prng);
    } else {
      const server = await HandshakeState.create({
        protocolName: "Noise_XX_25519_AESGCM_SHA256",
        initiator: false,
        prologue: concat(await preamble(), PROLOGUE_NAME),
        staticPrivateKey: keys.server.privateKey,
      });
      await server.readMessage(parseFrame(first).body);
      let second = frame(
        FrameType.Handshake,
        await server.writeMessage(new Uint8Array([0, 4, 0, 0])),
      );
      let stalls = false; // A tampered length leaves the client waiting for more.
      if (stage === "message2") ({ bytes: second, header: stalls } = flipSomewhere(prng, second));
      if (stage === "message2-random") {
        second = concat(second.subarray(0, 3), prng.bytes(second.length - 3));
      }
      fake.feed(second, prng);
      const third = stalls ? undefined : await fake.nextFrame(written, work);
      if (third !== undefined && parseFrame(third).type === FrameType.Handshake) {
        let acceptance: Bytes;
        try {
          await server.readMessage(parseFrame(third).body);
          acceptance = await seal((await server.split()).send, new Uint8Array(0));
        } catch {
          acceptance = frame(FrameType.Transport, prng.bytes(16));
        }
        if (stage === "acceptance") acceptance = flipSomewhere(prng, acceptance).bytes;
        if (stage === "acceptance-random") acceptance = frame(FrameType.Transport, prng.bytes(16));
        fake.feed(acceptance, prng);
      }
    }
  }
  fake.end();
  const outcome = await within(work.then(() => "ok", (e) => e), 10_000, "the client's handshake");
  if (stage === "none") return outcome === "ok" ? undefined : `a good server failed: ${outcome}`;
  if (outcome === "ok") return `FORGERY: the client accepted a server tampered at ${stage}`;
  if (!(outcome instanceof HandshakeError) || !(outcome as { reason?: string }).reason) {
    return `the client failed with an untyped error at ${stage}: ${outcome}`;
  }
  return undefined;
}

Deno.test(`Each side of the handshake survives ${HANDSHAKE_CASES} tampered peers (seed ${SEED})`, async () => {
  using trap = new RejectionTrap();
  const prng = new Prng(SEED ^ 0x5eed);
  const keys = { client: await generateKeyPair(), server: await generateKeyPair() };
  const failures: string[] = [];
  for (let i = 0; i < HANDSHAKE_CASES; i++) {
    const problem = i % 2 === 0
      ? await fuzzServerSide(prng, keys)
      : await fuzzClientSide(prng, keys);
    if (problem) failures.push(`case ${i} (seed ${SEED}): ${problem}`);
  }
  console.log(`handshake: ${HANDSHAKE_CASES} cases, half on each side`);
  trap.check(
    failures.length === 0 ? undefined : new assert.AssertionError({
      message: `${failures.length} cases failed (seed ${SEED}):\n  ${
        failures.slice(0, 20).join("\n  ")
      }`,
    }),
  );
});

// ---------------------------------------------------------------------------
// Real sockets against one server

const END_REASONS = new Set([
  "aborted",
  "malformed",
  "version",
  "protocol-mismatch",
  "application-mismatch",
  "handshake-failed",
  "timeout",
  "protocol-error",
  "message-too-large",
  "truncated",
  "reset",
  "normal",
]);

async function socketCase(
  prng: Prng,
  port: number,
  watch: ServerWatch,
  keyPair: KeyPair,
  sessions: Session[],
): Promise<string | undefined> {
  const kind = prng.pick(["random", "preamble+random", "handshake+random", "handshake+mutated"]);
  let raw: RawClient;
  let messages: Data[] | undefined;
  const since = watch.mark(); // Loopback reuses ports: look only at what comes after.
  try {
    if (kind === "random" || kind === "preamble+random") {
      raw = await RawClient.open({ port });
      const head = kind === "random" ? new Uint8Array(0) : await preamble();
      await raw.write(concat(head, prng.bytes(prng.range(1, 2000))));
    } else {
      raw = await RawClient.connect({ port }, keyPair);
      if (kind === "handshake+random") {
        await raw.write(prng.bytes(prng.range(1, 2000)));
      } else {
        // A fresh valid stream under this session's keys, then mutated.
        const { plaintexts, messages: sent } = randomPlaintexts(prng);
        const rekeys = plaintexts.map(() => prng.chance(0.15));
        const frames = await sealAll(raw.send, plaintexts, rekeys);
        const session = {
          key: new Uint8Array(32),
          plaintexts,
          rekeys,
          frames,
          wire: concat(...frames),
          messages: sent,
          closed: false,
        };
        const mutation = prng.pick(MUTATIONS.filter((m) => m !== "records"));
        const wire = await mutate(prng, mutation, session, prng.pick(sessions));
        for (const chunk of prng.chunks(wire, 8192)) await raw.write(chunk);
        messages = sent;
      }
    }
  } catch (error) {
    return `the raw client could not write: ${error}`;
  }
  const address = raw.localAddress;
  try {
    await raw.conn.closeWrite().catch(() => {});
    await within(raw.reader.drain(), 10_000, `the server to close ${address}`, () => raw.close());
    const end = await watch.end(address, 10_000, since);
    if (!END_REASONS.has(end.reason!)) return `${kind}: the server ended with ${end.reason}`;
    const connection = watch.accepted(address, since);
    const packets = connection ? drainPackets(connection) : [];
    if (messages === undefined) {
      if (packets.length > 0) return `FORGERY: ${kind} delivered ${packets.length} packets`;
    } else {
      try {
        assert.deepEqual(packets, messages.slice(0, packets.length));
      } catch {
        return `FORGERY: ${kind} delivered packets that were not sent, in order`;
      }
    }
    return undefined;
  } finally {
    raw.close();
  }
}

Deno.test(`A server survives ${SOCKET_CASES} garbage connections and gives its memory back (seed ${SEED})`, async () => {
  using trap = new RejectionTrap();
  const prng = new Prng(SEED ^ 0xc0ffee);
  const server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    handshakeTimeout: 2000,
    closeTimeout: 500,
    maxMessageSize: MAX_MESSAGE_SIZE,
  });
  const watch = new ServerWatch(server);
  const failures: string[] = [];
  try {
    const sentinel = await Sentinel.connect(server, watch);
    const keyPair = await generateKeyPair();
    const sessions = await Promise.all(Array.from({ length: 8 }, () => makeSession(prng)));
    await sentinel.roundTrip();
    const before = settledMemory();
    await mapLimit(Array.from({ length: SOCKET_CASES }, (_, i) => i), 16, async (i) => {
      const problem = await socketCase(prng, server.port, watch, keyPair, sessions);
      if (problem) failures.push(`case ${i} (seed ${SEED}): ${problem}`);
      if (i % 25 === 24) await sentinel.roundTrip();
    });
    await sentinel.roundTrip();
    watch.records.length = 0;
    const after = settledMemory();
    const growth = after.heapUsed - before.heapUsed;
    console.log(
      `sockets: ${SOCKET_CASES} connections; heap ${mib(before.heapUsed)} -> ${
        mib(after.heapUsed)
      }, ` +
        `rss ${mib(before.rss)} -> ${mib(after.rss)}, ${sentinel.rounds} sentinel round trips`,
    );
    assert.ok(growth < 20 * 1024 * 1024, `heap grew by ${mib(growth)} (bound 20 MiB)`);
    assert.equal(server.connections.size, 1, "only the sentinel is left");
    await sentinel.close();
  } catch (error) {
    failures.push(`(seed ${SEED}) ${error instanceof Error ? error.message : error}`);
  } finally {
    await server.stop();
    await watch.done();
  }
  trap.check(
    failures.length === 0 ? undefined : new assert.AssertionError({
      message: `${failures.length} cases failed:\n  ${failures.slice(0, 20).join("\n  ")}`,
    }),
  );
});
