// Copyright 2026 the aesm authors. MIT license.
// Slow and stuck peers: a client that connects and sends nothing, one that
// sends its handshake a byte at a time too slowly, one that never reads
// what the server sends, and more clients than the server has room for.
// These scenarios are about time, so they use short pauses and small
// server timeouts; nothing asserts how long anything took.

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import { ConnectionClosedError, RefusedError } from "../errors.ts";
import type { ServerNetwork, ServerOptions } from "../server.ts";
import {
  closeQuietly,
  mapLimit,
  mib,
  pause,
  RawClient,
  readRefusal,
  type Sentinel,
  type ServerWatch,
  within,
  withServer as withServerFixture,
  writeAll,
} from "./_adversary.ts";

const HANDSHAKE_TIMEOUT = 1000;
const WRITE_TIMEOUT = 300;

function withServer(
  options: ServerOptions,
  run: (server: ServerNetwork, watch: ServerWatch, sentinel: Sentinel) => Promise<void>,
): Promise<void> {
  return withServerFixture({
    handshakeTimeout: HANDSHAKE_TIMEOUT,
    writeTimeout: WRITE_TIMEOUT,
    ...options,
  }, run);
}

/** Writes one byte at a time, `delay` ms apart; stops quietly once the server has gone. */
function drip(delay: number): (conn: Deno.Conn, bytes: Uint8Array) => Promise<void> {
  return async (conn, bytes) => {
    for (const byte of bytes) {
      await conn.write(new Uint8Array([byte]));
      if (delay > 0) await pause(delay);
    }
  };
}

Deno.test("A client that connects and sends nothing is closed with reason timeout", async () => {
  await withServer({}, async (server, watch, sentinel) => {
    const idle = await Promise.all(
      Array.from({ length: 20 }, () => Deno.connect({ hostname: "127.0.0.1", port: server.port })),
    );
    try {
      await sentinel.roundTrip(); // Idle connections do not hold up the others.
      const answers = await within(
        Promise.all(idle.map((conn) => readRefusal(conn))),
        5000,
        "the server to close idle connections",
      );
      for (const answer of answers) assert.ok(answer === undefined || answer === "timeout", answer);
      for (const conn of idle) {
        const end = await watch.end(`${conn.localAddr.hostname}:${conn.localAddr.port}`);
        assert.equal(end.event, "refused");
        assert.equal(end.reason, "timeout");
      }
      console.log(`idle: ${idle.length} silent connections closed with reason timeout`);
    } finally {
      idle.forEach(closeQuietly);
    }
  });
});

Deno.test("A client that sends its handshake a byte at a time too slowly is closed with timeout", async () => {
  await withServer({}, async (server, watch) => {
    const raw = await RawClient.open({ port: server.port });
    try {
      // 51 bytes (the preamble and message 1), 40 ms apart, outlast a 1 s handshake timeout.
      const error = await within(
        raw.handshake({ port: server.port, keyPair: await generateKeyPair(), write: drip(40) })
          .then(
            () => undefined,
            (e) => e,
          ),
        10_000,
        "the slow handshake to fail",
      );
      assert.ok(error instanceof Error, "the slow handshake does not complete");
      const end = await watch.end(raw.localAddress);
      assert.equal(end.event, "refused");
      assert.equal(end.reason, "timeout");
    } finally {
      raw.close();
    }
  });
});

Deno.test("A handshake written a byte at a time, quickly, completes", async () => {
  await withServer({ handshakeTimeout: 10_000 }, async (server, watch) => {
    const raw = await RawClient.open({ port: server.port });
    try {
      await within(
        raw.handshake({ port: server.port, keyPair: await generateKeyPair(), write: drip(0) }),
        10_000,
        "the byte-at-a-time handshake",
      );
      const connection = await watch.connection(raw.localAddress);
      assert.equal(connection.isClosed, false);
    } finally {
      raw.close();
    }
  });
});

Deno.test("A raw client that never reads is closed by the write timeout, and sends reject typed", async () => {
  await withServer({}, async (server, watch, sentinel) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      const connection = await watch.connection(raw.localAddress);
      const chunk = new Uint8Array(256 * 1024);
      let sent = 0;
      let error: unknown;
      // Bounded: the socket buffers fill long before 256 MiB.
      for (let i = 0; i < 1024; i++) {
        try {
          await within(connection.send(chunk), 10_000, "a send to the stuck peer");
          sent += chunk.length;
        } catch (e) {
          error = e;
          break;
        }
      }
      assert.ok(error instanceof ConnectionClosedError, `a typed error, got ${error}`);
      assert.equal(error.reason, "timeout");
      const end = await watch.end(raw.localAddress);
      assert.equal(end.event, "disconnected");
      assert.equal(end.reason, "timeout");
      assert.equal((await connection.closed).reason, "timeout");
      await sentinel.roundTrip();
      console.log(`stuck reader: ${mib(sent)} accepted before the write timeout closed it`);
    } finally {
      raw.close();
    }
  });
});

Deno.test("A real client whose application never reads is closed by the server's write timeout", async () => {
  await withServer({}, async (server, watch) => {
    const client = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: server.port,
      highWaterMark: 64 * 1024, // The client stops reading its socket early.
      closeTimeout: 500, // Its close cannot read the server's end while its queue is full.
    });
    try {
      const connection = await watch.connection(client.localAddress);
      const chunk = new Uint8Array(256 * 1024);
      let error: unknown;
      for (let i = 0; i < 1024 && error === undefined; i++) {
        await within(connection.send(chunk), 10_000, "a send").catch((e) => (error = e));
      }
      assert.ok(error instanceof ConnectionClosedError, `a typed error, got ${error}`);
      assert.equal(error.reason, "timeout");
      assert.equal((await watch.end(client.localAddress)).reason, "timeout");
      // Nothing was dropped: what the client holds is whole and in order.
      let packets = 0;
      for (let packet = client.retrieved.getData(); packet; packet = client.retrieved.getData()) {
        assert.equal((packet.data as Uint8Array).length, chunk.length);
        packets++;
      }
      assert.ok(packets >= 1);
    } finally {
      await client.close();
    }
  });
});

Deno.test("maxConnections refuses further clients with server-full and accepts again once a slot frees", async () => {
  await withServer({ maxConnections: 4 }, async (server, watch) => {
    // The sentinel holds one slot.
    const clients = await Promise.all(
      Array.from(
        { length: 3 },
        () => ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port }),
      ),
    );
    try {
      const refusals: unknown[] = [];
      for (let i = 0; i < 3; i++) {
        const error = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port })
          .then((c) => (c.close(), undefined), (e) => e);
        refusals.push(error);
      }
      for (const error of refusals) {
        assert.ok(error instanceof RefusedError, `refused, got ${error}`);
        assert.equal(error.reason, "server-full");
      }
      // One record for the burst, then one that sums up the rest.
      const full = await watch.until(
        () => {
          const records = watch.records.filter((r) => r.reason === "server-full");
          return records.length === 2 ? records : undefined;
        },
        5000,
        "the burst's summary",
      );
      assert.deepEqual(full.map((r) => r.count), [undefined, 2]);
      // A client that leaves frees its slot too.
      const leaving = clients.shift()!;
      const address = leaving.localAddress;
      await leaving.close();
      await watch.end(address);
      clients.push(await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port }));
      for (const client of clients) {
        await client.send("still here");
        const connection = await watch.connection(client.localAddress);
        assert.equal((await connection.receive())?.data, "still here");
      }
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

Deno.test("A flood of slow handshakes does not starve a good client", async () => {
  // All 60 from one address: the per-address bound would refuse most at once.
  await withServer({ maxHandshakesPerAddress: 64 }, async (server, watch, sentinel) => {
    const conns: Deno.TcpConn[] = [];
    try {
      await mapLimit(Array.from({ length: 60 }, (_, i) => i), 20, async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        conns.push(conn);
        // A partial preamble, then nothing.
        await writeAll(conn, new Uint8Array([0x61, 0x65, 0x73]));
      });
      await sentinel.roundTrip();
      for (const conn of conns) {
        const end = await watch.end(`${conn.localAddr.hostname}:${conn.localAddr.port}`);
        assert.equal(end.reason, "timeout");
      }
      await sentinel.roundTrip();
      console.log(
        `slowloris: ${conns.length} stalled handshakes timed out; the sentinel kept working`,
      );
    } finally {
      conns.forEach(closeQuietly);
    }
  });
});
