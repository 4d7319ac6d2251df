// Copyright 2026 the aesm authors. MIT license.
// A psk server under a flood of first messages from an attacker without the
// psk (another process, 1,000 a second and up to 200 in flight, for 2 s): a
// legitimate psk client still connects. With XXpsk0 (PROTOCOL.md section 4)
// the server checks message 1's tag before any DH and never answers the
// attacker with a message 2. The connect times before and during the flood
// are printed, not asserted (speed lives in bench/).

import assert from "node:assert/strict";
import process from "node:process";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import { ServerNetwork } from "../server.ts";
import { PeerProcess, RejectionTrap, ServerWatch, within } from "./_adversary.ts";

const IN_FLIGHT = 200;
const FLOOD_MS = 2000;
const CONNECTS = 30;
/**
 * Attempts per second: the same load before and after the change, near what
 * a shared 2-core machine could answer with XXpsk3 (a message 2 costs the
 * server a key and two DH) and well under what it answers with XXpsk0 (a
 * refusal costs it hashing and one AES-GCM check). The server's CPU per
 * attempt is printed: about half with XXpsk0 in our runs.
 */
const RATE = 1000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

const figures = (times: number[]) => {
  const sorted = [...times].sort((a, b) => a - b);
  return `p50 ${percentile(sorted, 0.5).toFixed(1)} ms, p99 ${
    percentile(sorted, 0.99).toFixed(1)
  } ms`;
};

/** Connects `count` psk clients one after another (or until `until`), timing each connect. */
async function connectTimes(
  port: number,
  psk: Uint8Array,
  count: number,
  until = Infinity,
): Promise<number[]> {
  const keyPair = await generateKeyPair();
  const times: number[] = [];
  while (times.length < count && performance.now() < until) {
    const start = performance.now();
    const client = await ClientNetwork.connect({ hostname: "127.0.0.1", port, psk, keyPair });
    times.push(performance.now() - start);
    await client.close();
  }
  return times;
}

Deno.test(`A legitimate psk client connects during a flood of first messages without the psk (${RATE}/s, up to ${IN_FLIGHT} in flight)`, async () => {
  using trap = new RejectionTrap();
  const psk = crypto.getRandomValues(new Uint8Array(32));
  // The attacker stands for many addresses: the per-address and pending
  // bounds are raised so that its first messages reach the psk check.
  const server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    psk,
    maxPendingHandshakes: 512,
    maxHandshakesPerAddress: 512,
  });
  const watch = new ServerWatch(server);
  let failure: unknown;
  try {
    const before = await connectTimes(server.port, psk, CONNECTS);
    await using attacker = new PeerProcess([
      "pskflood",
      String(server.port),
      String(IN_FLIGHT),
      String(FLOOD_MS),
      String(RATE),
    ]);
    assert.equal(await within(attacker.line(), 10_000, "the attacker to start"), "ready");
    // CPU of this process (the server, and the legitimate client's few
    // handshakes) while the flood lasts: its cost per attempt is what the
    // attacker buys, and it depends less on a busy machine than latency.
    const cpu = process.cpuUsage();
    const during = await connectTimes(server.port, psk, CONNECTS, performance.now() + FLOOD_MS);
    const seen = JSON.parse(
      await within(attacker.line(), FLOOD_MS + 15_000, "the attacker's figures"),
    );
    const { user, system } = process.cpuUsage(cpu);
    console.log(
      `psk flood, ${RATE}/s, at most ${IN_FLIGHT} in flight, for ${FLOOD_MS} ms: a legitimate connect ` +
        `${figures(before)} before, ${figures(during)} during (${during.length} connects); ` +
        `attacker: ${seen.attempts} attempts, ${seen.message2} message 2 answers, ` +
        `${seen.refused} refusals, ${seen.other} other; this process's CPU ${
          ((user + system) / 1000).toFixed(0)
        } ms, ${((user + system) / seen.attempts).toFixed(0)} µs an attempt`,
    );
    assert.ok(during.length > 0, "a legitimate client connected during the flood");
    assert.ok(seen.attempts > 0, "the attacker flooded");
    assert.equal(seen.message2, 0, "the server did no DH for the attacker: no message 2");
    const refused = watch.records.filter((r) => r.reason === "psk-mismatch").length;
    assert.ok(refused > 0, "the attacker was refused psk-mismatch");
  } catch (error) {
    failure = error;
  } finally {
    await server.stop();
    await watch.done();
  }
  trap.check(failure);
});
