// Copyright 2026 the aesm authors. MIT license.
// Interoperability: aesm against tests/interop/peer.mjs, an independent Node.js peer written
// from PROTOCOL.md and the Noise specification alone. Loopback only.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  AuthenticationError,
  ClientNetwork,
  MessageTooLargeError,
  RefusedError,
  ServerNetwork,
} from "../mod.ts";
import { expand, Peer, type Wire } from "./_interop_peer.ts";

const APP = "interop-test";
const LIMIT_MS = 30_000;
/** The largest message the peer accepts (it tells aesm in its parameters). */
const PEER_MAX = 300_000;
/** The largest message aesm accepts (it tells the peer in its parameters). */
const AESM_MAX = 1 << 20;

/** What the peer sends: text and binary, empty ones, and two of ~200 KB (Continuation records). */
const FROM_PEER: Wire[] = [
  { text: "hello from node" },
  { base64: "AAEC/v8=" },
  { text: "" },
  { base64: "" },
  { gen: "binary", size: 200_000, seed: 1 },
  { gen: "text", count: 18_000, seed: 2 },
  { text: "last from node ✓" },
];
/** What aesm sends. */
const FROM_AESM: Wire[] = [
  { text: "hello from aesm" },
  { base64: "CQgH" },
  { base64: "" },
  { text: "" },
  { gen: "text", count: 19_000, seed: 3 },
  { gen: "binary", size: 200_003, seed: 4 },
  { text: "last from aesm ✓" },
];

type PeerLine = {
  type?: "text" | "binary";
  data?: string;
  sentAt?: number;
  connected?: { peerMaxMessageSize: number };
  refused?: { code: number; reason: string };
  closed?: { clean: boolean; code: number; error?: string };
};

const hex = (bytes: Uint8Array | undefined) =>
  bytes && Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** Checks what aesm received against the peer's script: in order, intact, with a sane time. */
function checkAesmReceived(
  packets: { time: number; data: string | Uint8Array }[],
  since: number,
): void {
  assert.equal(packets.length, FROM_PEER.length);
  let last = 0;
  packets.forEach((packet, i) => {
    const expected = expand(FROM_PEER[i]);
    assert.equal(typeof packet.data, typeof expected, `message ${i}: kind`);
    assert.deepEqual(packet.data, expected, `message ${i}: content`);
    assert.ok(packet.time >= since - 1_000 && packet.time <= Date.now() + 1_000, `${i}: time`);
    assert.ok(packet.time >= last, `message ${i}: sentAt goes back`);
    last = packet.time;
  });
}

/** Checks the peer's output: connected, aesm's messages in order, then a clean close. */
function checkPeerOutput(
  output: { lines: PeerLine[]; code: number; stderr: string },
  since: number,
) {
  const { lines, code, stderr } = output;
  assert.deepEqual(lines[0], { connected: { peerMaxMessageSize: AESM_MAX } }, stderr);
  const messages = lines.slice(1, -1);
  assert.equal(messages.length, FROM_AESM.length, JSON.stringify(lines.at(-1)) + stderr);
  let last = 0;
  messages.forEach((line, i) => {
    const expected = expand(FROM_AESM[i]);
    if (typeof expected === "string") {
      assert.equal(line.type, "text", `message ${i}: kind`);
      assert.equal(line.data, expected, `message ${i}: content`);
    } else {
      assert.equal(line.type, "binary", `message ${i}: kind`);
      assert.deepEqual(new Uint8Array(Buffer.from(line.data!, "base64")), expected, `${i}`);
    }
    const sentAt = line.sentAt!;
    assert.ok(sentAt >= since - 1_000 && sentAt <= Date.now() + 1_000, `${i}: sentAt ${sentAt}`);
    assert.ok(sentAt >= last, `message ${i}: sentAt goes back`);
    last = sentAt;
  });
  assert.deepEqual(lines.at(-1), { closed: { clean: true, code: 0 } }, stderr);
  assert.equal(code, 0, stderr);
}

/** The peer's script options shared by both directions. */
function peerScript(psk: Uint8Array | undefined, peerCloses: boolean, finImmediately = false) {
  return {
    finImmediately, // FIN right after its Close, as PROTOCOL.md section 8 allows
    app: APP,
    psk: hex(psk),
    send: FROM_PEER,
    closeAfter: peerCloses ? FROM_AESM.length : undefined, // else it waits for aesm's Close
    rekeyAfter: 65_536, // a TransportRekey as often as PROTOCOL.md section 6 allows
    extras: true, // Ping and extension records, and an empty Transport frame
    paramsExtra: 7, // reserved bytes after max_message_size, to be ignored
    maxMessageSize: PEER_MAX,
  };
}

/** What aesm sends and receives on an established connection, both at once. */
async function exchange(
  side: {
    peerMaxMessageSize: number;
    send(data: string | Uint8Array): Promise<void>;
    receive(
      o: { signal: AbortSignal },
    ): Promise<{ time: number; data: string | Uint8Array } | undefined>;
  },
  signal: AbortSignal,
  since: number,
): Promise<void> {
  assert.equal(side.peerMaxMessageSize, PEER_MAX);
  await assert.rejects(side.send(new Uint8Array(PEER_MAX + 1)), MessageTooLargeError);
  const sending = (async () => {
    for (const m of FROM_AESM) await side.send(expand(m));
  })();
  const packets = [];
  for (const _ of FROM_PEER) {
    const packet = await side.receive({ signal });
    assert.ok(packet, "the connection ended before every message came");
    packets.push(packet);
  }
  await sending;
  checkAesmReceived(packets, since);
}

const cases = [
  { psk: false, peerCloses: true },
  { psk: false, peerCloses: false },
  { psk: true, peerCloses: true },
  { psk: true, peerCloses: false },
  { psk: false, peerCloses: true, finImmediately: true },
];
type Case = { psk: boolean; peerCloses: boolean; aesmRekeys?: boolean; finImmediately?: boolean };
const name = (c: Case) =>
  `${c.psk ? "XXpsk0" : "XX"}, ${c.peerCloses ? "the peer" : "aesm"} closes${
    c.finImmediately ? " with FIN right after its Close" : ""
  }`;
const newPsk = () => crypto.getRandomValues(new Uint8Array(32));
/** aesm's options; the peer always rekeys (every third frame), aesm only with `aesmRekeys`. */
const aesmOptions = (c: Case) => ({
  maxMessageSize: AESM_MAX,
  ...(c.aesmRekeys ? { rekeyAfterBytes: 100_000 } : {}),
});

/** (a): aesm's server, the peer as client. */
async function serverCase(c: Case): Promise<void> {
  const signal = AbortSignal.timeout(LIMIT_MS);
  const since = Date.now();
  const psk = c.psk ? newPsk() : undefined;
  await using server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    applicationName: APP,
    psk,
    ...aesmOptions(c),
  });
  await using peer = new Peer({
    role: "client",
    port: server.port,
    ...peerScript(psk, c.peerCloses, c.finImmediately),
  });
  const connection = await server.accept({ signal });
  await exchange(connection, signal, since);
  const info = c.peerCloses ? await connection.closed : await connection.close();
  const output = await peer.rest<PeerLine>();
  checkPeerOutput(output, since);
  assert.equal(info.clean, true, info.message);
  assert.equal(info.reason, "normal");
  assert.equal(info.by, c.peerCloses ? "remote" : "local");
  const connected = await server.activity.receive({ signal });
  assert.equal(connected?.event, "connected");
  assert.equal(connected?.accepted, true);
  const left = await server.activity.receive({ signal });
  assert.equal(left?.event, "disconnected");
  assert.equal(left?.clean, true);
}

/** (b): the peer as server, aesm's client. */
async function clientCase(c: Case): Promise<void> {
  const signal = AbortSignal.timeout(LIMIT_MS);
  const since = Date.now();
  const psk = c.psk ? newPsk() : undefined;
  await using peer = new Peer({
    role: "server",
    ...peerScript(psk, c.peerCloses, c.finImmediately),
  });
  const port = await peer.line();
  assert.equal(typeof port, "number");
  await using client = await ClientNetwork.connect({
    hostname: "127.0.0.1",
    port: port as number,
    applicationName: APP,
    psk,
    signal,
    ...aesmOptions(c),
  });
  await exchange(client.connection, signal, since);
  const info = c.peerCloses ? await client.closed : await client.close();
  checkPeerOutput(await peer.rest<PeerLine>(), since);
  assert.equal(info.clean, true, info.message);
  assert.equal(info.reason, "normal");
  assert.equal(info.by, c.peerCloses ? "remote" : "local");
}

Deno.test("interop (a): aesm ServerNetwork with the Node peer as client", async (t) => {
  for (const c of cases) await t.step(name(c), () => serverCase(c));
});

Deno.test("interop (b): the Node peer as server with aesm ClientNetwork", async (t) => {
  for (const c of cases) await t.step(name(c), () => clientCase(c));
});

Deno.test("interop (d): aesm rekeys its sending key in step with TransportRekey", async (t) => {
  await t.step("server", () => serverCase({ psk: false, peerCloses: false, aesmRekeys: true }));
  await t.step("client", () => clientCase({ psk: true, peerCloses: false, aesmRekeys: true }));
});

Deno.test("interop (c): refusals across implementations", async (t) => {
  await t.step("the peer with another application name is refused by aesm", async () => {
    const signal = AbortSignal.timeout(LIMIT_MS);
    await using server = await ServerNetwork.listen({
      hostname: "127.0.0.1",
      port: 0,
      applicationName: APP,
    });
    await using peer = new Peer({ role: "client", port: server.port, app: "another-app" });
    const record = await server.activity.receive({ signal });
    assert.equal(record?.event, "refused");
    assert.equal(record?.accepted, false);
    assert.equal(record?.reason, "application-mismatch");
    const { lines, code } = await peer.rest<PeerLine>();
    assert.equal(lines[0].refused?.code, 4);
    assert.equal(lines[0].refused?.reason, "application-mismatch");
    assert.equal(lines.at(-1)?.closed?.clean, false);
    assert.notEqual(code, 0);
    assert.equal(server.connections.size, 0);
  });

  await t.step("aesm with another application name is refused by the peer", async () => {
    await using peer = new Peer({ role: "server", app: "another-app" });
    const port = await peer.line() as number;
    const error = await ClientNetwork.connect({ hostname: "127.0.0.1", port, applicationName: APP })
      .then(() => assert.fail("connected"), (e) => e);
    assert.ok(error instanceof RefusedError, String(error));
    assert.equal(error.reason, "application-mismatch");
    assert.equal((await peer.rest<PeerLine>()).lines.at(-1)?.closed?.clean, false);
  });

  await t.step("a different psk is refused both ways", async () => {
    const signal = AbortSignal.timeout(LIMIT_MS);
    {
      await using server = await ServerNetwork.listen({
        hostname: "127.0.0.1",
        port: 0,
        applicationName: APP,
        psk: newPsk(),
      });
      await using peer = new Peer({
        role: "client",
        port: server.port,
        app: APP,
        psk: hex(newPsk()),
      });
      const record = await server.activity.receive({ signal });
      assert.equal(record?.event, "refused");
      assert.equal(record?.reason, "psk-mismatch");
      assert.equal((await peer.rest<PeerLine>()).lines[0].refused?.reason, "psk-mismatch");
    }
    {
      await using peer = new Peer({ role: "server", app: APP, psk: hex(newPsk()) });
      const port = await peer.line() as number;
      const error = await ClientNetwork.connect({
        hostname: "127.0.0.1",
        port,
        applicationName: APP,
        psk: newPsk(),
      }).then(() => assert.fail("connected"), (e) => e);
      assert.ok(error instanceof AuthenticationError, String(error));
      assert.equal(error.reason, "psk-mismatch");
    }
  });
});

Deno.test("interop (e): PROTOCOL.md's conformance rows the peer can break on purpose", async (t) => {
  /** aesm's server against a peer client with `config`: the refusal both sides saw. */
  async function serverRefuses(config: Record<string, unknown>, psk?: Uint8Array) {
    const signal = AbortSignal.timeout(LIMIT_MS);
    await using server = await ServerNetwork.listen({
      hostname: "127.0.0.1",
      port: 0,
      applicationName: APP,
      psk,
    });
    await using peer = new Peer({ role: "client", port: server.port, app: APP, ...config });
    const record = await server.activity.receive({ signal });
    assert.equal(record?.event, "refused");
    const { lines } = await peer.rest<PeerLine>();
    assert.equal(lines[0].refused?.reason, record?.reason, "the peer read the same reason");
    return record?.reason;
  }
  /** aesm's client against a peer server with `config`: the error and the peer's last line. */
  async function clientRefuses(config: Record<string, unknown>) {
    await using peer = new Peer({ role: "server", app: APP, ...config });
    const port = await peer.line() as number;
    const error = await ClientNetwork.connect({ hostname: "127.0.0.1", port, applicationName: APP })
      .then(() => assert.fail("connected"), (e) => e);
    assert.ok(error instanceof RefusedError, String(error));
    return { reason: error.reason, lines: (await peer.rest<PeerLine>()).lines };
  }

  await t.step("M1: a 31-byte message 1 is refused malformed", async () => {
    assert.equal(await serverRefuses({ message1Length: 31 }), "malformed");
  });
  await t.step("P5: the retired protocol byte 01 is refused protocol-mismatch", async () => {
    const psk = newPsk();
    assert.equal(
      await serverRefuses({ psk: hex(psk), protocolByte: 1 }, psk),
      "protocol-mismatch",
    );
  });
  await t.step("H6: a client that stalls before message 3 gets Refuse timeout", async () => {
    const signal = AbortSignal.timeout(LIMIT_MS);
    await using server = await ServerNetwork.listen({
      hostname: "127.0.0.1",
      port: 0,
      applicationName: APP,
      handshakeTimeout: 300,
    });
    await using peer = new Peer({
      role: "client",
      port: server.port,
      app: APP,
      stallBeforeMessage3: true,
    });
    const record = await server.activity.receive({ signal });
    assert.equal(record?.reason, "timeout");
    const { lines } = await peer.rest<PeerLine>();
    assert.deepEqual(lines[0].refused?.reason, "timeout", JSON.stringify(lines));
  });
  await t.step("M9: max_message_size 0 and 65535 in message 3 are refused malformed", async () => {
    for (const maxMessageSize of [0, 65_535]) {
      assert.equal(await serverRefuses({ maxMessageSize }), "malformed", `${maxMessageSize}`);
    }
  });
  await t.step("M5: max_message_size 0 in message 2 is refused malformed", async () => {
    const { reason, lines } = await clientRefuses({ maxMessageSize: 0 });
    assert.equal(reason, "malformed");
    assert.equal(lines[0].refused?.code, 1, "the peer received Refuse malformed");
  });
  await t.step("C1: a type-04 acceptance gets Refuse malformed on the wire", async () => {
    const { reason, lines } = await clientRefuses({ acceptanceType: 4 });
    assert.equal(reason, "malformed");
    // The peer, its handshake over, reads aesm's Refuse as a frame not allowed.
    assert.equal(lines.at(-1)?.closed?.error, "frame type 2");
  });
});
