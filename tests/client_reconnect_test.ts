// Copyright 2026 the aesm authors. MIT license.
// A reconnecting ClientNetwork against real servers on loopback: restarted
// processes, servers that come back with another key or configuration, a
// forged refusal, sends during an outage, and close() while it waits.
import assert from "node:assert/strict";
import type { ActivityRecord } from "../activity.ts";
import { ClientNetwork, type ClientOptions } from "../client.ts";
import { encodeRefuse } from "../_connection/establish.ts";
import { MAX_DELAY } from "../_client/reconnect.ts";
import {
  AuthenticationError,
  BufferFullError,
  ConnectError,
  ConnectionClosedError,
  RefusedError,
} from "../errors.ts";
import { ServerNetwork } from "../server.ts";
import {
  activityOf,
  bounded,
  HOST,
  pendingAfter,
  rejection,
  Relay,
  Subprocess,
  within,
} from "./_network.ts";

const SERVER_URL = new URL("../server.ts", import.meta.url).href;

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(hex.match(/../g)!.map((byte) => parseInt(byte, 16)));
}

/**
 * A server in its own process on `port` (0: any), keeping its key in
 * `keyFile`: it prints its port and public key, echoes every message, and
 * stops cleanly (reason `shutdown`) on SIGTERM.
 */
function serverProcess(port: number, keyFile: string): Subprocess {
  return new Subprocess(`
    import { ServerNetwork } from ${JSON.stringify(SERVER_URL)};
    const server = await ServerNetwork.listen({
      hostname: "${HOST}",
      port: ${port},
      keyFile: ${JSON.stringify(keyFile)},
    });
    Deno.addSignalListener("SIGTERM", () => server.stop().then(() => Deno.exit(0)));
    const key = Array.from(server.publicKey, (b) => b.toString(16).padStart(2, "0")).join("");
    console.log(server.port + " " + key);
    for await (const packet of server) {
      packet.connection.send("echo " + packet.text()).catch(() => {});
    }
  `);
}

/**
 * A free port below the range the system picks from for port 0 and for
 * outgoing connections (from 32768 on Linux): while a test restarts a server
 * on it, no other socket takes it, and a client that keeps retrying it cannot
 * end up connected to itself (a TCP self-connect, possible only in that range).
 */
function restartablePort(): number {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      Deno.listen({ hostname: HOST, port }).close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error("Cannot find a free port from 20000 to 31999 in 200 tries");
}

/**
 * The outage the reconnect tests start from: a server on a port that can be
 * listened on again, a client of it with `options(server)`, then the server
 * stopped. The server keeps its key in `keyFile`, if given.
 */
async function outage(
  options: (first: ServerNetwork) => Omit<ClientOptions, "hostname" | "port">,
  keyFile?: string,
): Promise<{ port: number; client: ClientNetwork }> {
  const first = await ServerNetwork.listen({ hostname: HOST, port: restartablePort(), keyFile });
  const { port } = first;
  const client = await ClientNetwork.connect({ hostname: HOST, port, ...options(first) });
  await within(first.stop(), "the first server to stop");
  return { port, client };
}

/** The port and public key (hex) a server process prints. */
async function banner(server: Subprocess): Promise<[number, string]> {
  const [port, key] = (await server.line("the server's port and key")).split(" ");
  return [Number(port), key];
}

/** Most records a test reads from one log: a client that never stops trying fails the test. */
const MAX_RECORDS = 5000;

/** The client's next activity record, failing if none comes by the deadline. */
async function nextRecord(
  client: ClientNetwork,
  deadline: { signal: AbortSignal } = bounded(),
): Promise<ActivityRecord> {
  const record = await client.activity.receive(deadline);
  assert.ok(record !== undefined, "the client's activity log ended early");
  return record;
}

/** The client's activity records up to and including the next one with `event`, bounded. */
async function recordsUntil(
  client: ClientNetwork,
  event: ActivityRecord["event"],
): Promise<ActivityRecord[]> {
  const deadline = bounded(); // One bound for the whole read, not one per record.
  const records: ActivityRecord[] = [];
  while (records.at(-1)?.event !== event) {
    assert.ok(records.length < MAX_RECORDS, `no ${event} record in ${MAX_RECORDS}`);
    records.push(await nextRecord(client, deadline));
  }
  return records;
}

/** Every remaining activity record of a client that has ended, bounded. */
async function remainingRecords(client: ClientNetwork): Promise<ActivityRecord[]> {
  const deadline = bounded();
  const records: ActivityRecord[] = [];
  while (true) {
    assert.ok(records.length < MAX_RECORDS, `the log did not end within ${MAX_RECORDS} records`);
    const record = await client.activity.receive(deadline);
    if (record === undefined) return records;
    records.push(record);
  }
}

/** Checks `records`: `reconnecting` records numbered 1, 2, ... and what ends them. */
function assertAttempts(records: ActivityRecord[], last: "connected" | "gave-up"): void {
  const attempts = records.slice(0, -1);
  assert.ok(attempts.length >= 1, "at least one attempt");
  for (const [i, record] of attempts.entries()) {
    assert.equal(record.event, "reconnecting");
    assert.equal(record.attempt, i + 1);
    assert.equal(record.accepted, false);
    assert.ok(Number.isInteger(record.delay) && record.delay! >= 0, `delay ${record.delay}`);
  }
  assert.equal(records.at(-1)?.event, last);
  assert.equal(records.at(-1)?.attempt, attempts.length);
}

Deno.test("ClientNetwork reconnects through 20 server restarts (SIGKILL or SIGTERM), the server keeping its key file, and keeps working", async () => {
  const dir = await Deno.makeTempDir();
  const keyFile = `${dir}/server.key`;
  let server = serverProcess(restartablePort(), keyFile);
  try {
    const [port, key] = await banner(server);
    await using client = await ClientNetwork.connect({
      hostname: HOST,
      port,
      serverPublicKey: fromHex(key),
      reconnect: { initialDelay: 10, maxDelay: 250, maxAttempts: 1000 },
    });
    const packets = client[Symbol.asyncIterator](); // One iteration across every connection.
    assert.equal((await nextRecord(client)).event, "connected");
    const ids = new Set([client.connection.id]);
    for (let restart = 1; restart <= 20; restart++) {
      await client.send(`message ${restart}`);
      const echo = await within(packets.next(), `the echo before restart ${restart}`);
      assert.equal(echo.value?.text(), `echo message ${restart}`);

      const crash = restart % 2 === 1;
      if (crash) await server.kill();
      else assert.equal((await server.terminate()).code, 0, "the server stopped cleanly");
      server = serverProcess(port, keyFile);
      assert.deepEqual(await banner(server), [port, key], "the same port and key");

      const [lost, ...attempts] = await recordsUntil(client, "connected");
      assert.equal(lost.event, "disconnected");
      if (crash) assert.equal(lost.clean, false, `a crash is unclean, got ${lost.reason}`);
      else assert.deepEqual([lost.reason, lost.clean], ["shutdown", true]);
      assertAttempts(attempts, "connected");
      assert.ok(attempts.slice(0, -1).every((r) => r.delay! <= 250), "no delay past maxDelay");
      assert.ok(!ids.has(client.connection.id), "a new connection");
      ids.add(client.connection.id);
      assert.equal(client.retrieved, client.connection.data);
      assert.deepEqual(client.remotePublicKey, fromHex(key));
      assert.ok(await pendingAfter(client.closed, 1), "closed waits for the final end");
    }
    await client.send("after the last restart");
    const last = await within(packets.next(), "the echo after the last restart");
    assert.equal(last.value?.text(), "echo after the last restart");
    const info = await within(client.close(), "close()");
    assert.deepEqual([info.reason, info.clean], ["normal", true]);
    assert.equal((await within(packets.next(), "the iteration's end")).done, true);
  } finally {
    await server.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ClientNetwork.send() and flush() during an outage wait for the next connection, where the messages arrive in order", async () => {
  const dir = await Deno.makeTempDir();
  const keyFile = `${dir}/server.key`;
  try {
    const { port, client: reconnecting } = await outage((first) => ({
      serverPublicKey: first.publicKey,
      reconnect: { initialDelay: 10, maxDelay: 100 },
    }), keyFile);
    await using client = reconnecting;
    await recordsUntil(client, "disconnected");
    const bytes = new Uint8Array([1, 2, 3]);
    const sends = [client.send("one"), client.send(bytes), client.send("three")];
    bytes.fill(9); // The caller may reuse its bytes once send() returns.
    const flushed = client.flush();
    assert.ok(
      await pendingAfter(Promise.race([...sends, flushed]), 50),
      "they wait while no server listens",
    );
    await using second = await ServerNetwork.listen({ hostname: HOST, port, keyFile });
    await within(Promise.all([...sends, flushed]), "the waiting sends to go through");
    const received = [];
    for (let i = 0; i < 3; i++) received.push((await second.receive(bounded()))?.data);
    assert.deepEqual(received, ["one", new Uint8Array([1, 2, 3]), "three"]);
    const [connected] = (await recordsUntil(client, "connected")).slice(-1);
    assert.ok(connected.attempt! >= 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ClientNetwork.close() during a backoff wait ends at once and what waited rejects with ConnectionClosedError; past maxBufferedAmount a send rejects with BufferFullError", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: restartablePort() });
  const client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    writeHighWaterMark: 1024,
    maxBufferedAmount: 1024,
    reconnect: { initialDelay: MAX_DELAY, maxDelay: MAX_DELAY }, // Waits up to 24.8 days.
  });
  await within(server.stop(), "the server to stop");
  const records = await recordsUntil(client, "reconnecting");
  assert.deepEqual(records.map((r) => r.event), ["connected", "disconnected", "reconnecting"]);
  assert.deepEqual([records[2].reason, records[2].attempt], ["shutdown", 1]);

  const waiting = client.send("é".repeat(500)); // 1000 bytes in UTF-8.
  const fits = client.send(new Uint8Array(100)); // Taken: only 1000 bytes wait.
  const full = await rejection(client.send(new Uint8Array(1)), "a send past the bound");
  assert.ok(full instanceof BufferFullError);
  assert.deepEqual([full.bufferedAmount, full.limit], [1100, 1024]);

  const info = await within(client.close(), "close() during the backoff wait");
  assert.deepEqual([info.reason, info.clean, info.by], ["aborted", false, "local"]);
  assert.match(info.message, /^closed while reconnecting/);
  for (const send of [waiting, fits]) {
    const error = await rejection(send, "a send that waited");
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.reason, "aborted");
  }
  assert.deepEqual(await remainingRecords(client), [], "the log ends with the client");
  assert.equal(await client.receive(bounded()), undefined);
  assert.equal(await within(client.closed, "closed"), info);
});

Deno.test("ClientNetwork gives up at once when a restarted server's key is not the pinned one (key-rejected), and says how to keep the key", async () => {
  const { port, client } = await outage((first) => ({ // No key file: a new key on restart.
    serverPublicKey: first.publicKey,
    reconnect: { initialDelay: 10, maxDelay: 100 },
  }));
  await using second = await ServerNetwork.listen({ hostname: HOST, port }); // A new key.
  const sending = client.send("lost");
  const info = await within(client.closed, "the client to give up");

  const records = await remainingRecords(client);
  assert.deepEqual(records.slice(0, 2).map((r) => r.event), ["connected", "disconnected"]);
  assertAttempts(records.slice(2), "gave-up");
  const gaveUp = records.at(-1)!;
  assert.equal(gaveUp.reason, "key-rejected");
  assert.ok(gaveUp.error instanceof AuthenticationError);
  assert.match(gaveUp.error.message, /the server's key changed.*keyFile option/);
  // Not retried: every attempt before the last failed to connect at all.
  assert.ok(
    records.slice(3, -1).every((r) => r.reason === undefined && r.error instanceof ConnectError),
  );

  assert.deepEqual([info.reason, info.clean], ["shutdown", true]);
  assert.match(info.message, /^gave up reconnecting after \d+ attempts?: Cannot connect: /);
  assert.equal(info.error, gaveUp.error);
  const error = await rejection(sending, "the send that waited");
  assert.ok(error instanceof ConnectionClosedError);
  assert.equal((error as Error).cause, gaveUp.error);
  assert.equal((await activityOf(second, "refused")).reason, "key-rejected");
});

Deno.test("ClientNetwork waits maxDelay after each unauthenticated Refuse frame that cannot heal, and gives up after three in a row", async () => {
  const { port, client } = await outage(() => ({
    reconnect: { initialDelay: 10, maxDelay: 40, maxAttempts: 500 },
  }));
  await using second = await ServerNetwork.listen({ hostname: HOST, port, applicationName: "b" });
  const info = await within(client.closed, "the client to give up");

  const records = (await remainingRecords(client)).slice(2);
  assertAttempts(records, "gave-up");
  const refused = records.filter((r) => r.reason === "application-mismatch");
  assert.equal(refused.length, 3, "three refusals, the last one on gave-up");
  for (const record of refused.slice(0, 2)) {
    assert.equal(record.event, "reconnecting");
    assert.equal(record.delay, 40, "after a refusal that cannot heal: maxDelay");
    assert.ok(record.error instanceof RefusedError);
  }
  assert.deepEqual(records.slice(-3), refused, "the last three attempts were refused");
  assert.ok(info.error instanceof RefusedError && info.error.reason === "application-mismatch");
  for (let i = 0; i < 3; i++) {
    assert.equal((await activityOf(second, "refused")).reason, "application-mismatch");
  }
  assert.ok(await pendingAfter(second.activity.wait(), 20), "no fourth attempt");
});

Deno.test("ClientNetwork does not give up on one forged Refuse frame: it reports it, waits maxDelay, and connects once the server is back", async () => {
  const dir = await Deno.makeTempDir();
  const keyFile = `${dir}/server.key`;
  try {
    const { port, client: reconnecting } = await outage((first) => ({
      serverPublicKey: first.publicKey,
      reconnect: { initialDelay: 10, maxDelay: 100 },
    }), keyFile);
    await using client = reconnecting;
    {
      // Someone on the path answers one attempt with a refusal: nothing authenticates it.
      using forger = Deno.listen({ hostname: HOST, port });
      using conn = await within(forger.accept(), "the client's attempt at the forger");
      await conn.read(new Uint8Array(1024));
      await conn.write(encodeRefuse("psk-mismatch"));
    }
    await using second = await ServerNetwork.listen({ hostname: HOST, port, keyFile });
    const before = await recordsUntil(client, "disconnected");
    assert.deepEqual(before.map((r) => r.event), ["connected", "disconnected"]);
    const attempts = await recordsUntil(client, "connected");
    assertAttempts(attempts, "connected");
    const forged = attempts.find((r) => r.reason === "psk-mismatch");
    assert.ok(forged !== undefined, "the refusal is reported");
    assert.equal(forged.event, "reconnecting");
    assert.equal(forged.delay, 100, "the next attempt waits maxDelay");
    assert.ok(forged.error instanceof AuthenticationError);
    assert.match(forged.error.message, /the server refused \(psk-mismatch\)/);
    await client.send("still here");
    assert.equal((await second.receive(bounded()))?.data, "still here");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ClientNetwork does not reconnect after the server closes its connection with reason normal", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const limited = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    activityLimit: 1,
  });
  const connection = await server.accept(bounded());
  await within(connection.close({ message: "bye" }), "the server's close");
  const info = await within(client.closed, "the client's end");
  assert.deepEqual([info.reason, info.clean, info.by, info.message], [
    "normal",
    true,
    "remote",
    "bye",
  ]);
  const records = await remainingRecords(client);
  assert.deepEqual(records.map((r) => r.event), ["connected", "disconnected"]);
  assert.equal(records[1].reason, "normal");
  // activityLimit bounds the client's log as it does a server's.
  await within(limited.close(), "the second client's close");
  assert.deepEqual([limited.activity.length, limited.activity.dropped], [1, 1]);
  assert.equal(limited.activity.take()?.event, "disconnected");
});

Deno.test("ClientNetwork with reconnect false ends with its first connection's cut, and logs no attempt", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const relay = new Relay(server.port);
  const client = await ClientNetwork.connect({
    hostname: HOST,
    port: relay.port,
    reconnect: false,
  });
  await server.accept(bounded());
  await relay[Symbol.asyncDispose](); // Cuts both sides without a close.
  const info = await within(client.closed, "the client to see the cut");
  assert.equal(info.clean, false);
  const records = await remainingRecords(client);
  assert.deepEqual(records.map((r) => r.event), ["connected", "disconnected"]);
  const error = await rejection(client.send("anyone?"), "a send after the cut");
  assert.ok(error instanceof ConnectionClosedError);
  assert.equal(error.reason, info.reason);
});

Deno.test("ClientNetwork gives up after maxAttempts failed connects, with the last error", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: restartablePort() });
  const client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    reconnect: { initialDelay: 5, maxDelay: 20, maxAttempts: 3 },
  });
  await within(server.stop(), "the server to stop");
  const info = await within(client.closed, "the client to give up");
  const records = (await remainingRecords(client)).slice(2);
  assertAttempts(records, "gave-up");
  assert.equal(records.length, 4, "three attempts, then gave-up");
  assert.ok(records.at(-1)!.error instanceof ConnectError);
  assert.match(info.message, /^gave up reconnecting after 3 attempts: Cannot connect to /);
  assert.ok(info.error instanceof ConnectError && info.error.code === "ECONNREFUSED");
  assert.equal(await client.receive(), undefined);
});

Deno.test("ClientNetwork goes on with its backoff after connections that do not last, so a flapping server is not hammered", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const random = Math.random;
  Math.random = () => 1 - Number.EPSILON; // Every wait is its ceiling: the backoff shows.
  try {
    await using client = await ClientNetwork.connect({
      hostname: HOST,
      port: server.port,
      reconnect: { initialDelay: 1, maxDelay: 60_000 },
    });
    assert.equal((await nextRecord(client)).event, "connected");
    const delays = [];
    for (let flap = 0; flap < 6; flap++) {
      // The server takes each connection and drops it at once.
      const connection = await server.accept(bounded());
      await within(connection.close({ reason: "shutdown" }), "the server's close");
      const records = await recordsUntil(client, "connected");
      assertAttempts(records.filter((r) => r.event !== "disconnected"), "connected");
      delays.push(records.find((r) => r.event === "reconnecting")?.delay);
    }
    assert.deepEqual(delays, [1, 2, 4, 8, 16, 32]);
  } finally {
    Math.random = random;
  }
});

Deno.test("ClientNetwork's signal bounds the first connect only: reconnecting goes on after it aborts", async () => {
  const dir = await Deno.makeTempDir();
  const keyFile = `${dir}/server.key`;
  try {
    const first = await ServerNetwork.listen({ hostname: HOST, port: restartablePort(), keyFile });
    const { port } = first;
    const connecting = new AbortController();
    await using client = await ClientNetwork.connect({
      hostname: HOST,
      port,
      signal: connecting.signal,
      reconnect: { initialDelay: 10, maxDelay: 100 },
    });
    connecting.abort(); // As an AbortSignal.timeout() given to connect would, later on.
    await within(first.stop(), "the first server to stop");
    await using second = await ServerNetwork.listen({ hostname: HOST, port, keyFile });
    await recordsUntil(client, "disconnected");
    const attempts = await recordsUntil(client, "connected");
    assertAttempts(attempts, "connected");
    await client.send("reconnected");
    assert.equal((await second.receive(bounded()))?.data, "reconnected");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
