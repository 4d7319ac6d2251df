// Copyright 2026 the aesm authors. MIT license.
// A server-wide memory budget: 64 peers flood a server whose application
// reads nothing, each filling its highWaterMark and then sending a message
// of maxMessageSize. Without a budget the server holds 64 × (mark + message);
// with maxQueuedBytes it holds at most the budget plus a documented overhead,
// in its RSS too (the server runs in its own process, tests/_budget_sink.ts).

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { checkSequenced, mib, RejectionTrap, sequenced, within, withServer } from "./_adversary.ts";

const MiB = 1024 * 1024;
const PEERS = 64;
const HIGH_WATER_MARK = 1 * MiB;
const MAX_MESSAGE_SIZE = 4 * MiB;
const BUDGET = 32 * MiB;
const SAMPLE_MS = 4000;
// Past the budget: one read per connection (256 KiB, and a frame begun
// before it), one message being finished, and the process's own churn
// (garbage between collections, the frames in flight): 96 MiB.
const OVERHEAD = PEERS * 320 * 1024 + MAX_MESSAGE_SIZE + 96 * MiB;

Deno.test(`${PEERS} peers flooding a server that reads nothing stay within maxQueuedBytes, in RSS too`, async () => {
  using trap = new RejectionTrap();
  const script = new URL("./_budget_sink.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      script,
      ...[PEERS, HIGH_WATER_MARK, MAX_MESSAGE_SIZE, BUDGET, SAMPLE_MS]
        .map(String),
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const line = async (): Promise<string> => {
    while (!buffer.includes("\n")) {
      const { value, done } = await within(lines.read(), 60_000, "the sink server");
      if (done) throw new Error("The sink server ended early");
      buffer += value;
    }
    const end = buffer.indexOf("\n");
    const out = buffer.slice(0, end);
    buffer = buffer.slice(end + 1);
    return out;
  };
  const clients: ClientNetwork[] = [];
  let failure: unknown;
  let stop = false;
  try {
    const port = Number(await line());
    for (let i = 0; i < PEERS; i++) {
      clients.push(await ClientNetwork.connect({ hostname: "127.0.0.1", port }));
    }
    const small = new Uint8Array(64 * 1024);
    const large = new Uint8Array(MAX_MESSAGE_SIZE);
    const senders = clients.map(async (client) => {
      try {
        // Just below the mark, so that the queue does not pause reading before the large one.
        for (let sent = small.length; sent < HIGH_WATER_MARK && !stop; sent += small.length) {
          await client.send(small);
        }
        await client.send(large);
        while (!stop) await client.send(small);
      } catch {
        // Closed at the end of the test.
      }
    });
    const figures = JSON.parse(await line());
    stop = true;
    const growth = figures.peakRss - figures.rssBefore;
    console.log(
      `budget: ${PEERS} peers × (${mib(HIGH_WATER_MARK)} + a ${mib(MAX_MESSAGE_SIZE)} message); ` +
        `queued peak ${mib(figures.peakQueued)} (budget ${mib(BUDGET)}); server rss ` +
        `${mib(figures.rssBefore)} -> peak ${mib(figures.peakRss)}, +${mib(growth)} ` +
        `(bound ${mib(BUDGET + OVERHEAD)})`,
    );
    assert.ok(figures.peakQueued <= BUDGET + PEERS * 320 * 1024, `queued ${figures.peakQueued}`);
    assert.ok(growth <= BUDGET + OVERHEAD, `the server's rss grew by ${mib(growth)}`);
    await child.status;
    await Promise.all(clients.map((client) => client.close()));
    await Promise.all(senders);
  } catch (error) {
    failure = error;
  } finally {
    stop = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited.
    }
    await child.status;
    await lines.cancel().catch(() => {});
    await Promise.all(clients.map((client) => client.close()));
  }
  trap.check(failure);
});

Deno.test("With maxQueuedBytes full, every flooding peer keeps its turn as the application reads, in order", async () => {
  const peers = 16;
  const budget = 1 * MiB;
  await withServer({ maxQueuedBytes: budget, maxHandshakesPerAddress: peers }, async (server) => {
    const clients = await Promise.all(
      Array.from(
        { length: peers },
        () => ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port }),
      ),
    );
    const index = new Map(clients.map((client, c) => [client.localAddress, c]));
    let stop = false;
    const senders = clients.map(async (client) => {
      try {
        for (let i = 0; !stop; i++) await client.send(sequenced(i, 16 * 1024));
      } catch {
        // Closed at the end of the test.
      }
    });
    try {
      // Let the budget fill while nothing reads.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const next = new Array<number>(peers).fill(0);
      for (let n = 0; n < 4000; n++) {
        const packet = await within(server.receive(), 10_000, "a packet");
        const c = index.get(packet!.address)!;
        assert.equal(checkSequenced(packet!.data as Uint8Array), next[c]++, `peer ${c} in order`);
      }
      console.log(`budget fairness: packets per peer ${next.join(", ")}`);
      assert.ok(next.every((count) => count > 0), "every peer got through");
      stop = true;
      // Their closes get through once what they sent is read.
      const reader = (async () => {
        for (let p = await server.receive(); p !== undefined; p = await server.receive());
      })();
      const infos = await Promise.all(clients.map((client) => client.close()));
      assert.deepEqual(infos.map((info) => info.reason), clients.map(() => "normal"));
      await server.stop();
      await reader;
    } finally {
      stop = true;
      await Promise.all(clients.map((client) => client.close()));
      await Promise.all(senders);
    }
  }, { sentinel: false });
});
