// Copyright 2026 the aesm authors. MIT license.
// Identity per connection (not per address), sendTo targets, broadcasts judged per peer,
// accept() and listen errors.
import assert from "node:assert/strict";
import net from "node:net";
import { ClientNetwork } from "../client.ts";
import type { Connection } from "../connection.ts";
import { ConnectionClosedError } from "../errors.ts";
import { ServerNetwork } from "../server.ts";
import { bounded, HOST, within } from "./_network.ts";

/**
 * A TCP forwarder to `port` whose upstream connections all leave from one
 * local port, one at a time: the server sees every client at the same
 * address. A client's end resets its upstream, so no TIME_WAIT blocks the
 * next one.
 */
class SamePortForwarder implements AsyncDisposable {
  readonly listener = Deno.listen({ hostname: HOST, port: 0 });
  readonly localPort = 20_000 + Math.floor(Math.random() * 20_000);
  #loop: Promise<void>;

  constructor(readonly port: number) {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    for await (const conn of this.listener) await this.#forward(conn);
  }

  async #forward(conn: Deno.Conn): Promise<void> {
    const upstream = net.connect({
      host: HOST,
      port: this.port,
      localAddress: HOST,
      localPort: this.localPort,
    });
    upstream.on("data", (chunk: Uint8Array) => void conn.write(chunk).catch(() => {}));
    upstream.on("close", () => conn.close());
    upstream.on("error", () => {});
    (async () => {
      try {
        for await (const chunk of conn.readable) upstream.write(chunk);
      } catch {
        // The client went away.
      }
      upstream.resetAndDestroy();
    })();
    await new Promise((resolve) => upstream.once("connect", resolve).once("error", resolve));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    await this.#loop.catch(() => {});
  }
}

Deno.test("two connections from one address in turn keep their own identity, packets and replies", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using forwarder = new SamePortForwarder(server.port);
  const address = `${HOST}:${forwarder.localPort}`;

  const a = await ClientNetwork.connect({ hostname: HOST, port: forwarder.listener.addr.port });
  await a.send("request from a");
  const fromA = await server.accept(bounded());
  await within(fromA.data.wait(), "a's request");
  await a.close();
  await within(fromA.closed, "a's connection to end");

  await using b = await ClientNetwork.connect({
    hostname: HOST,
    port: forwarder.listener.addr.port,
  });
  await b.send("request from b");
  const fromB = await server.accept(bounded());
  await within(fromB.data.wait(), "b's request");

  assert.equal(fromA.address, address);
  assert.equal(fromB.address, address);
  assert.notEqual(fromA.id, fromB.id);
  assert.equal(server.connections.size, 2, "b did not replace a");
  assert.equal(server.connections.get(fromA.id), fromA);
  assert.equal(server.connections.get(fromB.id), fromB);
  assert.equal(server.connections.get(address), fromA, "an address gives the earliest");
  await assert.rejects(server.sendTo("to whom?", address), /2 connections from/);

  const packetA = (await server.receive(bounded()))!;
  const packetB = (await server.receive(bounded()))!;
  assert.deepEqual([packetA.text(), packetB.text()], ["request from a", "request from b"]);
  assert.equal(packetA.address, packetB.address);
  assert.equal(packetA.connection, fromA);
  assert.equal(packetB.connection, fromB);
  assert.deepEqual(packetA.publicKey, a.publicKey);
  assert.deepEqual(packetB.publicKey, b.publicKey);

  // A's reply never reaches b.
  await assert.rejects(server.sendTo("reply to a", packetA), ConnectionClosedError);
  await assert.rejects(packetA.connection.send("reply to a"), ConnectionClosedError);
  await server.sendTo("reply to b", packetB);
  await packetB.connection.send("second reply to b");
  assert.equal((await b.receive(bounded()))?.text(), "reply to b");
  assert.equal((await b.receive(bounded()))?.text(), "second reply to b");
  assert.equal(b.retrieved.length, 0);

  // Once a is read out, it is forgotten and the address names b alone.
  assert.equal(server.connections.has(fromA.id), false);
  assert.equal(server.connections.get(address), fromB);
  await server.sendTo("by address", address);
  assert.equal((await b.receive(bounded()))?.text(), "by address");
});

Deno.test("ServerNetwork.sendTo() takes a connection, a packet, an id or an address, and names what it got", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  await client.send("hi");
  const packet = (await server.receive(bounded()))!;
  await server.sendTo("1", connection);
  await server.sendTo("2", packet);
  await server.sendTo("3", connection.id);
  await server.sendTo("4", connection.address);
  for (const expected of ["1", "2", "3", "4"]) {
    assert.equal((await client.receive(bounded()))?.text(), expected);
  }
  await assert.rejects(server.sendTo("x", 1e9), /no connection with id 1000000000/);
  await assert.rejects(server.sendTo("x", "127.0.0.1:1"), /no connection from 127\.0\.0\.1:1/);
  await assert.rejects(
    server.sendTo("x", { address: connection.address } as unknown as Connection),
    (error) => error instanceof TypeError && /got an object \(Object\)/.test(error.message),
  );
});

Deno.test("ServerNetwork.sendAll() skips a peer whose maxMessageSize is too small and broadcast() reports it", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using small = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    maxMessageSize: 65536, // The smallest there is (PROTOCOL.md section 4).
  });
  const toSmall = await server.accept(bounded());
  await using large = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await server.accept(bounded());

  const hello = "hello everyone ".repeat(4370); // 65550 bytes
  assert.equal(await server.sendAll(hello), 1);
  assert.equal((await large.receive(bounded()))?.text(), hello);
  const again = "a".repeat(65537);
  const report = await server.broadcast(again);
  assert.equal(report.sent, 1);
  assert.deepEqual(report.tooLarge, [toSmall]);
  assert.deepEqual(report.failed, []);
  assert.equal((await large.receive(bounded()))?.text(), again);
  assert.equal(await server.sendAll("x"), 2); // One byte fits both.
  assert.equal((await small.receive(bounded()))?.text(), "x");
  assert.equal(small.retrieved.length, 0, "nothing over its limit reached the small peer");
});

Deno.test("ServerNetwork.accept() returns a connection that ended before it was accepted, closed, its packets readable", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const gone = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await gone.send("last words");
  await gone.close();
  while (server.activity.length < 2) await server.activity.wait(bounded()).then(() => turnOver());
  const connection = await server.accept(bounded());
  assert.equal(connection.address, gone.localAddress);
  assert.equal(connection.isClosed, true);
  assert.equal((await connection.closed).reason, "normal");
  assert.equal((await connection.receive(bounded()))?.text(), "last words");
  await assert.rejects(connection.send("too late"), ConnectionClosedError);
});

/** Lets the activity log's writer run. */
function turnOver(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}

Deno.test("new ServerNetwork() on a port in use throws AddrInUse naming the address and what to do", async () => {
  await using first = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  assert.throws(
    () => new ServerNetwork(HOST, first.port),
    (error) =>
      error instanceof Deno.errors.AddrInUse &&
      error.message.includes(`${HOST}:${first.port}`) &&
      /another port \(0 picks a free one\)/.test(error.message) &&
      error.cause instanceof Deno.errors.AddrInUse,
  );
});

Deno.test("a port given as a string is a TypeError that says it got a string", () => {
  assert.throws(
    () => new ServerNetwork(HOST, "7000" as unknown as number),
    (error) =>
      error instanceof TypeError && /got the string "7000" \(convert it with Number\(\)\)/.test(
        error.message,
      ),
  );
  assert.throws(
    () => new ClientNetwork(HOST, "7000" as unknown as number),
    (error) => error instanceof TypeError && /got the string "7000"/.test(error.message),
  );
  assert.throws(
    () => new ServerNetwork(HOST, 70000),
    (error) => error instanceof RangeError && /got 70000/.test(error.message),
  );
  assert.throws(
    () => new ServerNetwork(HOST, 0, { maxConnections: "5" as unknown as number }),
    (error) =>
      error instanceof TypeError && /maxConnections.*got the string "5"/.test(error.message),
  );
});
