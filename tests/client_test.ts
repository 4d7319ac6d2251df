// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { generateKeyPair } from "../cipher.ts";
import { ClientNetwork } from "../client.ts";
import type { CloseInfo } from "../connection.ts";
import {
  AuthenticationError,
  ConnectError,
  ConnectionClosedError,
  HandshakeError,
  MessageTooLargeError,
  RefusedError,
  TimeoutError,
} from "../errors.ts";
import { FrameType } from "../framing.ts";
import { ServerNetwork, type ServerOptions } from "../server.ts";
import {
  activityOf,
  bounded,
  HOST,
  nextActivity,
  pattern,
  rejection,
  Relay,
  Subprocess,
  within,
} from "./_network.ts";

function psk(fill: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(32).fill(fill);
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Connects a client the server refuses; returns the client's error and the server's record. */
async function refused(serverOptions: ServerOptions, clientOptions: Record<string, unknown>) {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, ...serverOptions });
  const error = await rejection(
    ClientNetwork.connect({ hostname: HOST, port: server.port, ...clientOptions }),
    "a refused connect",
  );
  const record = await activityOf(server, "refused");
  assert.equal(record.accepted, false);
  assert.equal(server.connections.size, 0);
  return { error, record };
}

Deno.test("new ClientNetwork(host, port) sends with sendData() before it is connected, and fills retrieved", async () => {
  const server = new ServerNetwork(HOST, 0);
  await within(server.ready, "the server to be ready");
  const client = new ClientNetwork(HOST, server.port);
  await client.sendData("hello");
  await client.sendData(new Uint8Array([7, 8, 9]));
  await within(client.ready, "the client to connect");
  const connection = await server.accept(bounded());
  assert.equal((await connection.receive(bounded()))?.data, "hello");
  assert.deepEqual((await connection.receive(bounded()))?.data, new Uint8Array([7, 8, 9]));

  await server.sendTo("one", client.localAddress);
  await server.sendTo("two", client.localAddress);
  await server.sendTo("three", client.localAddress);
  await connection.close();
  await within(client.closed, "the client to see the close");
  assert.equal(client.retrieved.length, 3);
  assert.equal(client.retrieved.at(0)?.data, "one");
  assert.equal(client.retrieved.at(-1)?.data, "three");
  assert.equal(client.retrieved.at(1)?.data, "two");
  assert.equal(client.retrieved.getData()?.data, "one");
  assert.equal(client.retrieved.length, 2);
  assert.equal(client.retrieved.getData()?.data, "two");
  assert.equal(client.retrieved.getData()?.data, "three");
  assert.equal(client.retrieved.getData(), undefined);
  assert.equal(client.retrieved.length, 0);
  await client.stop();
  await server.stop();
});

Deno.test("ClientNetwork.connect() with await using and for await receives until the server closes", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  assert.equal(client.address, `${HOST}:${server.port}`);
  const connection = await server.accept(bounded());
  assert.equal(client.localAddress, connection.address);
  assert.equal(client.address, connection.localAddress);
  for (let i = 0; i < 5; i++) await connection.send(`message ${i}`);
  await connection.close();
  const received: string[] = [];
  await within(
    (async () => {
      for await (const packet of client) received.push(packet.data as string);
    })(),
    "the client's iteration to end",
  );
  assert.deepEqual(received, [0, 1, 2, 3, 4].map((i) => `message ${i}`));
  const info = await within(client.closed, "the client's closed");
  assert.equal(info.reason, "normal");
  assert.equal(info.clean, true);
});

Deno.test("ClientNetwork sends strings as strings and Uint8Array as bytes, both ways", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  const backing = pattern(64, 1);
  const messages: (string | Uint8Array)[] = [
    "text",
    "",
    "ünïcödé 😀",
    "\u0000",
    "\uFEFFkeeps its byte order mark",
    new Uint8Array(0),
    new Uint8Array([0x68, 0x69]),
    backing.subarray(10, 20),
  ];
  for (const message of messages) {
    await client.send(message);
    await connection.send(message);
  }
  for (const message of messages) {
    for (const packet of [await connection.receive(bounded()), await client.receive(bounded())]) {
      assert.ok(packet !== undefined);
      if (typeof message === "string") {
        assert.equal(typeof packet.data, "string");
        assert.equal(packet.data, message);
      } else {
        assert.ok(packet.data instanceof Uint8Array, "bytes arrive as a Uint8Array");
        assert.deepEqual([...packet.data], [...message]);
      }
    }
  }
});

Deno.test("ClientNetwork packet.time is the sender's clock at send time", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  const before = Date.now();
  await client.send("now");
  const after = Date.now();
  const packet = await connection.receive(bounded());
  assert.equal(typeof packet?.time, "number");
  assert.ok(
    packet!.time >= before && packet!.time <= after,
    `${packet!.time} in ${before}..${after}`,
  );

  // The receiver must report the sender's clock, not its own: stop the sender's clock for one send.
  const now = Date.now;
  const past = 1_600_000_000_123;
  let sending: Promise<void>;
  Date.now = () => past;
  try {
    sending = connection.send("from the past");
  } finally {
    Date.now = now;
  }
  await sending;
  const old = await client.receive(bounded());
  assert.equal(old?.data, "from the past");
  assert.equal(old?.time, past);
});

Deno.test("ClientNetwork.connect() with an already-aborted signal rejects with signal.reason", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const reason = new Error("never mind");
  const error = await rejection(
    ClientNetwork.connect({ hostname: HOST, port: server.port, signal: AbortSignal.abort(reason) }),
    "connect() with an aborted signal",
  );
  assert.equal(error, reason);
});

Deno.test("ClientNetwork.connect() aborted during the handshake rejects with signal.reason and closes its socket", async () => {
  using listener = Deno.listen({ hostname: HOST, port: 0 });
  const controller = new AbortController();
  const connecting = ClientNetwork.connect({
    hostname: HOST,
    port: listener.addr.port,
    signal: controller.signal,
  });
  connecting.catch(() => {});
  using peer = await within(listener.accept(), "the client's TCP connect");
  const first = new Uint8Array(16 + 3 + 32);
  let read = 0;
  while (read < first.length) {
    const n = await within(peer.read(first.subarray(read)), "the client's first message");
    assert.ok(n !== null, "the client sent its preamble and first message");
    read += n;
  }
  assert.deepEqual([...first.subarray(0, 5)], [0x61, 0x65, 0x73, 0x6d, 0x01]);
  const reason = new DOMException("stopped by the test", "AbortError");
  controller.abort(reason);
  assert.equal(await rejection(connecting, "the aborted connect"), reason);
  const rest = await within(peer.read(new Uint8Array(16)), "the client's socket to close");
  assert.equal(rest, null);
});

Deno.test("ClientNetwork.connect() to a silent peer rejects with a TimeoutError after handshakeTimeout", async () => {
  using listener = Deno.listen({ hostname: HOST, port: 0 });
  const connecting = ClientNetwork.connect({
    hostname: HOST,
    port: listener.addr.port,
    handshakeTimeout: 100,
  });
  connecting.catch(() => {});
  using _peer = await within(listener.accept(), "the client's TCP connect");
  const error = await rejection(connecting, "the timed-out connect");
  assert.ok(error instanceof TimeoutError, `got ${error}`);
});

Deno.test("ClientNetwork with another psk fails with AuthenticationError psk-mismatch, and the server logs it", async () => {
  const { error, record } = await refused({ psk: psk(1) }, { psk: psk(2) });
  assert.ok(error instanceof AuthenticationError, `got ${error}`);
  assert.ok(error instanceof HandshakeError);
  assert.equal(error.reason, "psk-mismatch");
  assert.equal(record.reason, "psk-mismatch");
});

Deno.test("ClientNetwork with another application name fails with RefusedError application-mismatch, and the server logs it", async () => {
  const { error, record } = await refused({ applicationName: "chat" }, { applicationName: "game" });
  assert.ok(error instanceof RefusedError, `got ${error}`);
  assert.equal(error.reason, "application-mismatch");
  assert.equal(record.reason, "application-mismatch");
});

Deno.test("ClientNetwork pinning another server key fails with AuthenticationError key-rejected, and the server logs it", async () => {
  const other = await generateKeyPair();
  const { error, record } = await refused({}, { serverPublicKey: other.publicKey });
  assert.ok(error instanceof AuthenticationError, `got ${error}`);
  assert.equal(error.reason, "key-rejected");
  assert.equal(record.reason, "key-rejected");
});

Deno.test("ClientNetwork pinning the server's key connects", async () => {
  const keyPair = await generateKeyPair();
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, keyPair });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    serverPublicKey: keyPair.publicKey,
  });
  assert.deepEqual(server.publicKey, keyPair.publicKey);
  assert.deepEqual(client.remotePublicKey, keyPair.publicKey);
});

Deno.test("ClientNetwork with a psk the server lacks fails with RefusedError protocol-mismatch", async () => {
  const { error, record } = await refused({}, { psk: psk(1) });
  assert.ok(error instanceof RefusedError, `got ${error}`);
  assert.equal(error.reason, "protocol-mismatch");
  assert.equal(record.reason, "protocol-mismatch");
});

Deno.test("ClientNetwork without the psk the server has fails with RefusedError protocol-mismatch", async () => {
  const { error, record } = await refused({ psk: psk(1) }, {});
  assert.ok(error instanceof RefusedError, `got ${error}`);
  assert.equal(error.reason, "protocol-mismatch");
  assert.equal(record.reason, "protocol-mismatch");
});

Deno.test("ClientNetwork with the same psk as the server connects and exchanges messages", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, psk: psk(9) });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    psk: psk(9),
  });
  await client.send("secret");
  assert.equal((await server.receive(bounded()))?.data, "secret");
});

/** The smallest maxMessageSize there is (PROTOCOL.md section 4). */
const LIMIT = 65536;

Deno.test("ClientNetwork.send() over the server's maxMessageSize throws MessageTooLargeError, and the connection stays usable", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    maxMessageSize: LIMIT,
  });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  assert.equal(client.connection.peerMaxMessageSize, LIMIT);
  const error = await rejection(client.send(new Uint8Array(LIMIT + 1)), "an oversized send");
  assert.ok(error instanceof MessageTooLargeError, `got ${error}`);
  assert.ok(error instanceof RangeError);
  assert.equal(error.size, LIMIT + 1);
  assert.equal(error.limit, LIMIT);
  // 32769 characters, 65538 bytes of UTF-8: the limit is on bytes.
  await assert.rejects(client.send("é".repeat(LIMIT / 2 + 1)), MessageTooLargeError);
  await client.send(new Uint8Array(LIMIT).fill(1));
  await client.send("é".repeat(LIMIT / 2));
  const packet = await connection.receive(bounded());
  assert.deepEqual(packet?.data, new Uint8Array(LIMIT).fill(1));
  assert.equal((await connection.receive(bounded()))?.data, "é".repeat(LIMIT / 2));
  assert.equal(connection.isClosed, false);
});

Deno.test("Connection.send() from the server over the client's maxMessageSize throws MessageTooLargeError", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    maxMessageSize: LIMIT,
  });
  const connection = await server.accept(bounded());
  assert.equal(connection.peerMaxMessageSize, LIMIT);
  await assert.rejects(connection.send("0".repeat(LIMIT + 1)), MessageTooLargeError);
  assert.equal(await server.sendAll(new Uint8Array(LIMIT + 1)), 0); // Skipped, not sent, not thrown.
  assert.equal(await server.sendAll("0".repeat(LIMIT)), 1);
  assert.equal((await client.receive(bounded()))?.data, "0".repeat(LIMIT));
});

Deno.test("ClientNetwork.close() ends cleanly: the server logs disconnected with reason normal", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  await client.send("last words");
  const info = await within(client.close(), "the client to close");
  assert.equal(info.reason, "normal");
  assert.equal(info.clean, true);
  assert.equal(info.by, "local");
  const remote = await within(connection.closed, "the server side to close");
  assert.equal(remote.reason, "normal");
  assert.equal(remote.clean, true);
  assert.equal(remote.by, "remote");
  assert.equal((await connection.receive(bounded()))?.data, "last words");
  const record = await activityOf(server, "disconnected");
  assert.equal(record.reason, "normal");
  assert.equal(record.clean, true);
  assert.equal(record.address, connection.address);
  // Closing again is harmless and reports the same end.
  assert.deepEqual(await client.close(), info);
  await client.stop();
  const error = await rejection(client.send("too late"), "a send after close");
  assert.ok(error instanceof ConnectionClosedError);
  assert.equal(error.reason, "normal");
});

Deno.test("ClientNetwork.close() with reason and message tells the server why", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  await within(client.close({ reason: "shutdown", message: "going away" }), "the client to close");
  const info = await within(connection.closed, "the server side to close");
  assert.equal(info.reason, "shutdown");
  assert.equal(info.message, "going away");
  assert.equal(info.clean, true);
});

Deno.test("ClientNetwork with reconnect off sees the server's stop() as a clean close with reason shutdown", async () => {
  const server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    reconnect: false,
  });
  await server.accept(bounded());
  const closed = client.closed;
  await within(server.stop(), "the server to stop");
  const info = await within(closed, "the client to see the close");
  assert.equal(info.reason, "shutdown");
  assert.equal(info.clean, true);
  assert.equal(info.by, "remote");
  const error = await rejection(client.send("anyone?"), "a send after the server stopped");
  assert.ok(error instanceof ConnectionClosedError);
  assert.equal(error.reason, "shutdown");
});

Deno.test("ClientNetwork and its server agree on the handshake hash and each other's public keys", async () => {
  const serverKeys = await generateKeyPair();
  const clientKeys = await generateKeyPair();
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, keyPair: serverKeys });
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: server.port,
    keyPair: clientKeys,
  });
  const connection = await server.accept(bounded());
  assert.equal(client.handshakeHash.length, 32);
  assert.equal(hex(client.handshakeHash), hex(connection.handshakeHash));
  assert.equal(hex(client.remotePublicKey), hex(server.publicKey));
  assert.equal(hex(connection.remotePublicKey), hex(client.publicKey));
  assert.equal(hex(client.publicKey), hex(clientKeys.publicKey));
  assert.equal(hex(server.publicKey), hex(serverKeys.publicKey));

  await using other = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const second = await server.accept(bounded());
  assert.notEqual(hex(other.handshakeHash), hex(client.handshakeHash));
  assert.equal(hex(second.handshakeHash), hex(other.handshakeHash));
  assert.equal(hex(second.remotePublicKey), hex(other.publicKey));
});

Deno.test("ClientNetwork.flush() resolves once everything sent is written, and the server gets it all", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  await within(client.flush(), "flush() with nothing sent");
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 50; i++) sends.push(client.send(pattern(10_000, i)));
  await within(client.flush(), "flush() after sends");
  await within(Promise.all(sends), "the sends");
  for (let i = 0; i < 50; i++) {
    assert.deepEqual((await connection.receive(bounded()))?.data, pattern(10_000, i));
  }
});

Deno.test("ClientNetwork with rekeyAfterBytes 100000 exchanges 5 MB each way intact over TransportRekey frames", async () => {
  const options = { rekeyAfterBytes: 100_000 };
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, ...options });
  await using relay = new Relay(server.port);
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: relay.port,
    ...options,
  });
  const connection = await server.accept(bounded());
  const count = 80;
  const size = 64 * 1024;
  const send = async (to: { send(data: Uint8Array): Promise<void> }, seed: number) => {
    for (let i = 0; i < count; i++) await to.send(pattern(size, seed + i));
  };
  const receive = async (
    from: { receive(options: { signal: AbortSignal }): Promise<{ data: unknown } | undefined> },
    closed: Promise<CloseInfo>,
    seed: number,
  ) => {
    for (let i = 0; i < count; i++) {
      const packet = await from.receive(bounded());
      if (packet === undefined) {
        const info = await closed;
        assert.fail(
          `message ${i} never arrived: the connection ended (${info.reason}: ${info.message})`,
        );
      }
      assert.ok(
        packet.data instanceof Uint8Array && sameBytes(packet.data, pattern(size, seed + i)),
        `message ${i} is intact`,
      );
    }
  };
  await within(
    Promise.all([
      send(client, 0),
      send(connection, 1000),
      receive(connection, connection.closed, 0),
      receive(client, client.closed, 1000),
    ]),
    "5 MB each way",
    60_000,
  );
  const toServer = relay.toServer.frames.get(FrameType.TransportRekey) ?? 0;
  const toClient = relay.toClient.frames.get(FrameType.TransportRekey) ?? 0;
  assert.ok(toServer >= 30, `the client rekeyed ${toServer} times`);
  assert.ok(toClient >= 30, `the server rekeyed ${toClient} times`);
  assert.ok(relay.toServer.bytes > count * size);
});

Deno.test("ClientNetwork never puts the plaintext of a message on the wire", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using relay = new Relay(server.port, 1024 * 1024);
  await using client = await ClientNetwork.connect({ hostname: HOST, port: relay.port });
  const connection = await server.accept(bounded());
  const secret = "the eagle lands at midnight";
  await client.send(secret);
  await connection.send(secret);
  assert.equal((await connection.receive(bounded()))?.data, secret);
  assert.equal((await client.receive(bounded()))?.data, secret);
  const needle = new TextEncoder().encode(secret);
  for (const direction of [relay.toServer, relay.toClient]) {
    for (const chunk of direction.captured) assert.ok(!contains(chunk, needle));
  }
  assert.equal(relay.toServer.frames.get(FrameType.Handshake), 2);
  assert.equal(relay.toClient.frames.get(FrameType.Handshake), 1);
});

Deno.test("ClientNetwork.close() after a failed connect reports that it never connected", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  const client = new ClientNetwork(HOST, server.port, { applicationName: "other" });
  await rejection(client.ready, "the refused client's ready");
  const info = await client.close();
  assert.equal(info.clean, false);
  assert.equal(info.reason, "aborted");
  await assert.rejects(client.sendData("x"), RefusedError);
  assert.equal(await client.receive(), undefined);
  assert.equal((await nextActivity(server)).event, "refused");
});

Deno.test("ClientNetwork rejects bad options with TypeError or RangeError", () => {
  assert.throws(() => new ClientNetwork("", 1), TypeError);
  assert.throws(() => new ClientNetwork(HOST, 70000), RangeError);
  assert.throws(() => new ClientNetwork(HOST, -1), RangeError);
  assert.throws(() => new ClientNetwork(HOST, 1, { psk: new Uint8Array(31) }), RangeError);
  assert.throws(
    () => new ClientNetwork(HOST, 1, { serverPublicKey: new Uint8Array(5) }),
    RangeError,
  );
  assert.throws(() => new ClientNetwork(HOST, 1, { maxMessageSize: 0 }), RangeError);
  // Below the floors of PROTOCOL.md sections 4 and 6, a peer would refuse them.
  assert.throws(() => new ClientNetwork(HOST, 1, { maxMessageSize: 65535 }), RangeError);
  assert.throws(() => new ClientNetwork(HOST, 1, { rekeyAfterBytes: 65535 }), RangeError);
  new ClientNetwork(HOST, 1, { maxMessageSize: 65536, rekeyAfterBytes: 65536 });
  assert.throws(() => new ClientNetwork(HOST, 1, { applicationName: "" }), TypeError);
});

Deno.test("ClientNetwork and ServerNetwork reject bad connection limits with a RangeError", () => {
  for (const name of ["writeHighWaterMark", "rekeyAfterBytes", "closeTimeout", "writeTimeout"]) {
    for (const value of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => new ClientNetwork(HOST, 1, { [name]: value }),
        RangeError,
        `${name}: ${value}`,
      );
      assert.throws(
        () => new ServerNetwork(HOST, 0, { [name]: value }),
        RangeError,
        `${name}: ${value}`,
      );
    }
  }
});

Deno.test("ClientNetwork with reconnect off reports a server killed without a close as truncated or reset, not clean", async () => {
  await using child = new Subprocess(`
    import { ServerNetwork } from ${JSON.stringify(new URL("../server.ts", import.meta.url).href)};
    const server = await ServerNetwork.listen({ hostname: "${HOST}", port: 0 });
    console.log(server.port);
    const connection = await server.accept();
    await connection.send("hello");
    await connection.flush();
    console.log("sent");
    await connection.closed;
  `);
  const port = Number(await child.line("the child's port"));
  await using client = await ClientNetwork.connect({ hostname: HOST, port, reconnect: false });
  assert.equal((await client.receive(bounded()))?.data, "hello");
  assert.equal(await child.line("the child's send"), "sent");
  await child.kill();
  const info = await within(client.closed, "the client to see the cut");
  assert.equal(info.clean, false);
  assert.ok(info.reason === "truncated" || info.reason === "reset", `got ${info.reason}`);
  assert.equal(info.by, "remote");
  const error = await rejection(client.send("hello?"), "a send after the cut");
  assert.ok(error instanceof ConnectionClosedError);
  assert.equal(error.reason, info.reason);
  assert.equal(await client.receive(), undefined);
});

Deno.test("ClientNetwork by default accepts a 16 MiB message and refuses one byte more", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  const limit = 16 * 1024 * 1024;
  assert.equal(client.connection.peerMaxMessageSize, limit);
  await assert.rejects(client.send(new Uint8Array(limit + 1)), MessageTooLargeError);
  const big = pattern(limit, 3);
  await client.send(big);
  const packet = await connection.receive(bounded());
  assert.ok(packet?.data instanceof Uint8Array);
  assert.ok(sameBytes(packet.data, big), "the 16 MiB message is intact");
});

Deno.test("ClientNetwork.close() during the handshake ends the connect instead of waiting for handshakeTimeout", async () => {
  using listener = Deno.listen({ hostname: HOST, port: 0 });
  const client = new ClientNetwork(HOST, listener.addr.port, { handshakeTimeout: 3000 });
  using _peer = await within(listener.accept(), "the client's TCP connect");
  const info = await within(client.close(), "close() during the handshake");
  assert.equal(info.clean, false);
  assert.ok(
    !(info.error instanceof TimeoutError),
    `close() waited for the handshake to time out: ${info.error}`,
  );
  await rejection(client.ready, "the abandoned connect");
});

Deno.test("ClientNetwork.connect() with nothing listening rejects with ConnectError ECONNREFUSED, the cause kept", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr;
  listener.close();
  const error = await rejection(ClientNetwork.connect({ hostname: HOST, port }), "connect");
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, "ECONNREFUSED");
  assert.equal(error.address, `${HOST}:${port}`);
  assert.match(error.message, /^Cannot connect to 127\.0\.0\.1:\d+: connection refused/);
  assert.ok(error.cause instanceof Deno.errors.ConnectionRefused);
  const original = new ClientNetwork(HOST, port);
  await assert.rejects(original.ready, ConnectError);
  assert.equal((await original.closed).reason, "aborted");
});

Deno.test("handshakeTimeout rejects with aesm's TimeoutError, a signal's timeout with the signal's own reason", async () => {
  using listener = Deno.listen({ hostname: HOST, port: 0 }); // Plain TCP: never answers.
  const { port } = listener.addr;
  const ours = await rejection(
    ClientNetwork.connect({ hostname: HOST, port, handshakeTimeout: 100 }),
    "the handshake timeout",
  );
  assert.ok(ours instanceof TimeoutError);
  assert.equal((ours as TimeoutError).code, "ETIMEDOUT");
  const signal = AbortSignal.timeout(100);
  const theirs = await rejection(
    ClientNetwork.connect({ hostname: HOST, port, signal }),
    "the signal's timeout",
  );
  assert.equal(theirs, signal.reason);
  assert.ok(theirs instanceof DOMException && theirs.name === "TimeoutError");
  assert.ok(!(theirs instanceof TimeoutError));
});

Deno.test("ClientNetwork.retrieved is the same queue as its connection's data", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  assert.equal(client.retrieved, client.connection.data);
});
