// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { Waiters } from "../_queue/abort.ts";
import { ClientNetwork } from "../client.ts";
import { ServerNetwork } from "../server.ts";
import { mib, settledMemory } from "./_adversary.ts";
import { bounded, HOST } from "./_network.ts";

const ABORTED_WAITS = 300_000;

/** Heap growth, after GC, of `count` waits each aborted while nothing arrives. */
async function heapGrowthOfAbortedWaits(
  wait: (options: { signal: AbortSignal }) => Promise<unknown>,
  count: number,
): Promise<number> {
  const before = settledMemory().heapUsed;
  for (let i = 0; i < count; i++) {
    const controller = new AbortController();
    const waiting = wait({ signal: controller.signal });
    controller.abort(new Error("stop waiting"));
    await waiting.catch(() => {});
  }
  return settledMemory().heapUsed - before;
}

Deno.test("Waiters.wait() rejects with the signal's reason and wake() releases the others", async () => {
  const waiters = new Waiters();
  const controller = new AbortController();
  const aborted = waiters.wait(controller.signal);
  const woken = waiters.wait(bounded().signal);
  const reason = new Error("stop");
  controller.abort(reason);
  await assert.rejects(aborted, (error) => error === reason);
  waiters.wake();
  await woken;
  await assert.rejects(waiters.wait(controller.signal), (error) => error === reason);
});

Deno.test("aborted waits on connections, a connection's queue and the activity log keep no memory", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await using _client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connection = await server.accept(bounded());
  while (server.activity.take() !== undefined); // Nothing unread: every wait parks.
  const waits = {
    "connections.wait()": (options: { signal: AbortSignal }) => server.connections.wait(options),
    "connections.wait({ activity: true })": (options: { signal: AbortSignal }) =>
      server.connections.wait({ ...options, activity: true }),
    "connection.data.wait()": (options: { signal: AbortSignal }) => connection.data.wait(options),
    "activity.wait()": (options: { signal: AbortSignal }) => server.activity.wait(options),
  };
  for (const [name, wait] of Object.entries(waits)) {
    await heapGrowthOfAbortedWaits(wait, 1_000); // Warm up: compiled code, inline caches.
    const growth = await heapGrowthOfAbortedWaits(wait, ABORTED_WAITS);
    console.log(`${name}: ${ABORTED_WAITS} aborted waits, heap ${mib(growth)} after GC`);
    assert.ok(growth < 1024 * 1024, `${name} kept ${mib(growth)} after ${ABORTED_WAITS} aborts`);
  }
});
