// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { formatAddress } from "../connection.ts";
import { ConnectionClosedError } from "../errors.ts";
import { ServerNetwork } from "../server.ts";
import {
  activityOf,
  bounded,
  HOST,
  pattern,
  pendingAfter,
  rejection,
  turn,
  within,
} from "./_network.ts";

/** A server, a client, and the server's side of their connection. */
async function pair(serverOptions = {}, clientOptions = {}) {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0, ...serverOptions });
  // One connection's life: the client does not reconnect when it ends.
  const client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    reconnect: false,
    ...clientOptions,
  });
  const connection = await server.accept(bounded());
  return {
    server,
    client,
    connection,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.stop();
    },
  };
}

Deno.test("Connection.send() rejects values that are neither strings nor Uint8Array with a TypeError", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  const wrong: unknown[] = [
    42,
    0,
    NaN,
    { data: "x" },
    ["a"],
    null,
    undefined,
    true,
    new ArrayBuffer(4),
    new DataView(new ArrayBuffer(4)),
    new Uint16Array(2),
    Symbol("s"),
    12n,
  ];
  for (const value of wrong) {
    await assert.rejects(
      connection.send(value as string),
      TypeError,
      `server send(${String(value)})`,
    );
    await assert.rejects(client.send(value as string), TypeError, `client send(${String(value)})`);
  }
  assert.equal(connection.isClosed, false);
  await client.send("still fine");
  assert.equal((await connection.receive(bounded()))?.data, "still fine");
});

Deno.test("Connection.send() after close() rejects with ConnectionClosedError carrying the reason", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  await within(connection.close(), "close()");
  const error = await rejection(connection.send("late"), "a send after close");
  assert.ok(error instanceof ConnectionClosedError, `got ${error}`);
  assert.equal(error.reason, "normal");
  assert.match(error.message, /closed/);
  await within(client.closed, "the client to see the close");
  const remote = await rejection(client.send("late too"), "a send on the closed client");
  assert.ok(remote instanceof ConnectionClosedError);
  assert.equal(remote.reason, "normal");
});

Deno.test("Connection.send() after a shutdown close reports reason shutdown", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  await within(connection.close({ reason: "shutdown", message: "maintenance" }), "close()");
  const info = await within(client.closed, "the client to see the close");
  assert.equal(info.reason, "shutdown");
  assert.equal(info.message, "maintenance");
  const error = await rejection(client.send("x"), "a send after shutdown");
  assert.ok(error instanceof ConnectionClosedError);
  assert.equal(error.reason, "shutdown");
});

Deno.test("Connection.close() is idempotent and reports the same end each time", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  const first = connection.close();
  const second = connection.close({ reason: "shutdown" });
  assert.equal(connection.isClosed, true);
  const [a, b] = await within(Promise.all([first, second]), "both close() calls");
  assert.equal(a, b);
  assert.equal(a.reason, "normal");
  assert.equal(a.clean, true);
  assert.equal(a.by, "local");
  assert.equal(await connection.close(), a);
  assert.equal(await connection.closed, a);
  assert.equal((await within(client.closed, "the client's closed")).reason, "normal");
});

Deno.test("Connection[Symbol.asyncDispose]() closes the connection cleanly", async () => {
  await using peers = await pair();
  const { server, client } = peers;
  {
    await using connection = peers.connection;
    assert.equal(connection.isClosed, false);
  }
  assert.equal(peers.connection.isClosed, true);
  const info = await within(client.closed, "the client to see the close");
  assert.equal(info.reason, "normal");
  assert.equal(info.clean, true);
  const record = await activityOf(server, "disconnected");
  assert.equal(record.reason, "normal");
});

Deno.test("Connection iteration yields packets until the peer closes", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  for (let i = 0; i < 10; i++) await client.send(`n${i}`);
  await within(client.close(), "the client to close");
  const seen: string[] = [];
  await within(
    (async () => {
      for await (const packet of connection) seen.push(packet.data as string);
    })(),
    "the iteration to end",
  );
  assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => `n${i}`));
});

Deno.test("Connection.send() copies the bytes, so the caller may reuse its buffer at once", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  const buffer = new Uint8Array([1, 2, 3, 4]);
  const sending = client.send(buffer);
  buffer.fill(9);
  await sending;
  assert.deepEqual((await connection.receive(bounded()))?.data, new Uint8Array([1, 2, 3, 4]));
});

Deno.test("Connection addresses and keys match across the two ends", async () => {
  await using peers = await pair();
  const { connection, client, server } = peers;
  assert.equal(connection.address, client.localAddress);
  assert.equal(connection.localAddress, client.address);
  assert.equal(connection.localAddress, server.address);
  assert.deepEqual(connection.remotePublicKey, client.publicKey);
  assert.deepEqual(client.connection.remotePublicKey, server.publicKey);
  assert.deepEqual(connection.handshakeHash, client.connection.handshakeHash);
  assert.equal(connection.peerMaxMessageSize, 16 * 1024 * 1024);
});

Deno.test("formatAddress() brackets IPv6 hosts", () => {
  assert.equal(
    formatAddress({ transport: "tcp", hostname: "127.0.0.1", port: 80 }),
    "127.0.0.1:80",
  );
  assert.equal(formatAddress({ transport: "tcp", hostname: "::1", port: 443 }), "[::1]:443");
});

Deno.test("Connection.flush() resolves at once when nothing waits, and after a close", async () => {
  await using peers = await pair();
  const { connection } = peers;
  await within(connection.flush(), "flush() with nothing sent");
  await connection.send("x");
  await within(connection.flush(), "flush() after a send");
  await within(connection.close(), "close()");
  await within(connection.flush(), "flush() after a clean close");
});

Deno.test("Connection backpressure: a reader that reads nothing stalls the sender, holds at most highWaterMark, then gets every byte in order", async () => {
  const highWaterMark = 64 * 1024;
  const size = 64 * 1024;
  const total = 512; // 32 MiB
  await using peers = await pair({ highWaterMark });
  const { connection, client } = peers;
  const message = (i: number) => {
    const bytes = new Uint8Array(size);
    for (let j = 0; j < size; j++) bytes[j] = (i * 7 + j) & 0xff;
    new DataView(bytes.buffer).setUint32(0, i);
    return bytes;
  };
  const bound = highWaterMark + size + 64 * 1024;

  // Send until a send() stays pending across many event-loop turns: the sender is stalled.
  let sent = 0;
  let stalled: Promise<void> | undefined;
  while (sent < total) {
    const sending = client.send(message(sent++));
    if (await pendingAfter(sending, 50)) {
      stalled = sending;
      break;
    }
    assert.ok(connection.data.bytes <= bound, `server holds ${connection.data.bytes} bytes`);
  }
  assert.ok(stalled !== undefined, "the sender never stalled while the reader read nothing");
  assert.ok(sent < total);
  assert.ok(sent * size > highWaterMark + size, `stalled after only ${sent} messages`);
  for (let i = 0; i < 50; i++) {
    assert.ok(connection.data.bytes <= bound, `server holds ${connection.data.bytes} bytes`);
    assert.ok(connection.data.bytes > 0);
    await turn();
  }
  assert.ok(await pendingAfter(stalled, 10), "the sender stays stalled while nothing is read");

  // Now read: everything arrives, whole and in order, and the sender finishes.
  const sending = (async () => {
    await stalled;
    while (sent < total) await client.send(message(sent++));
  })();
  const reading = (async () => {
    for (let i = 0; i < total; i++) {
      const packet = await connection.receive(bounded());
      assert.ok(packet?.data instanceof Uint8Array, `message ${i} arrived`);
      const data = packet.data;
      assert.equal(new DataView(data.buffer, data.byteOffset).getUint32(0), i);
      assert.equal(data.length, size);
      for (let j = 4; j < size; j++) {
        if (data[j] !== ((i * 7 + j) & 0xff)) assert.fail(`message ${i} differs at byte ${j}`);
      }
      assert.ok(connection.data.bytes <= bound);
    }
  })();
  await within(Promise.all([sending, reading]), "32 MiB to arrive", 60_000);
  assert.equal(connection.data.length, 0);
  assert.equal(connection.data.bytes, 0);
});

Deno.test("Connection backpressure: a full queue pauses reading without dropping what the peer sent", async () => {
  await using peers = await pair({ highWaterMark: 1024 });
  const { connection, client } = peers;
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) sends.push(client.send(pattern(1000, i)));
  await within(Promise.all(sends), "the sends to be accepted");
  await within(client.flush(), "the client to flush");
  for (let i = 0; i < 200; i++) {
    const packet = await connection.receive(bounded());
    assert.deepEqual(packet?.data, pattern(1000, i));
  }
  assert.ok(!(await pendingAfter(client.send("end"), 50)));
  assert.equal((await connection.receive(bounded()))?.data, "end");
});

Deno.test("Connection.closed resolves once, and queued packets stay readable after the end", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  await client.send("one");
  await client.send("two");
  const info = await within(client.close(), "the client to close");
  const remote = await within(connection.closed, "the server side to close");
  assert.equal(info.clean, true);
  assert.equal(remote.clean, true);
  assert.equal(connection.data.closed, true);
  assert.equal(connection.data.length, 2);
  assert.equal((await connection.receive())?.data, "one");
  assert.equal((await connection.receive())?.data, "two");
  assert.equal(await connection.receive(), undefined);
});

Deno.test("Connection.close() right after unawaited sends delivers every message before the close", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) sends.push(client.send(pattern(10_000, i)));
  const info = await within(client.close(), "the client to close");
  assert.equal(info.clean, true);
  await within(Promise.all(sends), "the sends");
  for (let i = 0; i < 300; i++) {
    const packet = await connection.receive(bounded());
    assert.deepEqual(packet?.data, pattern(10_000, i), `message ${i}`);
  }
  assert.equal(await connection.receive(bounded()), undefined);
  assert.equal((await connection.closed).reason, "normal");
});

Deno.test("Connection.close() without a message does not tell the peer it closed by itself", async () => {
  await using peers = await pair();
  const { connection, client } = peers;
  await within(client.close(), "the client to close");
  const remote = await within(connection.closed, "the server side to close");
  assert.equal(remote.by, "remote");
  assert.doesNotMatch(remote.message, /this side/, `the server was told: "${remote.message}"`);
});

for (const [name, character] of [["2-byte", "é"], ["3-byte", "€"], ["4-byte", "😀"]] as const) {
  Deno.test(`Connection.close() cuts a long message on a character boundary (${name} characters)`, async () => {
    await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
    await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
    const connection = await server.accept(bounded());
    // ASCII bytes first, as many as put byte 256 inside a character of this width.
    const width = new TextEncoder().encode(character).length;
    const prefix = "x".repeat(width === 3 ? 2 : 1);
    const message = prefix + character.repeat(200);
    const info = await within(connection.close({ message }), "the close");
    assert.equal(info.clean, true);
    const seen = await within(client.closed, "the client to see the close");
    assert.deepEqual([seen.reason, seen.clean], ["normal", true]);
    const bytes = new TextEncoder().encode(seen.message).length;
    assert.equal(
      seen.message,
      prefix + character.repeat(Math.floor((256 - prefix.length) / width)),
    );
    assert.ok(bytes <= 256);
  });
}

for (
  const [serverCrypto, clientCrypto] of [["webcrypto", "auto"], ["auto", "webcrypto"]] as const
) {
  Deno.test(`A server on ${serverCrypto} and a client on ${clientCrypto} exchange small and large messages through rekeys`, async () => {
    const options = (crypto: "auto" | "webcrypto") => ({ crypto, rekeyAfterBytes: 100_000 });
    await using peers = await pair(options(serverCrypto), options(clientCrypto));
    const { connection, client } = peers;
    const sizes = [0, 1, 64, 4000, 4096, 5000, 65519, 65520, 300_000, 1_000_000];
    const messages = sizes.map((size) =>
      crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)))
    ).map(
      (head, i) => {
        const message = new Uint8Array(sizes[i]);
        for (let offset = 0; offset < message.length; offset += head.length) {
          message.set(head.subarray(0, Math.min(head.length, message.length - offset)), offset);
        }
        return message;
      },
    );
    for (const [from, to] of [[connection, client], [client, connection]] as const) {
      for (const message of messages) await from.send(message);
      for (const [i, message] of messages.entries()) {
        const packet = await to.receive(bounded());
        assert.deepEqual(packet?.data, message, `message ${i} of ${sizes[i]} bytes`);
      }
    }
    assert.deepEqual(client.handshakeHash, connection.handshakeHash);
  });
}

Deno.test("The crypto option accepts auto and webcrypto and rejects anything else with a TypeError", async () => {
  for (const crypto of ["WebCrypto", "node", "", 1, null]) {
    assert.throws(
      () => new ServerNetwork(HOST, 0, { crypto: crypto as "auto" }),
      /Cannot use option crypto: expected "auto" or "webcrypto", got/,
    );
    await assert.rejects(
      ClientNetwork.connect({ hostname: HOST, port: 1, crypto: crypto as "auto" }),
      TypeError,
    );
  }
});
