// Copyright 2026 the aesm authors. MIT license.
// Faults: a peer process killed mid-stream (a real subprocess, SIGKILL), a
// socket closed mid-frame, a server stopped while clients are sending.
// Survivors carry on; every send either resolved (and arrived, unless the
// connection then failed and says so) or rejected with a typed error;
// stop() resolves within its close timeout and leaves nothing open.

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import type { CloseInfo } from "../connection.ts";
import { ConnectionClosedError } from "../errors.ts";
import { ServerNetwork, type ServerOptions } from "../server.ts";
import {
  checkSequenced,
  closeQuietly,
  drainPackets,
  messageRecord,
  PeerProcess,
  RawClient,
  RejectionTrap,
  seal,
  type Sentinel,
  sequenced,
  ServerWatch,
  within,
  withServer as withServerFixture,
} from "./_adversary.ts";

const CLOSE_TIMEOUT = 1000;
const UNCLEAN = ["truncated", "reset", "protocol-error"];

function withServer(
  options: ServerOptions,
  run: (server: ServerNetwork, watch: ServerWatch, sentinel: Sentinel) => Promise<void>,
): Promise<void> {
  return withServerFixture({ closeTimeout: CLOSE_TIMEOUT, ...options }, run);
}

/** Checks that packets are sequence-numbered messages 0, 1, 2, ... intact; returns how many. */
function assertSequence(packets: (string | Uint8Array)[], who: string): number {
  packets.forEach((data, i) => {
    assert.ok(data instanceof Uint8Array, `${who}: packet ${i} is bytes`);
    assert.equal(checkSequenced(data), i, `${who}: packet ${i} in order, intact`);
  });
  return packets.length;
}

Deno.test("A client process killed with SIGKILL mid-stream: its packets are an intact prefix, others carry on", async () => {
  await withServer({}, async (server, watch, sentinel) => {
    // A survivor in this process keeps sending throughout.
    await using survivor = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    const survivorSide = await watch.connection(survivor.localAddress);
    await using peer = new PeerProcess(["flood", String(server.port)]);
    const ready = await within(peer.line(), 20_000, "the peer process to connect");
    const address = ready.split(" ")[1];
    const victim = await watch.connection(address);
    const packets: (string | Uint8Array)[] = [];
    // Read until well into the stream, then kill it mid-flight.
    while (packets.length < 200) {
      const packet = await within(victim.receive(), 10_000, "the peer's messages");
      assert.ok(packet);
      packets.push(packet.data);
      if (packets.length % 50 === 0) {
        await survivor.send(`alive ${packets.length}`);
        assert.equal((await survivorSide.receive())?.data, `alive ${packets.length}`);
      }
    }
    peer.kill();
    await peer.child.status;
    // The application goes on reading: what the peer sent before it died may
    // exceed the queue's high-water mark, and the end (the FIN) lies behind it.
    const draining = (async () => {
      for (let packet = await victim.receive(); packet; packet = await victim.receive()) {
        packets.push(packet.data);
      }
    })();
    const end = await watch.end(address, 10_000);
    await within(draining, 10_000, "the rest of the peer's messages");
    assert.ok(UNCLEAN.includes(end.reason!), `an unclean end, got ${end.reason}`);
    assert.equal(end.clean, false);
    const count = assertSequence(packets, "the killed peer");
    await sentinel.roundTrip();
    await survivor.send("after");
    assert.equal((await survivorSide.receive())?.data, "after");
    console.log(`killed client: ${count} packets arrived intact, then ${end.reason}`);
  });
});

Deno.test("A server process killed with SIGKILL: every send resolved or rejected typed, closed is unclean", async () => {
  using trap = new RejectionTrap();
  await using peer = new PeerProcess(["serve"]);
  const port = Number(await within(peer.line(), 20_000, "the server process to listen"));
  const clients = await Promise.all(
    // With reconnecting off, each client's closed tells how the server's death looked.
    Array.from(
      { length: 3 },
      () => ClientNetwork.connect({ hostname: "127.0.0.1", port, reconnect: false }),
    ),
  );
  const results = clients.map(() => ({ resolved: 0, errors: [] as unknown[] }));
  const senders = clients.map((client, c) =>
    (async () => {
      for (let i = 0; i < 1_000_000; i++) {
        try {
          await client.send(sequenced(i, 2000));
          results[c].resolved++;
        } catch (error) {
          results[c].errors.push(error);
          return;
        }
        if (i === 100 && c === 0) peer.kill();
      }
    })()
  );
  await within(Promise.all(senders), 20_000, "every sender to stop");
  const infos: CloseInfo[] = await Promise.all(clients.map((client) => client.closed));
  for (const [c, result] of results.entries()) {
    assert.ok(result.resolved > 0);
    for (const error of result.errors) {
      assert.ok(error instanceof ConnectionClosedError, `typed, got ${error}`);
    }
    assert.ok(UNCLEAN.includes(infos[c].reason), `client ${c} closed ${infos[c].reason}`);
    assert.equal(infos[c].clean, false);
    // flush() on a failed connection rejects at once (bounded here so a hang fails the test).
    await assert.rejects(
      within(clients[c].flush(), 2000, `flush() on client ${c}'s failed connection`),
      ConnectionClosedError,
    );
  }
  await Promise.all(clients.map((client) => client.close()));
  console.log(
    `killed server: sends resolved ${results.map((r) => r.resolved).join(", ")}, then ` +
      infos.map((i) => i.reason).join(", "),
  );
  trap.check();
});

Deno.test("A socket closed mid-frame is a truncation: the frames before it arrive", async () => {
  await withServer({}, async (server, watch) => {
    const problems: string[] = [];
    for (const how of ["fin", "close"] as const) {
      const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
      try {
        await raw.sendPlaintext(messageRecord("whole"));
        const next = await seal(raw.send, messageRecord("cut in half"));
        await raw.write(next.subarray(0, 20));
        if (how === "fin") await raw.conn.closeWrite();
        else raw.close();
        const end = await watch.end(raw.localAddress);
        const packets = drainPackets(await watch.connection(raw.localAddress));
        if (packets.length !== 1 || packets[0] !== "whole") {
          problems.push(`${how}: the whole frame before the cut was not delivered`);
        }
        if (end.clean !== false) problems.push(`${how}: reported clean`);
        if (end.reason !== "truncated") {
          problems.push(
            `${how}: reported ${end.reason}; PROTOCOL.md section 8: a stream that ends without ` +
              "a Close record is a truncation",
          );
        }
      } finally {
        raw.close();
      }
    }
    assert.deepEqual(problems, []);
  });
});

Deno.test("A client cut mid-frame by its server reports truncated", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await withServerFixture({}, async (server, watch) => {
    // A proxy-like fake server: passes the handshake through, then cuts mid-frame.
    const relay = (async () => {
      const down = await listener.accept();
      const up = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      const buffer = new Uint8Array(65536);
      const pipe = async (from: Deno.Conn, to: Deno.Conn, limit: number) => {
        let total = 0;
        while (total < limit) {
          const n = await from.read(buffer.subarray(0, Math.min(buffer.length, limit - total)));
          if (n === null) break;
          await to.write(buffer.subarray(0, n));
          total += n;
        }
      };
      // Server to client: message 2 (103), the acceptance (19), then 10 bytes of the next frame.
      const s2c = pipe(up, down, 103 + 19 + 10).then(() => {
        closeQuietly(down);
        closeQuietly(up);
      });
      const c2s = pipe(down, up, Infinity).catch(() => {});
      await Promise.all([s2c, c2s]);
    })();
    const client = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: listener.addr.port,
      reconnect: false,
    });
    const serverSide = await watch.connection(
      await watch.until(
        () => [...watch.connections.keys()][0],
        5000,
        "the relayed connection",
      ),
    );
    await serverSide.send("this frame is cut");
    const info = await within(client.closed, 5000, "the client to see the cut");
    await relay;
    assert.equal(info.clean, false);
    assert.equal(info.reason, "truncated", "a stream that ends without a Close is a truncation");
    await client.close();
  }, { sentinel: false });
});

/**
 * Clients send sequence-numbered messages as fast as they can; the server's
 * application reads a while, then the server stops. With `readDuringStop`
 * the application goes on reading while stop() runs; without, it reads what
 * is left only after stop() resolved ("packets already received stay
 * readable").
 */
async function stopUnderLoad(readDuringStop: boolean): Promise<void> {
  using trap = new RejectionTrap();
  const server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    closeTimeout: CLOSE_TIMEOUT,
    // Small, so that the clients are well ahead of what the server has queued when it stops.
    highWaterMark: 256 * 1024,
  });
  const watch = new ServerWatch(server);
  const clients = await Promise.all(
    Array.from(
      { length: 6 },
      () =>
        ClientNetwork.connect({
          hostname: "127.0.0.1",
          port: server.port,
          closeTimeout: CLOSE_TIMEOUT,
          reconnect: false,
        }),
    ),
  );
  const sent = clients.map(() => ({ resolved: 0, errors: [] as unknown[] }));
  const received = new Map<string, (string | Uint8Array)[]>();
  const take = (packet: { address: string; data: string | Uint8Array }) =>
    received.set(packet.address, [...(received.get(packet.address) ?? []), packet.data]);
  let failure: unknown;
  try {
    const senders = clients.map((client, c) =>
      (async () => {
        for (let i = 0; i < 1_000_000; i++) {
          try {
            await client.send(sequenced(i, 100 + (i % 10) * 1000));
            sent[c].resolved++;
          } catch (error) {
            sent[c].errors.push(error);
            return;
          }
        }
      })()
    );
    for (let n = 0; n < 3000; n++) {
      const packet = await within(server.receive(), 10_000, "packets");
      assert.ok(packet);
      take(packet);
    }
    const reader = readDuringStop
      ? (async () => {
        for (let packet = await server.receive(); packet; packet = await server.receive()) {
          take(packet);
        }
      })()
      : Promise.resolve();
    await within(server.stop(), CLOSE_TIMEOUT + 4000, "stop() to resolve");
    await within(Promise.all([...senders, reader]), 10_000, "the senders to stop");
    for (let packet = await server.receive(); packet; packet = await server.receive()) take(packet);
    const infos = await Promise.all(clients.map((client) => client.closed));
    const ends = await Promise.all(clients.map((client) => watch.end(client.localAddress)));
    for (const [c, client] of clients.entries()) {
      const arrived = assertSequence(received.get(client.localAddress) ?? [], `client ${c}`);
      for (const error of sent[c].errors) {
        assert.ok(error instanceof ConnectionClosedError, `typed, got ${error}`);
      }
      if (infos[c].clean) {
        assert.ok(
          arrived >= sent[c].resolved,
          `client ${c}: ${sent[c].resolved} sends resolved, ${arrived} arrived, yet the client ` +
            `reports ${infos[c].reason} (clean) and the server ${ends[c].reason} (clean: ${
              ends[c].clean
            })`,
        );
      }
    }
    console.log(
      `stop under load (${readDuringStop ? "reading during stop" : "reading after stop"}): ` +
        `resolved ${sent.map((s) => s.resolved).join(", ")}; arrived ${
          clients.map((c) => received.get(c.localAddress)?.length ?? 0).join(", ")
        }; clients closed ${
          infos.map((i) => `${i.reason}${i.clean ? "" : " (unclean)"}`).join(", ")
        }`,
    );
  } catch (error) {
    failure = error;
  } finally {
    await server.stop();
    await Promise.all(clients.map((client) => client.close()));
    await watch.done();
  }
  trap.check(failure);
}

Deno.test("stop() while clients send and the application reads: every resolved send arrives", async () => {
  await stopUnderLoad(true);
});

Deno.test("stop() while clients send, read afterwards: resolved sends arrive, or the close is not clean", async () => {
  await stopUnderLoad(false);
});
