// Copyright 2026 the aesm authors. MIT license.
// Load: 500 concurrent clients each send messages of mixed sizes (empty to
// 64 KiB) while the server broadcasts. Every packet arrives exactly once,
// in order per connection; no connection is refused.
//
// Scale: 500 clients × 2,000 messages (1,000,000 messages, about 1.2 GiB),
// about 25 s on its own on a 2-core machine. AESM_LOAD_MESSAGES sets the
// messages per client (for example 200 for a quick run).

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import { ServerNetwork } from "../server.ts";
import { mapLimit, mib, Prng, RejectionTrap, ServerWatch, within } from "./_adversary.ts";

const CLIENTS = 500;
const MESSAGES = Number(Deno.env.get("AESM_LOAD_MESSAGES") ?? 2000);
const BROADCASTS = 20;
const SEED = 0x10ad;

/** The size of message `k` of client `c`: mostly small, some up to 64 KiB, some empty. */
function sizeOf(c: number, k: number): number {
  const prng = new Prng(((SEED * 1_000_003) ^ (c * 65_537 + k)) >>> 0);
  const roll = prng.int(100);
  if (roll < 5) return 0;
  if (roll < 65) return prng.int(65);
  if (roll < 93) return prng.range(64, 2048);
  if (roll < 99) return prng.range(2048, 16_384);
  return prng.range(16_384, 65_536);
}

function byteOf(c: number, k: number, i: number): number {
  return (c * 31 + k * 7 + i) & 0xff;
}

function messageOf(c: number, k: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(sizeOf(c, k));
  for (let i = 0; i < bytes.length; i++) bytes[i] = byteOf(c, k, i);
  return bytes;
}

function isMessage(bytes: Uint8Array, c: number, k: number): boolean {
  if (bytes.length !== sizeOf(c, k)) return false;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== byteOf(c, k, i)) return false;
  return true;
}

Deno.test(`${CLIENTS} clients × ${MESSAGES} messages while the server broadcasts: each arrives once, in order`, async () => {
  using trap = new RejectionTrap();
  const server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: CLIENTS + 10,
    // Every client from 127.0.0.1, all at once: past the per-address defaults.
    maxConnectionsPerAddress: CLIENTS + 10,
    maxPendingHandshakes: CLIENTS,
    maxHandshakesPerAddress: CLIENTS,
    handshakeTimeout: 60_000,
    // The suite runs this beside other heavy tests (a browser, Node and Bun processes) on a
    // shared machine: a client the server has not reached for 30 s is slowness, not a fault.
    writeTimeout: 120_000,
    tcpBacklog: 1024,
  });
  const watch = new ServerWatch(server);
  let failure: unknown;
  const clients: ClientNetwork[] = [];
  try {
    const started = performance.now();
    const keyPair = await generateKeyPair();
    // All at once: the connects overlap, the handshakes with them.
    clients.push(
      ...await within(
        Promise.all(
          Array.from({ length: CLIENTS }, () =>
            ClientNetwork.connect({
              hostname: "127.0.0.1",
              port: server.port,
              keyPair,
              handshakeTimeout: 60_000,
              reconnect: false, // One connection per client: its messages, in order, once.
              writeTimeout: 120_000,
            })),
        ),
        90_000,
        "every client to connect",
      ),
    );
    const connected = performance.now();
    const index = new Map(clients.map((client, c) => [client.localAddress, c]));
    await watch.until(
      () => watch.connections.size === CLIENTS ? true : undefined,
      30_000,
      "accepts",
    );

    // The server's application: checks each packet against the next expected from its client.
    const expected = new Array<number>(CLIENTS).fill(0);
    let received = 0;
    let bytes = 0;
    const problems: string[] = [];
    const serverApp = (async () => {
      while (received < CLIENTS * MESSAGES) {
        const packet = await server.receive();
        if (packet === undefined) break;
        const c = index.get(packet.address)!;
        const k = expected[c]++;
        if (!(packet.data instanceof Uint8Array) || !isMessage(packet.data, c, k)) {
          problems.push(`client ${c}: packet ${k} is not its message ${k}`);
        }
        received++;
        bytes += (packet.data as Uint8Array).length;
      }
    })();

    const broadcaster = (async () => {
      for (let b = 0; b < BROADCASTS; b++) {
        const reached = await server.sendAll(`broadcast ${b}`);
        if (reached !== CLIENTS) problems.push(`broadcast ${b} reached ${reached} clients`);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    })();

    await within(
      mapLimit(clients, CLIENTS, async (client, c) => {
        const sending = (async () => {
          for (let k = 0; k < MESSAGES; k++) await client.send(messageOf(c, k));
          await client.flush();
        })();
        for (let b = 0; b < BROADCASTS; b++) {
          const packet = await client.receive();
          if (packet?.data !== `broadcast ${b}`) {
            problems.push(`client ${c}: got ${JSON.stringify(packet?.data)} for broadcast ${b}`);
            break;
          }
        }
        await sending;
      }),
      240_000,
      "every client to send and receive",
    );
    await within(Promise.all([serverApp, broadcaster]), 120_000, "the server to take everything");
    const done = performance.now();
    const infos = await Promise.all(clients.splice(0).map((client) => client.close()));
    assert.deepEqual(problems, []);
    assert.equal(received, CLIENTS * MESSAGES);
    assert.deepEqual(expected, new Array(CLIENTS).fill(MESSAGES), "every client's messages, once");
    assert.ok(infos.every((info) => info.reason === "normal"));
    assert.equal(watch.records.filter((r) => r.event === "refused").length, 0, "none refused");
    for (const client of clients) assert.equal(client.retrieved.length, 0);
    console.log(
      `load: ${CLIENTS} clients connected in ${((connected - started) / 1000).toFixed(1)} s; ` +
        `${received} messages, ${mib(bytes)} and ${BROADCASTS} broadcasts in ${
          ((done - connected) / 1000).toFixed(1)
        } s; rss ${mib(Deno.memoryUsage().rss)}`,
    );
  } catch (error) {
    failure = error;
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await server.stop();
    await watch.done();
  }
  trap.check(failure);
});
