// Copyright 2026 the aesm authors. MIT license.
// Heartbeats, idle timeouts, abort() and bounded sends, with real processes frozen by SIGSTOP.
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { BufferFullError, ConnectionClosedError } from "../errors.ts";
import { ServerNetwork } from "../server.ts";
import { activityOf, bounded, HOST, Subprocess, within } from "./_network.ts";

const SERVER = new URL("../server.ts", import.meta.url).href;
const CLIENT = new URL("../client.ts", import.meta.url).href;
const TIMING = { heartbeatInterval: 200, idleTimeout: 1000 };

Deno.test("a server notices a frozen (SIGSTOP) client within idleTimeout and logs idle-timeout", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, ...TIMING });
  await using child = new Subprocess(`
    import { ClientNetwork } from "${CLIENT}";
    const client = await ClientNetwork.connect({ hostname: "${HOST}", port: ${server.port},
      heartbeatInterval: 200, idleTimeout: 1000 });
    console.log(client.localAddress);
    await client.closed;`);
  const address = await child.line("the child to connect");
  const connection = await server.accept(bounded());
  assert.equal(connection.address, address);
  child.child.kill("SIGSTOP");
  const info = await within(connection.closed, "the frozen client to be noticed", 10_000);
  assert.deepEqual([info.reason, info.clean, info.by], ["idle-timeout", false, "local"]);
  const record = await activityOf(server, "disconnected");
  assert.deepEqual([record.address, record.reason, record.clean], [address, "idle-timeout", false]);
  child.child.kill("SIGCONT");
});

Deno.test("a client notices a frozen (SIGSTOP) server within idleTimeout and reports idle-timeout", async () => {
  await using child = new Subprocess(`
    import { ServerNetwork } from "${SERVER}";
    const server = await ServerNetwork.listen({ hostname: "${HOST}", port: 0,
      heartbeatInterval: 200, idleTimeout: 1000 });
    console.log(server.port);
    for await (const packet of server) void packet;`);
  const port = Number(await child.line("the child to listen"));
  // Reconnecting off: the client's closed then tells how its one connection ended.
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port,
    reconnect: false,
    ...TIMING,
  });
  child.child.kill("SIGSTOP");
  const info = await within(client.closed, "the frozen server to be noticed", 10_000);
  assert.deepEqual([info.reason, info.clean], ["idle-timeout", false]);
  await assert.rejects(client.send("late"), ConnectionClosedError);
  child.child.kill("SIGCONT");
});

Deno.test("an idle connection with heartbeats on both sides outlives several idle timeouts", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, ...TIMING });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    ...TIMING,
  });
  const connection = await server.accept(bounded());
  // Nothing is sent by the application for three idle timeouts: only Pings keep it alive.
  const ended = await Promise.race([
    connection.closed.then(() => "ended"),
    new Promise((resolve) => setTimeout(resolve, 3 * TIMING.idleTimeout, "open")),
  ]);
  assert.equal(ended, "open");
  assert.equal(client.connection.isClosed, false);
  await client.send("still here");
  assert.equal((await connection.receive(bounded()))?.text(), "still here");
});

Deno.test("idleTimeout must exceed heartbeatInterval, and 0 turns either off", () => {
  assert.throws(
    () => new ServerNetwork(HOST, 0, { heartbeatInterval: 1000, idleTimeout: 1000 }),
    (error) => error instanceof RangeError && /must exceed heartbeatInterval/.test(error.message),
  );
  assert.throws(() => new ServerNetwork(HOST, 0, { idleTimeout: -1 }), RangeError);
  assert.throws(
    () => new ServerNetwork(HOST, 0, { heartbeatInterval: "5" as unknown as number }),
    TypeError,
  );
  const quiet = new ServerNetwork(HOST, 0, { heartbeatInterval: 0, idleTimeout: 0 });
  return quiet.stop();
});

Deno.test("abort() ends a connection at once, unclean, rejecting what waits on it", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    writeHighWaterMark: 1024,
  });
  const connection = await server.accept(bounded());
  // The server reads nothing, so the client's buffer fills and a send waits.
  const stuck: Promise<void>[] = [];
  for (let i = 0; i < 64 && client.connection.bufferedAmount < 1024; i++) {
    stuck.push(client.send(new Uint8Array(256 * 1024)));
  }
  const reason = new Error("giving up");
  client.connection.abort(reason);
  const info = await client.closed;
  assert.deepEqual([info.reason, info.clean, info.by, info.error], [
    "aborted",
    false,
    "local",
    reason,
  ]);
  await assert.rejects(client.flush(), ConnectionClosedError);
  await assert.rejects(client.send("after"), ConnectionClosedError);
  const settled = await Promise.allSettled(stuck);
  assert.ok(
    settled.every((s) => s.status === "fulfilled" || s.reason instanceof ConnectionClosedError),
  );
  assert.equal((await within(connection.closed, "the server side to end")).clean, false);
  client.connection.abort(); // Idempotent.
});

Deno.test("sends that are not awaited stop at maxBufferedAmount with BufferFullError; memory stays bounded", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    highWaterMark: 65536,
  });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    writeHighWaterMark: 64 * 1024,
    maxBufferedAmount: 1024 * 1024,
  });
  await server.accept(bounded());
  // 200 MiB offered without awaiting, while the server reads nothing.
  const chunk = new Uint8Array(64 * 1024);
  let accepted = 0;
  let refused = 0;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < 3200; i++) {
    const sending = client.send(chunk);
    pending.push(sending.then(() => void accepted++, (error) => {
      // Refused at once, or (a send that waited for room) rejected by the abort below.
      assert.ok(error instanceof BufferFullError || error instanceof ConnectionClosedError);
      if (error instanceof BufferFullError) refused++;
      else accepted++;
    }));
  }
  await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 200))]);
  assert.ok(client.connection.bufferedAmount <= 1024 * 1024 + chunk.length);
  assert.ok(refused > 3000, `refused ${refused} of 3200`);
  client.connection.abort();
  await Promise.all(pending);
  assert.equal(accepted + refused, 3200);
});
