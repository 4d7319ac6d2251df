// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import type { Connection } from "../connection.ts";
import { PacketQueue } from "../queue.ts";
import { ServerNetwork } from "../server.ts";
import { bounded, HOST, rejection, within } from "./_network.ts";

/** Connects a client, sends `messages` from it, closes it, and returns the server's connection once it has everything. */
async function delivered(server: ServerNetwork, messages: (string | Uint8Array)[]) {
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  for (const message of messages) await client.send(message);
  await within(client.close(), "the client to close");
  const info = await within(connection.closed, "the server side to close");
  assert.equal(info.reason, "normal");
  return { client, connection };
}

function dataOf(packets: ({ data: string | Uint8Array } | undefined)[]): (string | undefined)[] {
  return packets.map((packet) =>
    packet === undefined
      ? undefined
      : typeof packet.data === "string"
      ? packet.data
      : `bytes:${packet.data.join(",")}`
  );
}

Deno.test("PacketQueue.at() looks at packets without taking them, counting negative indexes from the newest", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const { connection } = await delivered(server, ["a", "b", new Uint8Array([1, 2])]);
  const queue = connection.data;
  assert.equal(queue.length, 3);
  assert.deepEqual(dataOf([queue.at(0), queue.at(1), queue.at(2)]), ["a", "b", "bytes:1,2"]);
  assert.deepEqual(dataOf([queue.at(-1), queue.at(-2), queue.at(-3)]), ["bytes:1,2", "b", "a"]);
  assert.equal(queue.at(3), undefined);
  assert.equal(queue.at(-4), undefined);
  assert.equal(queue.at(0.5), undefined);
  assert.equal(queue.length, 3);
});

Deno.test("PacketQueue.getData() takes the oldest packet, then returns undefined once empty", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const { connection } = await delivered(server, ["first", "second"]);
  const queue = connection.data;
  assert.equal(queue.getData()?.data, "first");
  assert.equal(queue.length, 1);
  assert.equal(queue.at(0)?.data, "second");
  assert.equal(queue.getData()?.data, "second");
  assert.equal(queue.length, 0);
  assert.equal(queue.getData(), undefined);
  assert.equal(queue.bytes, 0);
});

Deno.test("PacketQueue packets carry the sender's address and the bytes queued are counted", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const { client, connection } = await delivered(server, ["abc", new Uint8Array(10)]);
  assert.equal(connection.data.bytes, 13);
  const packet = connection.data.getData();
  assert.equal(packet?.address, connection.address);
  assert.equal(packet?.address, client.localAddress);
  assert.equal(connection.data.bytes, 10);
});

Deno.test("PacketQueue.receive() with an already-aborted signal rejects with signal.reason", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const reason = new Error("not now");
  const error = await rejection(
    client.retrieved.receive({ signal: AbortSignal.abort(reason) }),
    "receive() with an aborted signal",
  );
  assert.equal(error, reason);
});

Deno.test("PacketQueue.receive() aborted while waiting rejects with signal.reason, and the next packet is not lost", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  const controller = new AbortController();
  const waiting = client.retrieved.receive({ signal: controller.signal });
  const reason = { why: "gave up" };
  controller.abort(reason);
  assert.equal(await rejection(waiting, "the aborted receive()"), reason);
  await connection.send("after");
  const packet = await client.retrieved.receive(bounded());
  assert.equal(packet?.data, "after");
});

Deno.test("PacketQueue.wait() resolves once a packet is queued, without taking it", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  const waiting = client.retrieved.wait(bounded());
  await connection.send("here");
  assert.equal(await waiting, true);
  assert.equal(client.retrieved.length, 1);
  assert.equal(client.retrieved.at(0)?.data, "here");
  const reason = new Error("stop");
  assert.equal(
    await rejection(
      client.retrieved.wait({ signal: AbortSignal.abort(reason) }),
      "wait() with an aborted signal",
    ),
    reason,
  );
});

Deno.test("PacketQueue.wait() resolves false once the connection ends with the queue empty", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  const waiting = client.retrieved.wait(bounded());
  await connection.close();
  assert.equal(await waiting, false);
  assert.equal(client.retrieved.closed, true);
});

Deno.test("PacketQueue iteration delivers every packet, then ends when the connection ends", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  const sent = Array.from({ length: 20 }, (_, i) => `packet ${i}`);
  for (const message of sent) await connection.send(message);
  await connection.close();
  const received: string[] = [];
  await within(
    (async () => {
      for await (const packet of client.retrieved) received.push(packet.data as string);
    })(),
    "the iteration to end",
  );
  assert.deepEqual(received, sent);
  assert.equal(await client.retrieved.receive(), undefined);
});

Deno.test("A packet taken through a connection's queue is gone from server.connections.getDataOrdinal()", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const a = (await delivered(server, ["a1", "a2", "a3"])).connection;
  const b = (await delivered(server, ["b1", "b2", "b3"])).connection;
  assert.equal(server.connections.length, 6);
  assert.equal(a.data.getData()?.data, "a1");
  assert.equal(b.data.getData()?.data, "b1");
  assert.equal(server.connections.length, 4);
  const ordinal: (string | undefined)[] = [];
  for (let i = 0; i < 5; i++) ordinal.push(server.connections.getDataOrdinal()?.data as string);
  assert.deepEqual(ordinal, ["a2", "a3", "b2", "b3", undefined]);
  assert.equal(server.connections.length, 0);
});

Deno.test("A packet taken through server.connections.getDataOrdinal() is gone from its connection's queue", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const a = (await delivered(server, ["a1", "a2", "a3"])).connection;
  const b = (await delivered(server, ["b1", "b2", "b3"])).connection;
  assert.equal(server.connections.getDataOrdinal(true)?.data, "a1");
  assert.equal(server.connections.getDataOrdinal(false)?.data, "b3");
  assert.equal(a.data.length, 2);
  assert.equal(b.data.length, 2);
  assert.deepEqual(dataOf([a.data.at(0), a.data.at(-1)]), ["a2", "a3"]);
  assert.deepEqual(dataOf([b.data.at(0), b.data.at(-1)]), ["b1", "b2"]);
  assert.equal(server.connections.length, 4);
  assert.equal(b.data.getData()?.data, "b1");
  assert.equal(server.connections.getDataOrdinal(false)?.data, "b2");
  assert.equal(b.data.getData(), undefined);
  assert.equal(server.connections.getDataOrdinal(false)?.data, "a3");
  assert.equal(a.data.getData()?.data, "a2");
  assert.equal(server.connections.getDataOrdinal(true), undefined);
  assert.equal(server.connections.length, 0);
  assert.equal(a.data.bytes + b.data.bytes, 0);
});

Deno.test("server.connections.getDataOrdinal() skips a packet taken from the middle of the arrival order", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const a = (await delivered(server, ["a1", "a2"])).connection;
  const b = (await delivered(server, ["b1", "b2"])).connection;
  const c = (await delivered(server, ["c1", "c2"])).connection;
  // b1 sits in the middle of the arrival order: a1 a2 b1 b2 c1 c2.
  assert.equal(b.data.getData()?.data, "b1");
  assert.equal(server.connections.length, 5);
  const newest: (string | undefined)[] = [];
  for (let i = 0; i < 6; i++) newest.push(server.connections.getDataOrdinal(false)?.data as string);
  assert.deepEqual(newest, ["c2", "c1", "b2", "a2", "a1", undefined]);
  assert.equal(a.data.length + b.data.length + c.data.length, 0);
});

Deno.test("server.connections.getDataOrdinal() stays consistent when thousands of packets are taken from a connection in the middle", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const count = 3000;
  const a = (await delivered(server, Array.from({ length: count }, (_, i) => `a${i}`))).connection;
  const b = (await delivered(server, Array.from({ length: count }, (_, i) => `b${i}`))).connection;
  // b's packets follow a's in arrival order: taking them leaves holes behind a's.
  for (let i = 0; i < count - 10; i++) assert.equal(b.data.getData()?.data, `b${i}`);
  assert.equal(server.connections.length, count + 10);
  assert.equal(server.connections.getDataOrdinal(false)?.data, `b${count - 1}`);
  assert.equal(server.connections.getDataOrdinal(true)?.data, "a0");
  assert.equal(a.data.getData()?.data, "a1");
  for (let i = 2; i < count; i++) assert.equal(server.connections.getDataOrdinal()?.data, `a${i}`);
  for (let i = count - 10; i < count - 1; i++) {
    assert.equal(server.connections.getDataOrdinal()?.data, `b${i}`);
  }
  assert.equal(server.connections.getDataOrdinal(), undefined);
  assert.equal(server.connections.length, 0);
  assert.equal(a.data.length + b.data.length, 0);
});

Deno.test("server.connections.length counts packets waiting across connections, and size the connections listed", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  assert.equal(server.connections.length, 0);
  assert.equal(server.connections.size, 0);
  const a = (await delivered(server, ["1", "2"])).connection;
  const b = (await delivered(server, ["3"])).connection;
  assert.equal(server.connections.length, 3);
  // Closed connections stay listed while packets wait on them.
  assert.equal(server.connections.size, 2);
  assert.ok(server.connections.has(a.address));
  assert.equal(server.connections.get(b.address), b);
  assert.equal(b.data.getData()?.data, "3");
  assert.equal(server.connections.size, 1);
  assert.equal(server.connections.has(b.address), false);
  server.connections.getDataOrdinal();
  server.connections.getDataOrdinal();
  assert.equal(server.connections.length, 0);
  assert.equal(server.connections.size, 0);
});

Deno.test("A packet delivered to a waiting connection.receive() never shows in the server-wide view", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection: Connection = await server.accept(bounded());
  const waiting = connection.receive(bounded());
  await client.send("direct");
  assert.equal((await waiting)?.data, "direct");
  await client.send("queued");
  assert.equal((await server.receive(bounded()))?.data, "queued");
  assert.equal(server.connections.length, 0);
  assert.equal(connection.data.length, 0);
  assert.equal(server.connections.getDataOrdinal(), undefined);
});

Deno.test("new PacketQueue() rejects a highWaterMark that is not a positive integer", () => {
  assert.throws(() => new PacketQueue({ highWaterMark: 0 }), RangeError);
  assert.throws(() => new PacketQueue({ highWaterMark: -1 }), RangeError);
  assert.throws(() => new PacketQueue({ highWaterMark: 1.5 }), RangeError);
  assert.equal(new PacketQueue().length, 0);
});

Deno.test("Packet.text(), bytes() and json() read a message either way it was sent", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await client.send('{"n":1}');
  await client.send(new TextEncoder().encode('{"n":2}'));
  await client.send(new Uint8Array([0xff, 0xfe]));
  const text = (await server.receive(bounded()))!;
  const bytes = (await server.receive(bounded()))!;
  const binary = (await server.receive(bounded()))!;
  assert.deepEqual([text.isText, bytes.isText], [true, false]);
  assert.equal(text.text(), '{"n":1}');
  assert.deepEqual(text.bytes(), new TextEncoder().encode('{"n":1}'));
  assert.deepEqual(text.json(), { n: 1 });
  assert.equal(bytes.text(), '{"n":2}');
  assert.deepEqual(bytes.json<{ n: number }>().n, 2);
  assert.deepEqual(binary.bytes(), new Uint8Array([0xff, 0xfe]));
  assert.throws(
    () => binary.text(),
    (error) => error instanceof TypeError && /not valid UTF-8/.test(error.message),
  );
  assert.throws(() => binary.json(), TypeError);
  const notJson = (await (async () => {
    await client.send("not json");
    return await server.receive(bounded());
  })())!;
  assert.throws(() => notJson.json(), SyntaxError);
  // The packet's own fields stay plain data: JSON gives time, data and address only.
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(text))), ["time", "data", "address"]);
  assert.equal(text.connection.address, client.localAddress);
});
