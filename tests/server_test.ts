// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { generateKeyPair } from "../cipher.ts";
import { ClientNetwork } from "../client.ts";
import { AuthenticationError, RefusedError } from "../errors.ts";
import { ServerNetwork } from "../server.ts";
import {
  activityOf,
  bounded,
  hasIpv6Loopback,
  HOST,
  nextActivity,
  preamble,
  readToEnd,
  rejection,
  Subprocess,
  within,
} from "./_network.ts";

Deno.test("new ServerNetwork(host, 0) listens on a chosen port readable from port and address", async () => {
  const server = new ServerNetwork(HOST, 0);
  try {
    await within(server.ready, "the server to be ready");
    assert.ok(Number.isInteger(server.port) && server.port > 0 && server.port < 65536);
    assert.equal(server.hostname, HOST);
    assert.equal(server.address, `${HOST}:${server.port}`);
    assert.equal(server.publicKey.length, 32);
    // The port is really listening.
    const conn = await Deno.connect({ hostname: HOST, port: server.port });
    conn.close();
  } finally {
    await server.stop();
  }
});

Deno.test("ServerNetwork.listen() defaults to 127.0.0.1 and a free port", async () => {
  await using server = await ServerNetwork.listen();
  assert.equal(server.hostname, "127.0.0.1");
  assert.ok(server.port > 0);
});

Deno.test("ServerNetwork in the original's style: connections.activity(), getDataOrdinal(), get(address).data, sendTo(), sendAll(), stop()", async () => {
  const server = new ServerNetwork(HOST, 0);
  await within(server.ready, "the server to be ready");
  const alice = new ClientNetwork(HOST, server.port);
  const bob = new ClientNetwork(HOST, server.port);
  try {
    await alice.sendData("alice 1");
    await within(server.connections.wait(), "alice's first packet");
    await bob.sendData("bob 1");
    await alice.sendData("alice 2");
    await bob.sendData(new Uint8Array([0xb0, 0xb2]));
    await within(alice.ready, "alice to connect");
    await within(bob.ready, "bob to connect");
    // Both handshakes are done on the server's side too once accept() has handed them out.
    await server.accept(bounded());
    await server.accept(bounded());

    const connected = [server.connections.activity(), server.connections.activity()];
    assert.deepEqual(connected.map((record) => record?.event), ["connected", "connected"]);
    assert.deepEqual(
      connected.map((record) => record?.address).sort(),
      [alice.localAddress, bob.localAddress].sort(),
    );
    assert.equal(server.connections.activity(), undefined);

    // Wait for all four packets: alice 2 and bob's bytes come last on their connections.
    const aliceConnection = server.connections.get(alice.localAddress)!;
    const bobConnection = server.connections.get(bob.localAddress)!;
    assert.ok(aliceConnection !== undefined && bobConnection !== undefined);
    const first = server.connections.getDataOrdinal(true);
    assert.equal(first?.data, "alice 1");
    assert.equal(first?.address, alice.localAddress);
    assert.equal((await aliceConnection.data.receive(bounded()))?.data, "alice 2");
    assert.equal((await bobConnection.data.receive(bounded()))?.data, "bob 1");
    await within(bobConnection.data.wait(), "bob's bytes");
    const last = server.connections.getDataOrdinal(false);
    assert.ok(last?.data instanceof Uint8Array);
    assert.equal(last.address, bob.localAddress);
    assert.equal(server.connections.getDataOrdinal(), undefined);

    await alice.sendData("alice 3");
    await within(aliceConnection.data.wait(), "alice 3");
    assert.equal(server.connections.get(alice.localAddress)?.data.getData()?.data, "alice 3");

    await server.sendTo("to alice", alice.localAddress);
    assert.equal(await server.sendAll("to everyone"), 2);
    await within(alice.retrieved.wait(), "alice's first reply");
    assert.equal(alice.retrieved.getData()?.data, "to alice");
    assert.equal((await alice.retrieved.receive(bounded()))?.data, "to everyone");
    assert.equal((await bob.retrieved.receive(bounded()))?.data, "to everyone");
    assert.equal(bob.retrieved.length, 0);
  } finally {
    await alice.stop();
    await bob.stop();
    await server.stop();
  }
});

Deno.test("ServerNetwork in the idiomatic style: listen(), for await, { signal } and await using", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  assert.equal(connection.address, client.localAddress);
  for (let i = 0; i < 3; i++) await client.send(`ping ${i}`);
  let seen = 0;
  for await (const packet of server) {
    assert.equal(packet.data, `ping ${seen}`);
    await server.sendTo(`pong ${seen}`, packet.address);
    if (++seen === 3) break;
  }
  for (let i = 0; i < 3; i++) {
    assert.equal((await client.receive(bounded()))?.data, `pong ${i}`);
  }
  const reason = new Error("no more");
  const controller = new AbortController();
  const waiting = server.receive({ signal: controller.signal });
  controller.abort(reason);
  assert.equal(await rejection(waiting, "an aborted server.receive()"), reason);
});

Deno.test("ServerNetwork waits reject with signal.reason when the signal is already aborted", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const reason = new Error("aborted before");
  const signal = AbortSignal.abort(reason);
  assert.equal(await rejection(server.accept({ signal }), "accept()"), reason);
  assert.equal(await rejection(server.receive({ signal }), "receive()"), reason);
  assert.equal(await rejection(server.connections.wait({ signal }), "connections.wait()"), reason);
});

Deno.test({
  name: hasIpv6Loopback()
    ? "ServerNetwork on ::1 formats addresses as [::1]:port"
    : "ServerNetwork on ::1 formats addresses as [::1]:port (skipped: this machine has no IPv6 loopback)",
  ignore: !hasIpv6Loopback(),
  fn: async () => {
    await using server = await ServerNetwork.listen({ hostname: "::1", port: 0 });
    assert.equal(server.hostname, "::1");
    assert.equal(server.address, `[::1]:${server.port}`);
    await using client = await ClientNetwork.connect({ hostname: "::1", port: server.port });
    const connection = await server.accept(bounded());
    assert.match(connection.address, /^\[::1\]:\d+$/);
    assert.equal(connection.address, client.localAddress);
    assert.equal(client.address, `[::1]:${server.port}`);
    await client.send("v6");
    const packet = await server.receive(bounded());
    assert.equal(packet?.address, connection.address);
    assert.equal(server.connections.get(connection.address), connection);
    await server.sendTo("back", connection.address);
    assert.equal((await client.receive(bounded()))?.data, "back");
    assert.equal((await nextActivity(server)).address, connection.address);
  },
});

Deno.test("ServerNetwork.sendTo() to an unknown address throws a RangeError", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await assert.rejects(server.sendTo("x", "127.0.0.1:1"), RangeError);
  await assert.rejects(server.sendTo(42 as unknown as string, "127.0.0.1:1"), RangeError);
});

Deno.test("ServerNetwork.sendAll() reaches every open connection and skips closed ones", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const clients: ClientNetwork[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      clients.push(await ClientNetwork.connect({ hostname: HOST, port: server.port }));
      await server.accept(bounded());
    }
    assert.equal(await server.sendAll("hello all"), 5);
    for (const client of clients) {
      assert.equal((await client.receive(bounded()))?.data, "hello all");
    }
    await within(clients[0].close(), "one client to close");
    await activityOf(server, "disconnected");
    assert.equal(await server.sendAll(new Uint8Array([1])), 4);
    for (const client of clients.slice(1)) {
      assert.deepEqual((await client.receive(bounded()))?.data, new Uint8Array([1]));
    }
    await assert.rejects(server.sendAll(7 as unknown as string), TypeError);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});

Deno.test("ServerNetwork.sendAll() with no connections sends to none", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  assert.equal(await server.sendAll("nobody"), 0);
});

Deno.test("ServerNetwork delivers every packet of 200 concurrent clients exactly once and in per-connection order", async () => {
  const clients = 200;
  const messages = 50;
  // All from one address, all at once: past the per-address defaults.
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    maxPendingHandshakes: clients,
    maxHandshakesPerAddress: clients,
  });
  const connected: ClientNetwork[] = [];
  try {
    const results = await within(
      Promise.allSettled(
        Array.from(
          { length: clients },
          () => ClientNetwork.connect({ hostname: HOST, port: server.port }),
        ),
      ),
      "200 clients to connect",
      60_000,
    );
    for (const result of results) if (result.status === "fulfilled") connected.push(result.value);
    const failed = results.filter((result) => result.status === "rejected");
    assert.equal(failed.length, 0, `connect failures: ${failed.map((f) => String(f.reason))}`);

    const sending = Promise.all(connected.map(async (client, c) => {
      for (let seq = 0; seq < messages; seq++) await client.send(`${c}:${seq}`);
    }));
    const next = new Map<number, number>();
    const addressOf = new Map<number, string>();
    let received = 0;
    await within(
      (async () => {
        while (received < clients * messages) {
          const packet = await server.receive(bounded());
          assert.ok(packet !== undefined, "the server ended early");
          const [c, seq] = (packet.data as string).split(":").map(Number);
          assert.equal(
            seq,
            next.get(c) ?? 0,
            `client ${c}: expected ${next.get(c) ?? 0}, got ${seq}`,
          );
          next.set(c, seq + 1);
          if (!addressOf.has(c)) addressOf.set(c, packet.address);
          assert.equal(packet.address, addressOf.get(c));
          received++;
        }
      })(),
      "10000 packets",
      60_000,
    );
    await within(sending, "the sends");
    assert.equal(next.size, clients);
    for (const [c, count] of next) assert.equal(count, messages, `client ${c}`);
    assert.equal(new Set(addressOf.values()).size, clients);
    assert.equal(server.connections.length, 0);
    assert.equal(server.connections.size, clients);
  } finally {
    await Promise.all(connected.map((client) => client.close()));
  }
});

Deno.test("ServerNetwork with allowedPublicKeys refuses other keys with AuthenticationError unauthorized", async () => {
  const allowed = await generateKeyPair();
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    allowedPublicKeys: [allowed.publicKey],
  });
  const error = await rejection(
    ClientNetwork.connect({ hostname: HOST, port: server.port }),
    "an unlisted client",
  );
  assert.ok(error instanceof AuthenticationError, `got ${error}`);
  assert.equal(error.reason, "unauthorized");
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  assert.equal(record.reason, "unauthorized");
  assert.equal(record.accepted, false);

  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    keyPair: allowed,
  });
  const connection = await server.accept(bounded());
  assert.deepEqual(connection.remotePublicKey, allowed.publicKey);
  assert.equal((await nextActivity(server)).event, "connected");
  await client.send("let in");
  assert.equal((await connection.receive(bounded()))?.data, "let in");
});

Deno.test("ServerNetwork with an authorize callback refusing gives AuthenticationError unauthorized", async () => {
  const asked: { publicKey: Uint8Array; address: string }[] = [];
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    authorize: async (client) => {
      asked.push(client);
      await Promise.resolve();
      return false;
    },
  });
  const keyPair = await generateKeyPair();
  const error = await rejection(
    ClientNetwork.connect({ hostname: HOST, port: server.port, keyPair }),
    "a refused client",
  );
  assert.ok(error instanceof AuthenticationError, `got ${error}`);
  assert.equal(error.reason, "unauthorized");
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  assert.equal(record.reason, "unauthorized");
  assert.equal(asked.length, 1);
  assert.deepEqual(asked[0].publicKey, keyPair.publicKey);
  assert.equal(asked[0].address, record.address);
});

Deno.test("ServerNetwork with an authorize callback admits the clients it allows", async () => {
  const good = await generateKeyPair();
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    authorize: ({ publicKey }) => publicKey.every((byte, i) => byte === good.publicKey[i]),
  });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    keyPair: good,
  });
  assert.equal((await nextActivity(server)).event, "connected");
  await assert.rejects(
    ClientNetwork.connect({ hostname: HOST, port: server.port }),
    AuthenticationError,
  );
  assert.equal((await nextActivity(server)).reason, "unauthorized");
  await client.send("still here");
  assert.equal((await server.receive(bounded()))?.data, "still here");
});

Deno.test("ServerNetwork with an authorize callback that throws refuses the client and keeps serving", async () => {
  let calls = 0;
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    authorize: () => {
      if (calls++ === 0) throw new Error("database down");
      return true;
    },
  });
  await rejection(ClientNetwork.connect({ hostname: HOST, port: server.port }), "the first client");
  assert.equal((await nextActivity(server)).event, "refused");
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  assert.equal((await nextActivity(server)).event, "connected");
  await client.send("ok");
  assert.equal((await server.receive(bounded()))?.data, "ok");
});

Deno.test("ServerNetwork with allowedHostnames refuses other addresses with unauthorized", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    allowedHostnames: ["192.0.2.1"],
  });
  const error = await rejection(
    ClientNetwork.connect({ hostname: HOST, port: server.port }),
    "a client from an unlisted address",
  );
  assert.ok(error instanceof AuthenticationError, `got ${error}`);
  assert.equal(error.reason, "unauthorized");
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  assert.equal(record.reason, "unauthorized");
});

Deno.test("ServerNetwork at maxConnections refuses with RefusedError server-full, then accepts once a slot frees", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, maxConnections: 2 });
  const first = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await using second = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const firstConnection = await server.accept(bounded());
  await server.accept(bounded());
  assert.equal((await nextActivity(server)).event, "connected");
  assert.equal((await nextActivity(server)).event, "connected");

  const error = await rejection(
    ClientNetwork.connect({ hostname: HOST, port: server.port }),
    "a third client",
  );
  assert.ok(error instanceof RefusedError, `got ${error}`);
  assert.equal(error.reason, "server-full");
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  assert.equal(record.reason, "server-full");
  assert.equal(record.accepted, false);

  await within(first.close(), "the first client to close");
  await within(firstConnection.closed, "the server to see it close");
  assert.equal((await nextActivity(server)).event, "disconnected");
  await using third = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  assert.equal((await nextActivity(server)).event, "connected");
  await third.send("made it");
  assert.equal((await server.receive(bounded()))?.data, "made it");
  assert.equal(second.connection.isClosed, false);
});

Deno.test("ServerNetwork does not count a handshake in progress against maxConnections", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, maxConnections: 1 });
  const silent = await Deno.connect({ hostname: HOST, port: server.port });
  try {
    // The silent peer holds a handshake slot, not the only connection slot.
    await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
    const connected = await activityOf(server, "connected");
    assert.equal(connected.address, client.localAddress);
  } finally {
    silent.close();
  }
});

Deno.test("ServerNetwork refuses past maxPendingHandshakes with server-busy, logged once for the burst", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    maxPendingHandshakes: 1,
  });
  const silent = await Deno.connect({ hostname: HOST, port: server.port });
  try {
    for (let i = 0; i < 3; i++) {
      const error = await rejection(
        ClientNetwork.connect({ hostname: HOST, port: server.port }),
        "a client while the only handshake slot is held",
      );
      assert.ok(error instanceof RefusedError, `got ${error}`);
      assert.equal(error.reason, "server-busy");
    }
    const first = await nextActivity(server);
    assert.deepEqual([first.event, first.reason, first.count], [
      "refused",
      "server-busy",
      undefined,
    ]);
    const summary = await nextActivity(server);
    assert.deepEqual([summary.event, summary.reason, summary.count], ["refused", "server-busy", 2]);
  } finally {
    silent.close();
  }
  await activityOf(server, "refused"); // The silent peer's end.
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  assert.equal((await activityOf(server, "connected")).address, client.localAddress);
});

Deno.test("ServerNetwork refuses a peer that sends nothing with reason timeout after handshakeTimeout", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    handshakeTimeout: 200,
  });
  using conn = await Deno.connect({ hostname: HOST, port: server.port });
  const address = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  assert.equal(record.reason, "timeout");
  assert.equal(record.accepted, false);
  assert.equal(record.address, address);
  // The server closed the socket: at most a Refuse frame, then the end.
  const rest = await within(readToEnd(conn), "the server to close the socket");
  assert.ok(rest.length === 0 || rest[0] === 0x02, `got ${rest}`);
});

Deno.test("ServerNetwork closes a non-aesm peer without a word and then serves a normal client", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  using http = await Deno.connect({ hostname: HOST, port: server.port });
  await http.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const answer = await within(readToEnd(http), "the server to drop the HTTP peer");
  assert.equal(answer.length, 0);
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  assert.equal(record.accepted, false);

  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await client.send("normal");
  assert.equal((await server.receive(bounded()))?.data, "normal");
});

Deno.test("ServerNetwork keeps serving clients while a raw peer sits silent in its handshake", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  using silent = await Deno.connect({ hostname: HOST, port: server.port });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await client.send("not blocked");
  assert.equal((await server.receive(bounded()))?.data, "not blocked");
  assert.equal(silent.remoteAddr.port, server.port);
});

Deno.test("ServerNetwork refuses a raw peer that sends only the preamble and hangs up, and logs no connection", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const conn = await Deno.connect({ hostname: HOST, port: server.port });
  const address = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
  await conn.write(await preamble());
  conn.close();
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  assert.equal(record.address, address);
  assert.equal(record.accepted, false);
  assert.equal(record.reason, "aborted");
  assert.equal(server.connections.size, 0);
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connected = await nextActivity(server);
  assert.equal(connected.event, "connected");
  assert.equal(connected.address, client.localAddress);
});

Deno.test("ServerNetwork reports a client killed without a close as truncated or reset, not clean", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using child = new Subprocess(`
    import { ClientNetwork } from ${JSON.stringify(new URL("../client.ts", import.meta.url).href)};
    const client = await ClientNetwork.connect({ hostname: "${HOST}", port: ${server.port} });
    await client.send("alive");
    await client.flush();
    console.log("sent");
    await client.closed;
  `);
  const connection = await server.accept({ signal: AbortSignal.timeout(30_000) });
  assert.equal((await connection.receive(bounded()))?.data, "alive");
  assert.equal(await child.line("the child's send"), "sent");
  await child.kill();
  const info = await within(connection.closed, "the server to see the cut");
  assert.equal(info.clean, false);
  assert.ok(info.reason === "truncated" || info.reason === "reset", `got ${info.reason}`);
  const record = await activityOf(server, "disconnected");
  assert.equal(record.clean, false);
  assert.ok(record.reason === "truncated" || record.reason === "reset", `got ${record.reason}`);
  assert.equal(record.address, connection.address);
});

Deno.test("ServerNetwork.stop() closes clients with reason shutdown, resolves, and may be called twice", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    reconnect: false, // Its closed then tells how the server ended it.
  });
  const connection = await server.accept(bounded());
  await client.send("before stop");
  assert.equal((await server.receive(bounded()))?.data, "before stop");
  const stopping = server.stop();
  const again = server.stop();
  await within(stopping, "stop()");
  await within(again, "the second stop()");
  await within(server.stop(), "a stop() after the stop");
  const info = await within(client.closed, "the client to see the shutdown");
  assert.equal(info.reason, "shutdown");
  assert.equal(info.clean, true);
  assert.equal((await connection.closed).reason, "shutdown");
  assert.equal(connection.isClosed, true);
  const record = await activityOf(server, "disconnected");
  assert.equal(record.reason, "shutdown");
  assert.equal(record.clean, true);
  assert.equal(await server.receive(), undefined);
  assert.equal(await server.connections.wait(), false);
  // The port is free again.
  using _listener = Deno.listen({ hostname: HOST, port: server.port });
});

Deno.test("ServerNetwork.stop() keeps packets already received readable", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  await client.send("kept");
  await within(connection.data.wait(), "the packet");
  await within(server.stop(), "stop()");
  assert.equal(server.connections.length, 1);
  assert.equal((await server.receive())?.data, "kept");
  assert.equal(await server.receive(), undefined);
});

Deno.test("ServerNetwork.accept() rejects with a TypeError once the server has stopped, as documented", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const waiting = server.accept();
  await within(server.stop(), "stop()");
  const error = await rejection(waiting, "accept() across stop()");
  assert.ok(error instanceof TypeError, `got ${error}`);
  const later = await rejection(server.accept(), "accept() after stop()");
  assert.ok(later instanceof TypeError, `got ${later}`);
});

Deno.test("ServerNetwork.stop() ends handshakes in progress and logs them as aborted", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  using silent = await Deno.connect({ hostname: HOST, port: server.port });
  await silent.write((await preamble()).subarray(0, 8));
  await within(server.stop(), "stop() with a handshake in progress");
  const rest = await within(readToEnd(silent), "the silent peer to be closed");
  assert.ok(rest.length === 0 || rest[0] === 0x02);
  const record = await nextActivity(server);
  assert.equal(record.event, "refused");
  // The operator stopped the server: the log must not blame a timeout.
  assert.equal(record.reason, "aborted", `logged as ${record.reason}: ${record.message}`);
});

Deno.test("ServerNetwork lists a connection until it has closed and its packets are taken", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  const address = connection.address;
  assert.deepEqual(server.connections.addresses(), [address]);
  assert.deepEqual([...server.connections], [connection]);
  await client.send("left behind");
  await within(client.close(), "the client to close");
  await within(connection.closed, "the server side to close");
  assert.ok(server.connections.has(address));
  assert.equal(server.connections.getDataOrdinal()?.data, "left behind");
  assert.equal(server.connections.has(address), false);
  assert.equal(server.connections.size, 0);
});

Deno.test("ServerNetwork rejects bad options with TypeError or RangeError", async () => {
  assert.throws(() => new ServerNetwork("", 0), TypeError);
  assert.throws(() => new ServerNetwork(HOST, 65536), RangeError);
  assert.throws(() => new ServerNetwork(HOST, 0, { maxConnections: 0 }), RangeError);
  assert.throws(() => new ServerNetwork(HOST, 0, { psk: new Uint8Array(16) }), RangeError);
  assert.throws(() => new ServerNetwork(HOST, 0, { maxMessageSize: 2 ** 32 }), RangeError);
  assert.throws(() => new ServerNetwork(HOST, 0, { handshakeTimeout: -5 }), RangeError);
  const bad = new ServerNetwork(HOST, 0, {
    keyPair: { publicKey: new Uint8Array(32), privateKey: new Uint8Array(32).fill(1) },
  });
  await assert.rejects(bad.ready, TypeError);
  await bad.stop();
});

Deno.test("ServerNetwork.publicKey throws a TypeError before the server is ready", async () => {
  const server = new ServerNetwork(HOST, 0);
  assert.throws(() => server.publicKey, TypeError);
  await within(server.ready, "the server to be ready");
  assert.equal(server.publicKey.length, 32);
  await server.stop();
});

Deno.test("connections.wait({ activity: true }) wakes on a join and a leave with no packet, and ends false after stop()", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const waiting = server.connections.wait({ activity: true, ...bounded() });
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  assert.equal(await waiting, true);
  assert.equal(server.connections.length, 0, "woken by the join, not by a packet");
  assert.equal(server.connections.activity()?.event, "connected");
  const leaving = server.connections.wait({ activity: true, ...bounded() });
  await client.close();
  assert.equal(await leaving, true);
  assert.equal(server.connections.activity()?.event, "disconnected");
  await server.stop();
  assert.equal(await server.connections.wait({ activity: true }), false);
});

Deno.test("ServerNetwork refuses with server-full a handshake that finishes after the last slot was taken", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, maxConnections: 1 });
  // Both are admitted (no connection yet); the first to finish takes the only slot.
  const results = await within(
    Promise.allSettled(
      [0, 1].map(() => ClientNetwork.connect({ hostname: HOST, port: server.port })),
    ),
    "two clients at once",
  );
  const connected = results.filter((r) => r.status === "fulfilled");
  const refused = results.filter((r) => r.status === "rejected");
  assert.equal(connected.length, 1);
  assert.equal(refused.length, 1);
  const error = (refused[0] as PromiseRejectedResult).reason;
  assert.ok(error instanceof RefusedError, `got ${error}`);
  assert.equal(error.reason, "server-full");
  assert.equal(server.connections.size, 1);
  const record = await activityOf(server, "refused");
  assert.equal(
    record.message,
    "Cannot accept client: server-full",
    "refused at the slot, not at accept",
  );
  await (connected[0] as PromiseFulfilledResult<ClientNetwork>).value.close();
});
