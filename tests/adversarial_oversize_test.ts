// Copyright 2026 the aesm authors. MIT license.
// Oversize messages: a raw peer that ran the handshake itself declares
// messages larger than the server accepts, or large ones it never sends;
// and the API refuses to send what the peer would not accept.

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import { MessageTooLargeError } from "../errors.ts";
import type { ServerNetwork, ServerOptions } from "../server.ts";
import {
  CLOSE_CODES,
  concat,
  drainPackets,
  mib,
  RawClient,
  type Sentinel,
  type ServerWatch,
  settledMemory,
  startRecord,
  within,
  withServer as withServerFixture,
} from "./_adversary.ts";

function withServer(
  options: ServerOptions,
  run: (server: ServerNetwork, watch: ServerWatch, sentinel: Sentinel) => Promise<void>,
): Promise<void> {
  return withServerFixture(options, run);
}

Deno.test("A declared total over maxMessageSize ends the connection with message-too-large", async () => {
  const limit = 1024 * 1024;
  await withServer({ maxMessageSize: limit }, async (server, watch) => {
    for (const total of [limit + 1, 2 * limit, 0xffff_ffff]) {
      const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
      try {
        await raw.sendPlaintext(startRecord(false, 10, new Uint8Array(10)));
        await raw.sendPlaintext(startRecord(false, total, new Uint8Array(100)));
        await within(raw.reader.drain(), 5000, "the server to end the connection");
        const end = await watch.end(raw.localAddress);
        assert.equal(end.reason, "message-too-large", `a total of ${total}`);
        const connection = await watch.connection(raw.localAddress);
        assert.deepEqual(drainPackets(connection), [new Uint8Array(10)], "the message before");
      } finally {
        raw.close();
      }
    }
  });
});

Deno.test("A declared total over maxMessageSize is refused before anything of its size is allocated", async () => {
  // The largest limit there is, and a message one byte over it: 4 GiB.
  await withServer({ maxMessageSize: 0xffff_fffe }, async (server, watch) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      const before = settledMemory();
      await raw.sendPlaintext(startRecord(false, 0xffff_ffff, new Uint8Array(16)));
      await within(raw.reader.drain(), 5000, "the server to end the connection");
      assert.equal((await watch.end(raw.localAddress)).reason, "message-too-large");
      const grown = Deno.memoryUsage().external - before.external;
      console.log(`oversize: external memory grew ${mib(grown)} for a declared 4 GiB message`);
      assert.ok(grown < 64 * 1024 * 1024, `external memory grew by ${mib(grown)}`);
    } finally {
      raw.close();
    }
  });
});

Deno.test("The peer that declared an oversize message is told so with a Close record", async () => {
  await withServer({ maxMessageSize: 65536 }, async (server, watch) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      await raw.sendPlaintext(startRecord(true, 65537, new Uint8Array(0)));
      const { close } = await within(raw.readToEnd(), 5000, "the server's answer");
      assert.equal((await watch.end(raw.localAddress)).reason, "message-too-large");
      assert.equal(
        close,
        CLOSE_CODES["message-too-large"],
        "PROTOCOL.md section 8: a Close record with message-too-large",
      );
    } finally {
      raw.close();
    }
  });
});

Deno.test("A peer cannot make the server reserve memory for messages it never sends", async () => {
  // Within the default limit of 16 MiB, 16 peers each declare a 16 MiB message
  // and send 1 byte of it. The server has received under 2 KiB in all.
  await withServer({}, async (server, watch) => {
    const keyPair = await generateKeyPair();
    const peers = await Promise.all(
      Array.from({ length: 16 }, () => RawClient.connect({ port: server.port }, keyPair)),
    );
    try {
      const connections = await Promise.all(peers.map((raw) => watch.connection(raw.localAddress)));
      const before = settledMemory();
      // A complete marker message, then the start of the big one, in one frame: the
      // server decodes both in one step, so once the marker is queued it has seen both.
      await Promise.all(
        peers.map((raw) =>
          raw.sendPlaintext(
            concat(
              startRecord(true, 6, new TextEncoder().encode("marker")),
              startRecord(false, 16 * 1024 * 1024, new Uint8Array(1)),
            ),
          )
        ),
      );
      for (const connection of connections) {
        assert.equal((await within(connection.receive(), 5000, "the marker"))?.data, "marker");
      }
      const grown = settledMemory().external - before.external;
      console.log(
        `reservation: 16 peers declared 16 MiB each and sent 1 byte; external memory grew ${
          mib(grown)
        }`,
      );
      assert.ok(
        grown < 32 * 1024 * 1024,
        `the server reserved ${mib(grown)} for 16 bytes of message it has received`,
      );
    } finally {
      peers.forEach((raw) => raw.close());
    }
  });
});

Deno.test("send() over the peer's maxMessageSize throws MessageTooLargeError and the connection carries on", async () => {
  const limit = 128 * 1024;
  await withServer({ maxMessageSize: limit }, async (server, watch, sentinel) => {
    await using client = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: server.port,
      maxMessageSize: limit / 2,
    });
    const connection = await watch.connection(client.localAddress);
    assert.equal(client.connection.peerMaxMessageSize, limit);
    assert.equal(connection.peerMaxMessageSize, limit / 2);

    await assert.rejects(client.send(new Uint8Array(limit + 1)), (error) => {
      assert.ok(error instanceof MessageTooLargeError);
      assert.ok(error instanceof RangeError);
      assert.equal(error.size, limit + 1);
      assert.equal(error.limit, limit);
      return true;
    });
    // A string is measured in UTF-8 bytes: 43691 three-byte characters are 131073 bytes.
    await assert.rejects(client.send("€".repeat(43_691)), MessageTooLargeError);
    await assert.rejects(connection.send(new Uint8Array(limit / 2 + 1)), MessageTooLargeError);
    const skipped = await server.broadcast(new Uint8Array(limit / 2 + 1));
    assert.deepEqual([skipped.sent, skipped.tooLarge, skipped.failed], [1, [connection], []]);
    assert.equal((await sentinel.client.receive())?.data.length, limit / 2 + 1); // It fits there.

    // Exactly at the limit is fine, both ways, and nothing refused was sent.
    await client.send(new Uint8Array(limit).fill(7));
    await connection.send(new Uint8Array(limit / 2).fill(9));
    assert.deepEqual((await connection.receive())?.data, new Uint8Array(limit).fill(7));
    assert.deepEqual((await client.receive())?.data, new Uint8Array(limit / 2).fill(9));
    assert.equal(connection.data.length, 0);
    assert.equal(client.retrieved.length, 0);
    assert.equal(connection.isClosed, false);
  });
});
