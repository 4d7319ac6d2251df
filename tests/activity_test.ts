// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { ActivityLog, type ActivityRecord } from "../activity.ts";
import { activityWriter } from "../_queue/activity_log.ts";
import { ClientNetwork } from "../client.ts";
import { RefusedError } from "../errors.ts";
import { ServerNetwork } from "../server.ts";
import { bounded, HOST, nextActivity, rejection, within } from "./_network.ts";

const ADDRESS = /^127\.0\.0\.1:\d+$/;

function assertTimeWithin(record: ActivityRecord, start: number, end: number): void {
  assert.equal(typeof record.time, "number");
  assert.ok(Number.isInteger(record.time), `time ${record.time} is whole milliseconds`);
  assert.ok(
    record.time >= start && record.time <= end,
    `time ${record.time} is within the test's window ${start}..${end}`,
  );
}

Deno.test("ActivityLog records a connected client with its address, acceptance, time and key", async () => {
  const start = Date.now();
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const record = await nextActivity(server);
  assertTimeWithin(record, start, Date.now());
  assert.equal(record.event, "connected");
  assert.equal(record.address, client.localAddress);
  assert.match(record.address, ADDRESS);
  assert.equal(record.accepted, true);
  assert.equal(record.reason, undefined);
  assert.equal(typeof record.message, "string");
  assert.deepEqual(record.publicKey, client.publicKey);
});

Deno.test("ActivityLog records a clean disconnect with reason normal", async () => {
  const start = Date.now();
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const address = client.localAddress;
  assert.equal((await nextActivity(server)).event, "connected");
  await within(client.close(), "the client to close");
  const record = await nextActivity(server);
  assertTimeWithin(record, start, Date.now());
  assert.equal(record.event, "disconnected");
  assert.equal(record.address, address);
  assert.equal(record.accepted, true);
  assert.equal(record.reason, "normal");
  assert.equal(record.clean, true);
  assert.deepEqual(record.publicKey, client.publicKey);
});

Deno.test("ActivityLog records a refused client with accepted false and the refusal's reason", async () => {
  const start = Date.now();
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const error = await rejection(
    ClientNetwork.connect({ hostname: HOST, port: server.port, applicationName: "other" }),
    "a client of another application",
  );
  assert.ok(error instanceof RefusedError);
  const record = await nextActivity(server);
  assertTimeWithin(record, start, Date.now());
  assert.equal(record.event, "refused");
  assert.match(record.address, ADDRESS);
  assert.equal(record.accepted, false);
  assert.equal(record.reason, "application-mismatch");
  assert.equal(record.publicKey, undefined);
  assert.equal(typeof record.message, "string");
});

Deno.test("ActivityLog records the address the raw TCP peer connected from", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const conn = await Deno.connect({ hostname: HOST, port: server.port });
  const address = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
  conn.close();
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  assert.equal(record.address, address);
  assert.equal(record.accepted, false);
});

Deno.test("ActivityLog keeps records in order across connect, refuse and disconnect", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const first = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await server.accept(bounded());
  await rejection(
    ClientNetwork.connect({ hostname: HOST, port: server.port, applicationName: "x" }),
    "a refused client",
  );
  // The connected record comes first: it was added before the refused client connected.
  assert.equal((await nextActivity(server)).event, "connected");
  assert.equal((await nextActivity(server)).event, "refused");
  await within(first.close(), "the client to close");
  assert.equal((await nextActivity(server)).event, "disconnected");
  assert.equal(server.activity.length, 0);
});

Deno.test("ActivityLog.at() looks without taking, take() takes, and connections.activity() is take()", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using a = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await server.accept(bounded());
  await using b = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await server.accept(bounded());
  assert.equal(server.activity.length, 2);
  assert.equal(server.activity.at(0)?.address, a.localAddress);
  assert.equal(server.activity.at(-1)?.address, b.localAddress);
  assert.equal(server.activity.at(2), undefined);
  assert.equal(server.activity.length, 2);
  assert.equal(server.connections.activity()?.address, a.localAddress);
  assert.equal(server.activity.take()?.address, b.localAddress);
  assert.equal(server.activity.take(), undefined);
  assert.equal(server.connections.activity(), undefined);
});

Deno.test("ActivityLog.receive() with an already-aborted signal returns a promise that rejects with signal.reason", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const reason = new Error("enough");
  let receiving: Promise<unknown> = Promise.resolve();
  assert.doesNotThrow(() => {
    receiving = server.activity.receive({ signal: AbortSignal.abort(reason) });
  }, "receive() must reject its promise, not throw synchronously");
  assert.equal(await rejection(receiving, "receive() with an aborted signal"), reason);
});

Deno.test("ActivityLog.receive() aborted while waiting rejects with signal.reason", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const reason = new Error("enough");
  const controller = new AbortController();
  const waiting = server.activity.receive({ signal: controller.signal });
  controller.abort(reason);
  assert.equal(await rejection(waiting, "receive() aborted while waiting"), reason);
});

Deno.test("ActivityLog iteration yields the unread records, then ends when the server stops", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await server.accept(bounded());
  const events: string[] = [];
  const reading = (async () => {
    for await (const record of server.activity) events.push(record.event);
  })();
  await within(server.stop(), "the server to stop");
  await within(reading, "the iteration to end");
  assert.deepEqual(events, ["connected", "disconnected"]);
  assert.equal(await server.activity.receive(), undefined);
  await client.close();
});

Deno.test("ActivityLog drops the oldest unread records past activityLimit and counts them", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, activityLimit: 2 });
  const clients: ClientNetwork[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      clients.push(await ClientNetwork.connect({ hostname: HOST, port: server.port }));
      await server.accept(bounded());
    }
    assert.equal(server.activity.length, 2);
    assert.equal(server.activity.dropped, 1);
    assert.equal(server.activity.take()?.address, clients[1].localAddress);
    assert.equal(server.activity.take()?.address, clients[2].localAddress);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});

Deno.test("new ActivityLog() rejects a limit that is not a positive integer", () => {
  assert.throws(() => new ActivityLog(0), RangeError);
  assert.throws(() => new ActivityLog(1.5), RangeError);
  assert.equal(new ActivityLog().length, 0);
  assert.equal(new ActivityLog().dropped, 0);
});

Deno.test("ActivityLog.next() is an async iterator's next(): a result that is done once the server stops", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const result = await server.activity.next(bounded());
  assert.equal(result.done, false);
  assert.equal(result.value?.event, "connected");
  await client.close();
  await server.stop();
  const rest = [];
  for (let r = await server.activity.next(); !r.done; r = await server.activity.next()) {
    rest.push(r.value.event);
  }
  assert.deepEqual(rest, ["disconnected"]);
  assert.deepEqual(await server.activity.next(), { value: undefined, done: true });
});

function record(event: ActivityRecord["event"], address: string, message = ""): ActivityRecord {
  return { address, accepted: event !== "refused", time: 0, event, message };
}

Deno.test("ActivityLog drops a refusal that arrives when full, and lets a connection record push out the oldest refusal first", () => {
  const log = new ActivityLog(3);
  const writer = activityWriter(log);
  writer.add(record("connected", "a"));
  writer.add(record("refused", "r1"));
  writer.add(record("refused", "r2"));
  writer.add(record("refused", "r3"));
  assert.deepEqual([...Array(3)].map((_, i) => log.at(i)?.address), ["a", "r1", "r2"]);
  writer.add(record("disconnected", "a"));
  assert.deepEqual([...Array(3)].map((_, i) => log.at(i)?.address), ["a", "r2", "a"]);
  writer.add(record("connected", "b"));
  writer.add(record("connected", "c"));
  assert.deepEqual([...Array(3)].map((_, i) => log.at(i)?.event), [
    "disconnected",
    "connected",
    "connected",
  ]);
  assert.equal(log.dropped, 4);
});

Deno.test("ActivityLog escapes control and bidirectional characters in messages", () => {
  const log = new ActivityLog();
  const writer = activityWriter(log);
  writer.add(record("disconnected", "a", "ok\r\nforged\u0007\u009b\u2028\u202e\u2066\u200f é"));
  assert.equal(
    log.take()?.message,
    "ok\\u000d\\u000aforged\\u0007\\u009b\\u2028\\u202e\\u2066\\u200f é",
  );
});
