// Copyright 2026 the aesm authors. MIT license.
// Interoperability over WebSocket (PROTOCOL.md section 12): aesm's WebSocket server against
// tests/interop/peer.mjs, whose WebSocket client (Node's global WebSocket) was written from
// section 12, RFC 6455 and the WHATWG WebSocket API alone. Loopback only.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type Connection, ServerNetwork } from "../mod.ts";
import { expand, Peer, type Wire } from "./_interop_peer.ts";

const APP = "interop-websocket-test";
const LIMIT_MS = 60_000;
const MiB = 1024 * 1024;
/** Section 12: a sender stops while this much of what it sent is uncredited. */
const WINDOW = 8 * MiB;
/** Section 12: a receiver credits at the latest once it has read this much. */
const UPDATE_EVERY = 1 * MiB;
/** The largest WebSocket message the peer sends: one frame (section 3). */
const LARGEST_FRAME = 65_538;
/** The largest message each side accepts. */
const MAX_MESSAGE = 2 * MiB;
const WINDOWED = ["aesm.v1.window", "aesm.v1"];

/** A handful of messages: text and binary, empty ones, and ~200 KB ones (many frames). */
const SMALL_FROM_PEER: Wire[] = [
  { text: "hello from node over WebSocket" },
  { base64: "AAEC/v8=" },
  { text: "" },
  { gen: "binary", size: 200_000, seed: 1 },
  { gen: "text", count: 18_000, seed: 2 },
  { text: "last from node ✓" },
];
const SMALL_FROM_AESM: Wire[] = [
  { text: "hello from aesm over WebSocket" },
  { base64: "" },
  { gen: "text", count: 19_000, seed: 3 },
  { gen: "binary", size: 200_003, seed: 4 },
  { text: "last from aesm ✓" },
];
/** Over 24 MiB each way: twelve 2 MiB messages and a text, so three windows and more. */
const bulk = (seed: number): Wire[] => [
  ...Array.from({ length: 12 }, (_, i): Wire => ({ gen: "binary", size: 2 * MiB, seed: seed + i })),
  { gen: "text", count: 100_000, seed },
];

/** What the peer reports of its window at the end (peer.mjs, `webSocketStream`). */
type WindowStats = {
  protocol: string;
  sent: number;
  credited: number;
  updatesReceived: number;
  maxOutstanding: number;
  windowWaits: number;
  received: number;
  read: number;
  creditedToPeer: number;
  updatesSent: number;
  maxUncreditedOnArrival: number;
  windowViolations: number;
  failedWith: number | null;
};
type Line = {
  opened?: { protocol: string };
  connected?: { peerMaxMessageSize: number };
  type?: "text" | "binary";
  size?: number;
  sha256?: string;
  sentAt?: number;
  windowFull?: { outstanding: number };
  heldReading?: { uncredited: number; by: string };
  sentBadWindowUpdate?: string;
  window?: WindowStats;
  closed?: {
    clean: boolean;
    code: number;
    error?: string;
    webSocket?: { code: number | null; reason: string; started?: "us" | "them" };
  };
};
type Output = { lines: Line[]; code: number; stderr: string };

const bytesOf = (m: string | Uint8Array): Uint8Array =>
  typeof m === "string" ? new TextEncoder().encode(m) : m;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
async function sha256(bytes: Uint8Array): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes))));
}

/** aesm's server with a WebSocket listener on loopback. */
function listen(): Promise<ServerNetwork> {
  return ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    applicationName: APP,
    maxMessageSize: MAX_MESSAGE,
    webSocket: {},
  });
}

/** The peer as a WebSocket client of `server`. */
function peerClient(server: ServerNetwork, config: Record<string, unknown>): Peer {
  return new Peer({
    url: `ws://127.0.0.1:${server.webSocketPort}/`,
    role: "client",
    app: APP,
    maxMessageSize: MAX_MESSAGE,
    summarize: true, // messages as size and SHA-256: 24 MiB does not go through stdout
    ...config,
  }, LIMIT_MS);
}

/** Reads the peer's lines until one has `key`; returns them all. */
async function linesUntil(peer: Peer, key: keyof Line): Promise<Line[]> {
  const lines: Line[] = [];
  for (let i = 0; i < 1_000; i++) {
    const line = await peer.line() as Line;
    lines.push(line);
    if (key in line) return lines;
  }
  assert.fail(`no "${key}" line in ${JSON.stringify(lines)}`);
}

/** Checks what aesm received: the peer's script, in order and intact. */
async function receiveAll(connection: Connection, script: Wire[], signal: AbortSignal) {
  for (const [i, m] of script.entries()) {
    const packet = await connection.receive({ signal });
    assert.ok(packet, `the connection ended before message ${i}`);
    const expected = expand(m);
    assert.equal(typeof packet.data, typeof expected, `message ${i}: kind`);
    assert.deepEqual(packet.data, expected, `message ${i}: content`);
  }
}

/**
 * Checks the peer's output: the subprotocol, aesm's messages intact, a clean close whose
 * WebSocket close handshake the first closer started (section 12: the answering side does not).
 */
async function checkPeer(
  output: Output,
  protocol: string,
  script: Wire[],
  peerClosed: boolean,
): Promise<WindowStats> {
  const { lines, code, stderr } = output;
  const context = JSON.stringify(lines.filter((line) => !line.type)) + stderr;
  assert.deepEqual(lines[0], { opened: { protocol } }, context);
  assert.deepEqual(lines[1], { connected: { peerMaxMessageSize: MAX_MESSAGE } }, context);
  const messages = lines.filter((line) => line.type);
  assert.equal(messages.length, script.length, context);
  for (const [i, m] of script.entries()) {
    const expected = expand(m);
    assert.equal(messages[i].type, typeof expected === "string" ? "text" : "binary", `${i}`);
    assert.equal(messages[i].size, bytesOf(expected).length, `message ${i}: size`);
    assert.equal(messages[i].sha256, await sha256(bytesOf(expected)), `message ${i}: content`);
  }
  const closed = lines.at(-1)?.closed;
  const started = peerClosed ? "us" : "them";
  assert.deepEqual(closed, {
    clean: true,
    code: 0,
    webSocket: { code: 1000, reason: "", started },
  }, context);
  assert.equal(code, 0, context);
  const window = lines.find((line) => line.window)?.window;
  assert.ok(window, context);
  assert.equal(window.protocol, protocol);
  assert.equal(window.failedWith, null, "the peer failed the connection");
  return window;
}

/** The checks section 12 makes of the window, from the peer's counts. */
function checkWindow(w: WindowStats): void {
  // aesm kept the window: no binary message came while 8 MiB the peer had not credited were out.
  assert.equal(w.windowViolations, 0);
  assert.ok(w.maxUncreditedOnArrival < WINDOW, `${w.maxUncreditedOnArrival}`);
  // Every credit aesm sent was a well-formed number within what was outstanding (the peer fails
  // the connection otherwise: failedWith), and together they cover what aesm read, but for at
  // most the last 1 MiB, which section 12 lets a receiver keep uncredited.
  assert.ok(w.credited <= w.sent, `${w.credited} of ${w.sent}`);
  assert.ok(w.sent - w.credited < UPDATE_EVERY, `${w.sent - w.credited} left uncredited`);
  // The peer kept aesm's window, one message past it at most, and credited all it read.
  assert.ok(w.maxOutstanding < WINDOW + LARGEST_FRAME, `${w.maxOutstanding}`);
  assert.equal(w.read, w.received);
  assert.ok(w.read - w.creditedToPeer < UPDATE_EVERY, `${w.read - w.creditedToPeer} uncredited`);
}

Deno.test("interop over WebSocket: the Node peer speaks section 12 to aesm's server", async (t) => {
  const cases = [
    { offer: WINDOWED, selected: "aesm.v1.window", peerCloses: true },
    { offer: ["aesm.v1.window"], selected: "aesm.v1.window", peerCloses: false },
    { offer: ["aesm.v1"], selected: "aesm.v1", peerCloses: true },
    { offer: ["aesm.v1"], selected: "aesm.v1", peerCloses: false },
  ];
  for (const c of cases) {
    const name = `offering ${c.offer.join(", ")}: ${c.selected} is selected, messages go both ` +
      `ways and ${c.peerCloses ? "the peer" : "aesm"} closes cleanly`;
    await t.step(name, async () => {
      const signal = AbortSignal.timeout(LIMIT_MS);
      await using server = await listen();
      await using peer = peerClient(server, {
        subprotocols: c.offer,
        send: SMALL_FROM_PEER,
        closeAfter: c.peerCloses ? SMALL_FROM_AESM.length : undefined,
      });
      const connection = await server.accept({ signal });
      const sending = (async () => {
        for (const m of SMALL_FROM_AESM) await connection.send(expand(m));
      })();
      sending.catch(() => {}); // awaited below, after the receiving
      await receiveAll(connection, SMALL_FROM_PEER, signal);
      await sending;
      const info = c.peerCloses ? await connection.closed : await connection.close();
      const w = await checkPeer(await peer.rest<Line>(), c.selected, SMALL_FROM_AESM, c.peerCloses);
      assert.equal(info.clean, true, info.message);
      assert.equal(info.reason, "normal");
      assert.equal(info.by, c.peerCloses ? "remote" : "local");
      if (c.selected === "aesm.v1") { // no text messages either way
        assert.equal(w.updatesReceived, 0);
        assert.equal(w.updatesSent, 0);
      } else checkWindow(w);
    });
  }

  await t.step(
    "aesm.v1.window: 24 MiB and more each way, both readers slow at first, the window holds",
    async () => {
      const signal = AbortSignal.timeout(LIMIT_MS);
      const fromPeer = bulk(10);
      const fromAesm = bulk(40);
      await using server = await listen();
      await using peer = peerClient(server, {
        send: fromPeer,
        closeAfter: fromAesm.length,
        holdReading: true, // the peer reads nothing until aesm has filled its window
      });
      const connection = await server.accept({ signal });
      const sending = (async () => {
        for (const m of fromAesm) await connection.send(expand(m));
      })();
      sending.catch(() => {}); // awaited below, after the receiving
      // aesm's application reads nothing until the peer has had to wait on its window.
      const early = await linesUntil(peer, "windowFull");
      await receiveAll(connection, fromPeer, signal);
      await sending;
      const info = await connection.closed;
      const output = await peer.rest<Line>();
      output.lines.unshift(...early);
      const w = await checkPeer(output, "aesm.v1.window", fromAesm, true);
      assert.equal(info.clean, true, info.message);
      checkWindow(w);
      const held = output.lines.find((line) => line.heldReading)?.heldReading;
      assert.equal(held?.by, "window", "aesm stopped sending at the peer's full window");
      assert.ok(w.windowWaits > 0, "the peer waited on its window");
      assert.ok(w.sent >= 24 * MiB && w.received >= 24 * MiB, `${w.sent}, ${w.received}`);
      assert.ok(w.credited >= 23 * MiB, `${w.credited}`);
    },
  );
});

Deno.test("interop over WebSocket: aesm fails a connection on a bad text message", async (t) => {
  const cases: { offer: string[]; update: unknown; code: number }[] = [
    { offer: WINDOWED, update: "0", code: 1002 },
    { offer: WINDOWED, update: "0012", code: 1002 },
    { offer: WINDOWED, update: "+5", code: 1002 },
    { offer: WINDOWED, update: "5 ", code: 1002 },
    { offer: WINDOWED, update: "1e3", code: 1002 },
    { offer: WINDOWED, update: "", code: 1002 },
    { offer: WINDOWED, update: { excess: 1 }, code: 1002 }, // one byte more than aesm sent
    { offer: ["aesm.v1"], update: "5", code: 1003 }, // no text message under aesm.v1
  ];
  for (const c of cases) {
    const what = typeof c.update === "string"
      ? `the window update ${JSON.stringify(c.update)}`
      : "a window update one byte over what aesm sent";
    await t.step(`${c.offer[0]}: ${what} gets close code ${c.code}`, async () => {
      const signal = AbortSignal.timeout(LIMIT_MS);
      await using server = await listen();
      await using peer = peerClient(server, { subprotocols: c.offer, badWindowUpdate: c.update });
      const connection = await server.accept({ signal });
      const info = await connection.closed;
      const { lines, code, stderr } = await peer.rest<Line>();
      const context = JSON.stringify(lines) + stderr;
      assert.deepEqual([info.reason, info.by, info.clean], ["protocol-error", "local", false]);
      assert.ok(lines.some((line) => "sentBadWindowUpdate" in line), context);
      const closed = lines.at(-1)?.closed;
      assert.equal(closed?.webSocket?.code, c.code, context);
      assert.equal(closed?.clean, false, context);
      assert.notEqual(code, 0, context);
    });
  }
});

/**
 * A stand-in server, not aesm: Deno's WebSocket selecting `protocol`, which answers the peer's
 * first binary message (the preamble and message 1) with the text message `text`, then closes
 * if `closeAfter`. Returns the close code it saw, and the peer's output.
 */
async function standIn(
  protocol: string | undefined,
  text: string,
  { closeAfter = false } = {},
): Promise<{ code: number; lines: Line[]; stderr: string }> {
  const closed = Promise.withResolvers<number>();
  await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol });
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") socket.send(text);
      if (closeAfter) socket.close(1000);
    };
    socket.onclose = (event) => closed.resolve(event.code);
    return response;
  });
  await using peer = new Peer({
    url: `ws://127.0.0.1:${http.addr.port}/`,
    role: "client",
    app: APP,
  }, LIMIT_MS);
  const { lines, stderr } = await peer.rest<Line>();
  return { code: await closed.promise, lines, stderr };
}

Deno.test("interop over WebSocket: the peer checks the window updates it receives", async (t) => {
  // The peer's first message is the preamble (16 bytes) and message 1 (3 + 32): 51 bytes out.
  const cases: { protocol?: string; text: string; code: number; why: string }[] = [
    { protocol: "aesm.v1.window", text: "0", code: 4002, why: "a zero credit" },
    { protocol: "aesm.v1.window", text: "051", code: 4002, why: "a leading zero" },
    { protocol: "aesm.v1.window", text: "5x", code: 4002, why: "another character" },
    { protocol: "aesm.v1.window", text: "52", code: 4002, why: "a credit over the 51 bytes out" },
    { protocol: "aesm.v1", text: "5", code: 4003, why: "a text message under aesm.v1" },
  ];
  for (const c of cases) {
    await t.step(`${c.why}: the peer fails the connection with ${c.code}`, async () => {
      const { code, lines, stderr } = await standIn(c.protocol, c.text);
      // A client sends section 12's 1002 (1003) plus 3000: its WebSocket API sends no code
      // under 3000 but 1000.
      assert.equal(code, c.code, JSON.stringify(lines) + stderr);
      assert.equal(lines.find((line) => line.window)?.window?.failedWith, c.code);
      assert.equal(lines.at(-1)?.closed?.clean, false);
    });
  }
  await t.step("no subprotocol selected: the connection fails before it opens", async () => {
    const { code, lines, stderr } = await standIn(undefined, "5");
    const context = JSON.stringify(lines) + stderr;
    assert.ok(!lines.some((line) => line.opened), context); // Node's WebSocket fails it first
    assert.notEqual(code, 1000, context);
    assert.equal(lines.at(-1)?.closed?.clean, false, context);
  });
  await t.step("a credit of exactly the 51 bytes out is taken", async () => {
    const { lines, stderr } = await standIn("aesm.v1.window", "51", { closeAfter: true });
    const w = lines.find((line) => line.window)?.window;
    assert.equal(w?.failedWith, null, JSON.stringify(lines) + stderr);
    assert.equal(w?.credited, 51);
    assert.equal(w?.updatesReceived, 1);
  });
});
