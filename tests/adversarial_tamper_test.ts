// Copyright 2026 the aesm authors. MIT license.
// Tampering on the wire: a recording proxy between a real ClientNetwork and
// ServerNetwork flips every byte of the preamble, of each handshake frame and
// of the first transport frames, truncates, duplicates, drops, reorders and
// splices frames, and replays recorded sessions. Nothing forged or replayed
// may reach a packet queue; each connection must end with the right typed
// reason; a sentinel client keeps working throughout.

import { DecryptStream, Fault, FrameFaultStream, RecordDecoderStream } from "./_stages.ts";
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { CipherState, generateKeyPair, type KeyPair } from "../cipher.ts";

import { HandshakeState } from "../handshake.ts";
import type { CloseInfo } from "../connection.ts";
import { HandshakeError, ProtocolError, RefusedError, TimeoutError } from "../errors.ts";
import { type ActivityRecord, ServerNetwork } from "../server.ts";
import {
  type Bytes,
  CLOSE_CODES,
  closeQuietly,
  closeRecord,
  concat,
  type Direction,
  drainPackets,
  faithful,
  flipAt,
  frame,
  FrameReader,
  FrameType,
  mapLimit,
  messageRecord,
  mib,
  parseFrame,
  preamble,
  type ProxySession,
  RawClient,
  readRefusal,
  RecordingProxy,
  RecordType,
  REFUSE_REASONS,
  RejectionTrap,
  seal,
  Sentinel,
  ServerWatch,
  type Tamper,
  utf8,
  within,
  writeAll,
} from "./_adversary.ts";

const HANDSHAKE_TIMEOUT = 1500;
const CLOSE_TIMEOUT = 1000;
const CONCURRENCY = 8;
// How long the client waits for the server's two messages before going on:
// only reached when a tampered length makes it wait for bytes that never come.
const RECEIVE_WAIT = 600;
const LONG_SAMPLES = 64;

type Data = string | Uint8Array;

/** The client's three messages (one frame each), unique to a session. */
function clientMessages(id: number): Data[] {
  const binary = new Uint8Array(48);
  const long = new Uint8Array(65504); // Exactly fills one 65538-byte frame.
  new DataView(binary.buffer).setUint32(0, id);
  new DataView(long.buffer).setUint32(0, id);
  for (let i = 4; i < long.length; i++) long[i] = (i * 7 + id) & 0xff;
  return [`hello #${String(id).padStart(6, "0")}`, binary, long];
}

/** The server's two messages (one frame each), unique to a session. */
function serverMessages(id: number): Data[] {
  const binary = new Uint8Array(32);
  new DataView(binary.buffer).setUint32(0, id);
  return [`welcome #${String(id).padStart(6, "0")}`, binary];
}

interface Fixture {
  server: ServerNetwork;
  watch: ServerWatch;
  sentinel: Sentinel;
  keyPair: KeyPair;
  nextId: number;
}

async function withFixture(run: (fixture: Fixture) => Promise<void>): Promise<void> {
  using crashes = new RejectionTrap();
  const server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    handshakeTimeout: HANDSHAKE_TIMEOUT,
    closeTimeout: CLOSE_TIMEOUT,
  });
  const watch = new ServerWatch(server);
  const sentinel = await Sentinel.connect(server, watch);
  const fixture = { server, watch, sentinel, keyPair: await generateKeyPair(), nextId: 1 };
  let failed: unknown;
  try {
    await run(fixture);
    await sentinel.roundTrip();
    assert.equal(
      server.connections.length,
      0,
      "no packet is left in any queue beyond those the tests took",
    );
    await sentinel.close();
  } catch (error) {
    failed = error;
  } finally {
    await server.stop();
    await watch.done();
  }
  crashes.check(failed);
}

/** What one proxied session did, seen from both ends. */
interface Outcome {
  id: number;
  clientError?: unknown;
  received: Data[];
  sends: ("ok" | unknown)[];
  clientClosed?: CloseInfo;
  serverEnd: ActivityRecord;
  connected: boolean;
  packets: Data[];
  session: ProxySession;
}

/**
 * One session through a proxy running `tamper`: the server sends its two
 * messages once it accepts; the client waits for them (briefly), sends its
 * three, and closes.
 */
async function runSession(fixture: Fixture, tamper: Tamper): Promise<Outcome> {
  const id = fixture.nextId++;
  const { server, watch } = fixture;
  await using proxy = RecordingProxy.start({ targetPort: server.port, tamper: () => tamper });
  const client = new ClientNetwork("127.0.0.1", proxy.port, {
    reconnect: false, // One session: what the tampering did to it.
    keyPair: fixture.keyPair,
    handshakeTimeout: 2 * HANDSHAKE_TIMEOUT,
    closeTimeout: CLOSE_TIMEOUT,
  });
  const since = watch.mark();
  const session = await proxy.session(0);
  const address = session.upstreamAddress;
  const serverApp = (async () => {
    const connection = await watch.until(
      () =>
        watch.accepted(address, since) ??
          (watch.about(address, since).some((r) => r.event === "refused") ? null : undefined),
      10_000,
      `the server's side of ${address}`,
    );
    if (connection === null) return undefined;
    for (const message of serverMessages(id)) {
      try {
        await connection.send(message);
        await connection.flush();
      } catch {
        break;
      }
    }
    return connection;
  })();
  const outcome: Partial<Outcome> = { id, received: [], sends: [], session };
  try {
    await client.ready;
  } catch (error) {
    outcome.clientError = error;
  }
  if (outcome.clientError === undefined) {
    const wait = new AbortController();
    const timer = setTimeout(() => wait.abort(), RECEIVE_WAIT);
    try {
      for (let i = 0; i < 2; i++) {
        const packet = await client.receive({ signal: wait.signal });
        if (packet === undefined) break;
        outcome.received!.push(packet.data);
      }
    } catch {
      // Waited long enough.
    } finally {
      clearTimeout(timer);
    }
    for (const message of clientMessages(id)) {
      try {
        await client.send(message);
        await client.flush();
        outcome.sends!.push("ok");
      } catch (error) {
        outcome.sends!.push(error);
      }
    }
  }
  outcome.clientClosed = await within(client.close(), 10_000, "the client's close");
  outcome.serverEnd = await watch.end(address, 10_000, since);
  const connection = await serverApp;
  outcome.connected = connection !== undefined;
  outcome.packets = connection ? drainPackets(connection) : [];
  return outcome as Outcome;
}

/** What a case must produce. */
interface Expectation {
  /** Acceptable reasons of the server's record that ends the connection. */
  serverEnd: string[];
  /** Whether the server accepted the handshake. */
  connected: boolean | "either";
  /** How many of the client's messages the server must hold, exactly or in a range. */
  packets: number | [number, number];
  /** The client's connect: fine, or the error it must get. */
  client: "connects" | { error: "RefusedError" | "TimeoutError"; reasons?: string[] };
  /** How many of the server's messages the client must hold (when it connects). */
  received?: number | [number, number];
  /** Acceptable reasons the client's connection ends with (when it connects). */
  clientClosed?: string[];
}

// Whoever is left waiting sees the other side close: an end of stream, or
// a broken frame, so either reason.
const PEER_GONE = ["aborted", "malformed"];

/** The server detects it during the handshake and refuses; the client learns `clientSees`. */
const serverRefuses = (reason: string, clientSees: string[] = [reason]): Expectation => ({
  serverEnd: [reason],
  connected: false,
  packets: 0,
  client: { error: "RefusedError", reasons: clientSees },
});

/** The client detects it during the handshake; the server learns `serverSees`. */
const clientRefuses = (reason: string, serverSees: string[]): Expectation => ({
  serverEnd: serverSees,
  connected: false,
  packets: 0,
  client: { error: "RefusedError", reasons: [reason] },
});

/** The server detects it in transport, after `packets` good messages. */
const serverDetects = (
  packets: number,
  lengthTampered = false,
  received: number | [number, number] = 2,
): Expectation => ({
  // A tampered length can swallow the rest of the stream, which then ends mid-frame.
  serverEnd: lengthTampered ? ["protocol-error", "truncated"] : ["protocol-error"],
  connected: true,
  packets,
  client: "connects",
  received,
});

/** The client detects it in transport, after `received` good messages. */
const clientDetects = (
  received: number,
  packets: number | [number, number] = 0,
): Expectation => ({
  // The server learns it from the client's Close record, or sees the cut.
  serverEnd: ["protocol-error", "truncated", "reset"],
  connected: true,
  packets,
  client: "connects",
  received,
  clientClosed: ["protocol-error"],
});

/**
 * The client fails at the acceptance; the server had accepted. A client that
 * refuses the acceptance sends Refuse (PROTOCOL.md section 4), which the
 * server, its handshake over, reads as a frame not allowed: protocol-error.
 * A client that timed out sends nothing.
 */
const acceptanceFails = (
  error: "RefusedError" | "TimeoutError",
  reasons?: string[],
): Expectation => ({
  serverEnd: error === "RefusedError" ? ["protocol-error"] : ["truncated", "reset"],
  connected: true,
  packets: 0,
  client: reasons ? { error, reasons } : { error },
});

function checkOutcome(outcome: Outcome, expected: Expectation): string[] {
  const problems: string[] = [];
  const { serverEnd } = outcome;
  if (!expected.serverEnd.includes(serverEnd.reason!)) {
    problems.push(
      `server ended ${serverEnd.event} (${serverEnd.reason}), expected ${expected.serverEnd}`,
    );
  }
  if (expected.connected !== "either" && outcome.connected !== expected.connected) {
    problems.push(`server connected: ${outcome.connected}, expected ${expected.connected}`);
  }
  const [min, max] = typeof expected.packets === "number"
    ? [expected.packets, expected.packets]
    : expected.packets;
  if (outcome.packets.length < min || outcome.packets.length > max) {
    problems.push(`server holds ${outcome.packets.length} packets, expected ${min}..${max}`);
  }
  try {
    assert.deepEqual(
      outcome.packets,
      clientMessages(outcome.id).slice(0, outcome.packets.length),
    );
  } catch {
    problems.push("FORGERY: server holds packets that are not the client's messages, in order");
  }
  const error = outcome.clientError;
  if (expected.client === "connects") {
    if (error !== undefined) problems.push(`client failed to connect: ${String(error)}`);
  } else if (!(error instanceof Error) || error.name !== expected.client.error) {
    problems.push(`client got ${String(error)}, expected a ${expected.client.error}`);
  } else if (
    expected.client.reasons &&
    !expected.client.reasons.includes((error as RefusedError).reason)
  ) {
    problems.push(
      `client got ${error.name} (${
        (error as RefusedError).reason
      }), expected ${expected.client.reasons}`,
    );
  }
  if (expected.received !== undefined) {
    const [lo, hi] = typeof expected.received === "number"
      ? [expected.received, expected.received]
      : expected.received;
    if (outcome.received.length < lo || outcome.received.length > hi) {
      problems.push(`client holds ${outcome.received.length} packets, expected ${lo}..${hi}`);
    }
  }
  try {
    assert.deepEqual(
      outcome.received,
      serverMessages(outcome.id).slice(0, outcome.received.length),
    );
  } catch {
    problems.push("FORGERY: client holds packets that are not the server's messages, in order");
  }
  if (
    expected.clientClosed !== undefined &&
    !expected.clientClosed.includes(outcome.clientClosed!.reason)
  ) {
    problems.push(
      `client's connection ended ${
        outcome.clientClosed!.reason
      }, expected ${expected.clientClosed}`,
    );
  }
  for (const result of outcome.sends) {
    if (result !== "ok" && !(result instanceof Error && result.name === "ConnectionClosedError")) {
      problems.push(`a send failed with an untyped error: ${String(result)}`);
    }
  }
  return problems;
}

// Frame indexes of a session (the preamble counts as frame 0 of c2s).
const C2S = { preamble: 0, message1: 1, message3: 2, firstData: 3, close: 6 };
const S2C = { message2: 0, acceptance: 1, firstData: 2, close: 4 };
const isLength = (position: number) => position === 1 || position === 2;

/** Flipping byte `position` (XOR 0xff) of frame `index` sent by the client. */
function expectClientFlip(index: number, position: number): Expectation {
  if (index === C2S.preamble) {
    if (position < 4) return serverRefuses("aborted", PEER_GONE); // Not aesm: no answer.
    if (position === 4) return serverRefuses("version");
    if (position < 8) return serverRefuses("malformed");
    return serverRefuses("application-mismatch");
  }
  if (index === C2S.message1 || index === C2S.message3) {
    // A bad frame type: the server refuses; its Refuse should reach the client.
    if (position === 0) return serverRefuses("malformed", ["malformed", ...PEER_GONE]);
    if (isLength(position)) return serverRefuses("timeout", ["timeout", ...PEER_GONE]);
    // A tampered ephemeral key is found by the client (message 2 fails to decrypt).
    if (index === C2S.message1) return clientRefuses("handshake-failed", ["handshake-failed"]);
    return serverRefuses("handshake-failed");
  }
  return serverDetects(index - C2S.firstData, isLength(position));
}

/** Flipping byte `position` of frame `index` sent by the server. */
function expectServerFlip(index: number, position: number): Expectation {
  if (index === S2C.message2) {
    if (position === 0) return clientRefuses("malformed", ["malformed", "aborted"]);
    if (isLength(position)) return serverRefuses("timeout", ["timeout", ...PEER_GONE]);
    return clientRefuses("handshake-failed", ["handshake-failed"]);
  }
  if (index === S2C.acceptance) {
    if (position === 0) return acceptanceFails("RefusedError", ["malformed"]);
    // A longer acceptance waits for bytes that never come.
    if (isLength(position)) return acceptanceFails("TimeoutError");
    return acceptanceFails("RefusedError", ["handshake-failed"]);
  }
  if (index === S2C.close) {
    // The server's answer to the client's close: the server is done, the client must not
    // call it clean.
    return {
      serverEnd: ["normal"],
      connected: true,
      packets: 3,
      client: "connects",
      received: 2,
      clientClosed: isLength(position) ? ["protocol-error", "truncated"] : ["protocol-error"],
    };
  }
  const before = index - S2C.firstData;
  if (isLength(position)) {
    // The client waits for bytes that never come, then sends and closes; the server
    // sees a whole session, the client a stream that ends inside a frame.
    return {
      serverEnd: ["normal"],
      connected: true,
      packets: 3,
      client: "connects",
      received: before,
      clientClosed: ["protocol-error", "truncated"],
    };
  }
  return clientDetects(before);
}

/** Positions to flip in a frame: every one, or a sample of a long frame. */
function positions(size: number): number[] {
  if (size <= 256) return Array.from({ length: size }, (_, i) => i);
  const sample = [0, 1, 2, 3, 4, size - 17, size - 16, size - 1];
  const step = Math.floor((size - 8) / (LONG_SAMPLES - sample.length));
  for (let p = 5 + step; sample.length < LONG_SAMPLES; p += step) sample.push(p);
  return [...new Set(sample)].sort((a, b) => a - b);
}

interface Case {
  label: string;
  tamper: Tamper;
  expected: Expectation;
}

async function runCases(fixture: Fixture, cases: Case[]): Promise<string[]> {
  const failures: string[] = [];
  let bytes = 0;
  await mapLimit(cases, CONCURRENCY, async (c, i) => {
    const outcome = await runSession(fixture, c.tamper);
    bytes += outcome.session.bytes.c2s + outcome.session.bytes.s2c;
    for (const problem of checkOutcome(outcome, c.expected)) {
      failures.push(`${c.label}: ${problem}`);
    }
    if (i % 50 === 49) await fixture.sentinel.roundTrip();
  });
  console.log(
    `tamper: ${cases.length} proxied sessions, ${bytes} bytes through the proxy, ` +
      `heap ${mib(Deno.memoryUsage().heapUsed)}`,
  );
  return failures;
}

function report(failures: string[]): string {
  const shown = failures.slice(0, 40).join("\n  ");
  return `${failures.length} cases failed:\n  ${shown}${failures.length > 40 ? "\n  ..." : ""}`;
}

/** Records one faithful session and returns its frames. */
async function recordSession(fixture: Fixture): Promise<Outcome> {
  const outcome = await runSession(fixture, faithful);
  assert.equal(outcome.clientError, undefined);
  assert.deepEqual(outcome.packets, clientMessages(outcome.id));
  assert.deepEqual(outcome.received, serverMessages(outcome.id));
  assert.equal(outcome.serverEnd.reason, "normal");
  return outcome;
}

function frameSizes(outcome: Outcome, direction: Direction): number[] {
  return outcome.session.frames[direction].map((frame) => frame.size);
}

Deno.test("A faithful proxy carries a whole session whose frames are as PROTOCOL.md says", async () => {
  await withFixture(async (fixture) => {
    const outcome = await recordSession(fixture);
    const c2s = outcome.session.frames.c2s;
    assert.deepEqual(c2s.map((f) => f.type), [0x61, 1, 1, 3, 3, 3, 3]);
    const c2sSizes = frameSizes(outcome, "c2s");
    assert.deepEqual(c2sSizes.slice(0, 6), [16, 35, 71, 3 + 3 + 12 + 13 + 16, 82, 65538]);
    assert.ok(c2sSizes[6] >= 3 + 3 + 1 + 16, "the close: a code, maybe a reason, a tag");
    // The server's frames: message 2, the acceptance, its two messages, its close.
    assert.deepEqual(outcome.session.frames.s2c.map((f) => f.type), [1, 3, 3, 3, 3]);
    assert.deepEqual(frameSizes(outcome, "s2c").slice(0, 4), [103, 19, 49, 66]);
    // The plaintext never shows on the wire.
    const wire = concat(...c2s.map((f) => f.bytes!));
    const needle = utf8(`hello #${String(outcome.id).padStart(6, "0")}`);
    assert.ok(!indexOf(wire, needle), "the client's text is not on the wire in clear");
  });
});

function indexOf(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("Flipping any byte the client sends is caught, and nothing forged is delivered", async () => {
  await withFixture(async (fixture) => {
    const baseline = await recordSession(fixture);
    const sizes = frameSizes(baseline, "c2s");
    const cases: Case[] = [];
    sizes.forEach((size, index) => {
      for (const position of positions(size)) {
        cases.push({
          label: `c2s frame ${index} byte ${position}`,
          tamper: flipAt("c2s", index, position),
          expected: expectClientFlip(index, position),
        });
      }
    });
    const failures = await runCases(fixture, cases);
    assert.deepEqual(failures, [], report(failures));
  });
});

Deno.test("Flipping any byte the server sends is caught, and nothing forged is delivered", async () => {
  await withFixture(async (fixture) => {
    const baseline = await recordSession(fixture);
    const sizes = frameSizes(baseline, "s2c");
    const cases: Case[] = [];
    sizes.forEach((size, index) => {
      for (const position of positions(size)) {
        cases.push({
          label: `s2c frame ${index} byte ${position}`,
          tamper: flipAt("s2c", index, position),
          expected: expectServerFlip(index, position),
        });
      }
    });
    const failures = await runCases(fixture, cases);
    assert.deepEqual(failures, [], report(failures));
  });
});

Deno.test("A TransportRekey type forged onto a Transport frame is caught (the header is authenticated)", async () => {
  await withFixture(async (fixture) => {
    const toRekey = 0x03 ^ 0x04;
    const failures = await runCases(fixture, [
      {
        label: "c2s data 1 as 0x04",
        tamper: flipAt("c2s", C2S.firstData, 0, toRekey),
        expected: serverDetects(0),
      },
      {
        label: "c2s data 3 as 0x04",
        tamper: flipAt("c2s", C2S.firstData + 2, 0, toRekey),
        expected: serverDetects(2),
      },
      {
        label: "c2s close as 0x04",
        tamper: flipAt("c2s", C2S.close, 0, toRekey),
        expected: serverDetects(3),
      },
      {
        label: "s2c data 1 as 0x04",
        tamper: flipAt("s2c", S2C.firstData, 0, toRekey),
        expected: clientDetects(0),
      },
      {
        label: "s2c acceptance as 0x04",
        tamper: flipAt("s2c", S2C.acceptance, 0, toRekey),
        expected: acceptanceFails("RefusedError", ["malformed"]),
      },
    ]);
    assert.deepEqual(failures, [], report(failures));
  });
});

/** Forwards frames, but cuts `direction` (FIN) right after frame `index`. */
function cutAfter(direction: Direction, index: number): Tamper {
  return (d, i, bytes) =>
    d === direction && i === index ? { send: [bytes], end: "fin" } : { send: [bytes] };
}

Deno.test("A client stream cut at any frame boundary is reported as truncated", async () => {
  await withFixture(async (fixture) => {
    const truncated = (packets: number): Expectation => ({
      serverEnd: ["truncated"],
      connected: true,
      packets,
      client: "connects",
    });
    const failures = await runCases(fixture, [
      {
        label: "after the preamble",
        tamper: cutAfter("c2s", C2S.preamble),
        expected: serverRefuses("aborted", PEER_GONE),
      },
      {
        label: "after message 1",
        tamper: cutAfter("c2s", C2S.message1),
        expected: serverRefuses("aborted", PEER_GONE),
      },
      { label: "after message 3", tamper: cutAfter("c2s", C2S.message3), expected: truncated(0) },
      { label: "after data 1", tamper: cutAfter("c2s", 3), expected: truncated(1) },
      { label: "after data 2", tamper: cutAfter("c2s", 4), expected: truncated(2) },
      { label: "after data 3", tamper: cutAfter("c2s", 5), expected: truncated(3) },
      {
        label: "after the close",
        tamper: cutAfter("c2s", C2S.close),
        expected: { serverEnd: ["normal"], connected: true, packets: 3, client: "connects" },
      },
    ]);
    assert.deepEqual(failures, [], report(failures));
  });
});

Deno.test("A server stream cut at any frame boundary is reported as truncated by the client", async () => {
  await withFixture(async (fixture) => {
    const cut = (received: number): Expectation => ({
      serverEnd: ["truncated", "reset"],
      connected: true,
      // The client may send before it has read the end of the stream.
      packets: [0, 3],
      client: "connects",
      received,
      clientClosed: ["truncated"],
    });
    const failures = await runCases(fixture, [
      {
        label: "after message 2",
        tamper: cutAfter("s2c", S2C.message2),
        // The cut stream carries no Refuse from the client to the server.
        expected: {
          ...acceptanceFails("RefusedError", PEER_GONE),
          serverEnd: ["truncated", "reset"],
        },
      },
      { label: "after the acceptance", tamper: cutAfter("s2c", S2C.acceptance), expected: cut(0) },
      { label: "after data 1", tamper: cutAfter("s2c", 2), expected: cut(1) },
      { label: "after data 2", tamper: cutAfter("s2c", 3), expected: cut(2) },
    ]);
    assert.deepEqual(failures, [], report(failures));
  });
});

/** Forwards frames, but sends frame `index` of `direction` twice. */
function duplicate(direction: Direction, index: number): Tamper {
  return (d, i, bytes) => ({ send: d === direction && i === index ? [bytes, bytes] : [bytes] });
}

/** Forwards frames, but drops frame `index` of `direction`. */
function drop(direction: Direction, index: number): Tamper {
  return (d, i, bytes) => ({ send: d === direction && i === index ? [] : [bytes] });
}

/** Forwards frames, but swaps frames `index` and `index + 1` of `direction`. */
function swap(direction: Direction, index: number): Tamper {
  let held: Bytes | undefined;
  return (d, i, bytes) => {
    if (d !== direction) return { send: [bytes] };
    if (i === index) {
      held = bytes;
      return { send: [] };
    }
    if (i === index + 1) return { send: [bytes, held!] };
    return { send: [bytes] };
  };
}

Deno.test("Duplicated (replayed) frames are caught in either direction", async () => {
  await withFixture(async (fixture) => {
    const failures = await runCases(fixture, [
      {
        label: "c2s preamble twice",
        tamper: duplicate("c2s", C2S.preamble),
        expected: serverRefuses("malformed", ["malformed", ...PEER_GONE]),
      },
      {
        label: "c2s message 1 twice",
        tamper: duplicate("c2s", C2S.message1),
        // The copy, read as message 3, is shorter than any message 3.
        expected: serverRefuses("malformed"),
      },
      {
        label: "c2s message 3 twice",
        tamper: duplicate("c2s", C2S.message3),
        // The server fails at once, before or while it sends its messages.
        expected: serverDetects(0, false, [0, 2]),
      },
      { label: "c2s data 1 twice", tamper: duplicate("c2s", 3), expected: serverDetects(1) },
      { label: "c2s data 2 twice", tamper: duplicate("c2s", 4), expected: serverDetects(2) },
      { label: "c2s data 3 twice", tamper: duplicate("c2s", 5), expected: serverDetects(3) },
      {
        label: "s2c message 2 twice",
        tamper: duplicate("s2c", S2C.message2),
        // The client reads the copy as the acceptance and refuses; whether the
        // server had read message 3 by then (and reads the Refuse as a frame
        // not allowed after its handshake) is a race.
        expected: {
          serverEnd: ["aborted", "malformed", "protocol-error", "truncated", "reset"],
          connected: "either",
          packets: 0,
          client: { error: "RefusedError", reasons: ["malformed"] },
        },
      },
      {
        label: "s2c acceptance twice",
        tamper: duplicate("s2c", S2C.acceptance),
        expected: clientDetects(0),
      },
      { label: "s2c data 1 twice", tamper: duplicate("s2c", 2), expected: clientDetects(1) },
      {
        label: "s2c data 2 twice",
        tamper: duplicate("s2c", 3),
        expected: clientDetects(2, [0, 3]),
      },
    ]);
    assert.deepEqual(failures, [], report(failures));
  });
});

Deno.test("Dropped and reordered frames are caught in either direction", async () => {
  await withFixture(async (fixture) => {
    const failures = await runCases(fixture, [
      {
        label: "c2s preamble dropped",
        tamper: drop("c2s", C2S.preamble),
        expected: serverRefuses("aborted", PEER_GONE),
      },
      {
        label: "c2s message 1 dropped",
        tamper: drop("c2s", C2S.message1),
        expected: serverRefuses("timeout", ["timeout", ...PEER_GONE]),
      },
      {
        label: "c2s message 3 dropped",
        tamper: drop("c2s", C2S.message3),
        expected: serverRefuses("timeout", ["timeout", ...PEER_GONE]),
      },
      { label: "c2s data 1 dropped", tamper: drop("c2s", 3), expected: serverDetects(0) },
      { label: "c2s data 2 dropped", tamper: drop("c2s", 4), expected: serverDetects(1) },
      { label: "c2s data 3 dropped", tamper: drop("c2s", 5), expected: serverDetects(2) },
      {
        label: "c2s close dropped",
        tamper: drop("c2s", C2S.close),
        // The client, unanswered, gives up with a second Close: its nonce shows the gap.
        expected: {
          serverEnd: ["truncated", "protocol-error"],
          connected: true,
          packets: 3,
          client: "connects",
        },
      },
      {
        label: "s2c message 2 dropped",
        tamper: drop("s2c", S2C.message2),
        expected: serverRefuses("timeout", ["timeout", ...PEER_GONE]),
      },
      {
        label: "s2c acceptance dropped",
        tamper: drop("s2c", S2C.acceptance),
        // The first data frame, read as the acceptance, is not an empty one.
        expected: acceptanceFails("RefusedError", ["malformed"]),
      },
      { label: "s2c data 1 dropped", tamper: drop("s2c", 2), expected: clientDetects(0) },
      {
        label: "c2s preamble and message 1 swapped",
        tamper: swap("c2s", C2S.preamble),
        expected: serverRefuses("aborted", PEER_GONE),
      },
      { label: "c2s data 1 and 2 swapped", tamper: swap("c2s", 3), expected: serverDetects(0) },
      { label: "c2s data 2 and 3 swapped", tamper: swap("c2s", 4), expected: serverDetects(1) },
      { label: "c2s data 3 and close swapped", tamper: swap("c2s", 5), expected: serverDetects(2) },
      { label: "s2c data 1 and 2 swapped", tamper: swap("s2c", 2), expected: clientDetects(0) },
    ]);
    assert.deepEqual(failures, [], report(failures));
  });
});

Deno.test("A frame spliced in from another session is caught at every stage", async () => {
  await withFixture(async (fixture) => {
    const donor = await recordSession(fixture);
    const splice = (direction: Direction, index: number): Tamper => (d, i, bytes) => ({
      send: [
        d === direction && i === index ? donor.session.frames[direction][index].bytes! : bytes,
      ],
    });
    const failures = await runCases(fixture, [
      {
        label: "c2s message 1 from another session",
        tamper: splice("c2s", C2S.message1),
        expected: clientRefuses("handshake-failed", ["handshake-failed"]),
      },
      {
        label: "c2s message 3 from another session",
        tamper: splice("c2s", C2S.message3),
        expected: serverRefuses("handshake-failed"),
      },
      {
        label: "c2s data 1 from another session",
        tamper: splice("c2s", 3),
        expected: serverDetects(0),
      },
      {
        label: "c2s data 2 from another session",
        tamper: splice("c2s", 4),
        expected: serverDetects(1),
      },
      {
        label: "c2s data 3 from another session",
        tamper: splice("c2s", 5),
        expected: serverDetects(2),
      },
      {
        label: "c2s close from another session",
        tamper: splice("c2s", C2S.close),
        expected: serverDetects(3),
      },
      {
        label: "s2c message 2 from another session",
        tamper: splice("s2c", S2C.message2),
        expected: clientRefuses("handshake-failed", ["handshake-failed"]),
      },
      {
        label: "s2c acceptance from another session",
        tamper: splice("s2c", S2C.acceptance),
        expected: acceptanceFails("RefusedError", ["handshake-failed"]),
      },
      {
        label: "s2c data 1 from another session",
        tamper: splice("s2c", 2),
        expected: clientDetects(0),
      },
    ]);
    assert.deepEqual(failures, [], report(failures));
  });
});

Deno.test("A recorded client session replayed to the server fails at message 3", async () => {
  await withFixture(async (fixture) => {
    const recorded = await recordSession(fixture);
    const wire = concat(...recorded.session.frames.c2s.map((f) => f.bytes!));
    for (let replay = 0; replay < 3; replay++) {
      const since = fixture.watch.mark();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: fixture.server.port });
      const address = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
      try {
        // Whole, then cut after message 1, then after message 3.
        const cut = [wire.length, 16 + 35, 16 + 35 + 71][replay];
        await writeAll(conn, wire.subarray(0, cut));
        const reader = new FrameReader(conn);
        const frames = (await within(reader.drain(), 5000, "the server's answer")).frames;
        const types = frames.map((f) => parseFrame(f).type);
        const end = await fixture.watch.end(address, 5000, since);
        assert.equal(end.event, "refused");
        if (replay === 1) {
          // Nothing after message 1: the server answers, waits in vain, and says so.
          assert.equal(end.reason, "timeout");
          assert.deepEqual(types, [1, 2], "message 2, then a Refuse");
          assert.equal(REFUSE_REASONS[parseFrame(frames[1]).body[0]], "timeout");
        } else {
          assert.equal(end.reason, "handshake-failed");
          assert.deepEqual(types, [1, 2], "message 2, then a Refuse");
          assert.equal(REFUSE_REASONS[parseFrame(frames[1]).body[0]], "handshake-failed");
        }
        assert.equal(fixture.watch.accepted(address, since), undefined, "never connected");
      } finally {
        closeQuietly(conn);
      }
    }
    await fixture.sentinel.roundTrip();
  });
});

Deno.test("A recorded server session replayed to a new client fails at message 2", async () => {
  await withFixture(async (fixture) => {
    const recorded = await recordSession(fixture);
    const wire = concat(...recorded.session.frames.s2c.map((f) => f.bytes!));
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const fake = (async () => {
      const conn = await listener.accept();
      try {
        const reader = new FrameReader(conn, 16);
        await reader.next(); // The preamble.
        await reader.next(); // Message 1.
        await writeAll(conn, wire);
        const { frames } = await reader.drain();
        return frames.map(parseFrame);
      } finally {
        closeQuietly(conn);
      }
    })();
    const error = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: listener.addr.port,
      handshakeTimeout: 5000,
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof RefusedError, String(error));
    assert.equal(error.reason, "handshake-failed");
    const answer = await within(fake, 5000, "the fake server");
    assert.deepEqual(answer.map((f) => f.type), [2], "the client answers with a Refuse only");
    assert.equal(REFUSE_REASONS[answer[0].body[0]], "handshake-failed");
    assert.ok(!(error instanceof TimeoutError));
  });
});

// Focused repros of what the sweeps above found, one behaviour each.

Deno.test("A server that rejects a forged transport frame tells the client with a Close record", async () => {
  await withFixture(async ({ server, watch }) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      await raw.sendPlaintext(messageRecord("authentic"));
      const forged = await seal(raw.send, messageRecord("forged"));
      forged[forged.length - 1] ^= 1;
      await raw.write(forged);
      const { close } = await within(raw.readToEnd(), 5000, "the server's answer");
      const end = await watch.end(raw.localAddress);
      assert.equal(end.reason, "protocol-error");
      assert.deepEqual(drainPackets(await watch.connection(raw.localAddress)), ["authentic"]);
      assert.equal(
        close,
        CLOSE_CODES["protocol-error"],
        "PROTOCOL.md section 8: the detecting side sends a Close record with the code",
      );
    } finally {
      raw.close();
    }
  });
});

Deno.test("A server that reads an unknown frame type in the handshake answers Refuse malformed", async () => {
  await withFixture(async ({ server, watch }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const address = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
    try {
      await writeAll(conn, concat(await preamble(), new Uint8Array([0x09, 0x00, 0x00])));
      const refusal = await within(readRefusal(conn), 5000, "the server's answer");
      assert.equal((await watch.end(address)).reason, "malformed");
      assert.equal(
        refusal,
        "malformed",
        "PROTOCOL.md section 3: the receiver sends Refuse malformed",
      );
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("A peer that half-closes after its Close still gets what the server sent, then its Close", async () => {
  await withFixture(async ({ server, watch }) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      const connection = await watch.connection(raw.localAddress);
      const size = 4 * 1024 * 1024;
      const sent = connection.send(new Uint8Array(size)).then(() => "resolved", (e) => e);
      await raw.sendPlaintext(closeRecord("normal"));
      await raw.conn.closeWrite();
      const { records, close } = await within(raw.readToEnd(), 10_000, "the server's answer");
      const end = await watch.end(raw.localAddress);
      const delivered = records
        .filter((r) => r.type === RecordType.Binary || r.type === RecordType.Continuation)
        .reduce((sum, r) => sum + r.body.length - (r.type === RecordType.Binary ? 12 : 0), 0);
      assert.equal(end.reason, "normal");
      if (await sent === "resolved") {
        assert.equal(delivered, size, "a resolved send is delivered, or the close is not clean");
      }
      assert.equal(close, CLOSE_CODES.normal, "PROTOCOL.md section 8: the receiver answers Close");
    } finally {
      raw.close();
    }
  });
});

Deno.test("A client whose close is never answered does not call it clean", async () => {
  await withFixture(async (fixture) => {
    // Everything the server sends after its two messages (its Close) is dropped.
    const tamper: Tamper = (direction, index, bytes) =>
      direction === "s2c" && index > S2C.firstData + 1
        ? { send: [], end: "fin" }
        : { send: [bytes] };
    const outcome = await runSession(fixture, tamper);
    assert.deepEqual(outcome.packets, clientMessages(outcome.id));
    assert.deepEqual(outcome.received, serverMessages(outcome.id));
    assert.equal(
      outcome.clientClosed?.clean,
      false,
      `the client reports ${JSON.stringify(outcome.clientClosed)} though no Close came from the ` +
        "server: PROTOCOL.md section 8 calls that a truncation, never a clean close",
    );
  });
});

Deno.test("A client whose close is answered by a forged Close reports protocol-error, not a timeout", async () => {
  await withFixture(async (fixture) => {
    // The server's Close record (its fifth frame) with one bit of its tag flipped.
    const outcome = await runSession(fixture, flipAt("s2c", S2C.close, -1, 0x01));
    assert.deepEqual(outcome.packets, clientMessages(outcome.id));
    assert.equal(outcome.serverEnd.reason, "normal");
    assert.equal(outcome.clientClosed?.clean, false);
    assert.equal(
      outcome.clientClosed?.reason,
      "protocol-error",
      "the client found a forged frame while closing; it should not wait out its close timeout",
    );
  });
});

Deno.test("Authentic frames before a malformed one are delivered, and no rejection escapes", async () => {
  using trap = new RejectionTrap();
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sender = await CipherState.create(key);
  const receiver = await CipherState.create(key);
  // The decryption of the good frame is still in flight when the bad frame
  // arrives (as when the crypto threads are busy): it finishes only after
  // the pipeline has failed.
  const held = Promise.withResolvers<void>();
  const pending: Promise<unknown>[] = [];
  const slowed = {
    decryptWithAd: (ad: Uint8Array, ciphertext: Uint8Array) => {
      const result = receiver.decryptWithAd(ad, ciphertext);
      pending.push(result);
      return result.then(async (plaintext) => (await held.promise, plaintext));
    },
    rekey: () => receiver.rekey(),
  } as unknown as CipherState;
  const wire = concat(
    await seal(sender, messageRecord("authentic")),
    new Uint8Array([0x09, 0x00, 0x00]), // An unknown frame type.
  );
  const messages: unknown[] = [];
  const piping = ReadableStream.from([wire])
    .pipeThrough(new FrameFaultStream())
    .pipeThrough(new DecryptStream(slowed))
    .pipeThrough(new RecordDecoderStream(1 << 20))
    .pipeTo(
      new WritableStream({
        write(chunk) {
          if (chunk instanceof Fault) throw chunk.error;
          for (const event of chunk) {
            if (event.kind === "message") messages.push(event.data);
          }
        },
      }),
    )
    .then(() => undefined, (e) => e);
  await new Promise((resolve) => setTimeout(resolve, 0)); // Let the bad frame arrive first.
  held.resolve();
  const error = await piping;
  await Promise.allSettled(pending);
  await new Promise((resolve) => setTimeout(resolve, 0)); // One turn for rejection events.
  assert.ok(error instanceof ProtocolError, String(error));
  const failure = messages.length === 1 && messages[0] === "authentic"
    ? undefined
    : new assert.AssertionError({
      message: `the authentic message before the bad frame was not delivered (got ${
        JSON.stringify(messages)
      })`,
    });
  trap.check(failure);
});

Deno.test("A client whose socket is closed under it while connecting gets a typed error", async () => {
  // A fake server answers message 1 with a valid message 2, then refuses at once and closes:
  // the client is still computing message 3 when the end of the stream arrives.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = await generateKeyPair();
  const fake = (async () => {
    const conn = await listener.accept();
    try {
      const reader = new FrameReader(conn, 16);
      const pre = (await reader.next())!;
      const hs = await HandshakeState.create({
        protocolName: "Noise_XX_25519_AESGCM_SHA256",
        initiator: false,
        prologue: concat(pre, utf8("aesm")),
        staticPrivateKey: server.privateKey,
      });
      await hs.readMessage(parseFrame((await reader.next())!).body);
      const params = new Uint8Array([0, 1, 0, 0]);
      await writeAll(
        conn,
        concat(
          frame(FrameType.Handshake, await hs.writeMessage(params)),
          frame(FrameType.Refuse, new Uint8Array([0x07])),
        ),
      );
    } finally {
      closeQuietly(conn);
    }
  })();
  const error = await ClientNetwork.connect({ hostname: "127.0.0.1", port: listener.addr.port })
    .then(() => undefined, (e) => e);
  await fake;
  assert.ok(
    error instanceof HandshakeError,
    `expected a HandshakeError (a RefusedError or AuthenticationError), got ${error}`,
  );
});
