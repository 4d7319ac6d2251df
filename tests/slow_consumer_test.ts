// Copyright 2026 the aesm authors. MIT license.
// One member frozen with SIGSTOP must not hold up a broadcast to the others.
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { ServerNetwork } from "../server.ts";
import { activityOf, bounded, HOST, within } from "./_network.ts";

const CLIENT = new URL("../client.ts", import.meta.url).href;
const MEMBERS = 50;
const BROADCASTS = 400;
const SIZE = 32 * 1024;

/** A member in its own process that connects, prints its address, and reads until the end. */
async function memberProcess(port: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { ClientNetwork } from "${CLIENT}";
       const client = await ClientNetwork.connect({ hostname: "${HOST}", port: ${port} });
       console.log(client.localAddress);
       for await (const packet of client) void packet;`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await within(reader.read(), "the member process to connect");
    if (done) throw new Error("The member process ended early");
    text += value;
  }
  return {
    address: text.trim(),
    signal: (signal: Deno.Signal) => child.kill(signal),
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone.
      }
      await child.status;
      await reader.cancel().catch(() => {});
    },
  };
}

async function roomWithOneFrozen(slowConsumer: "disconnect" | "drop") {
  const server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    writeHighWaterMark: 64 * 1024,
    maxBufferedAmount: 4 * 1024 * 1024,
    slowConsumer,
    maxHandshakesPerAddress: MEMBERS, // All members connect at once from 127.0.0.1.
  });
  await using frozen = await memberProcess(server.port);
  const members = await Promise.all(
    Array.from(
      { length: MEMBERS - 1 },
      () => ClientNetwork.connect({ hostname: HOST, port: server.port }),
    ),
  );
  while (server.connections.size < MEMBERS) await server.connections.wait({ activity: true });
  frozen.signal("SIGSTOP");
  // The 49 read as they go, as members do; the frozen one reads nothing.
  const reading = Promise.all(members.map(async (member) => {
    for (let b = 0; b < BROADCASTS; b++) {
      const packet = await member.receive(bounded());
      assert.equal(packet?.bytes()[0], b % 256);
    }
  }));
  const results = [];
  for (let b = 0; b < BROADCASTS; b++) {
    const payload = new Uint8Array(SIZE);
    payload[0] = b % 256;
    results.push(await within(server.broadcast(payload), `broadcast ${b}`, 10_000));
  }
  // Every broadcast returned while the member was still frozen; the others get everything.
  await reading;
  const frozenStillOpen = server.connections.get(frozen.address)?.isClosed === false;
  frozen.signal("SIGCONT");
  return { server, members, frozen, results, frozenStillOpen };
}

Deno.test("one frozen member of 50 is disconnected as a slow consumer and the other 49 get every broadcast", async () => {
  const { server, members, frozen, results } = await roomWithOneFrozen("disconnect");
  try {
    const disconnected = results.flatMap((result) => result.disconnected);
    assert.equal(disconnected.length, 1);
    assert.equal(disconnected[0].address, frozen.address);
    assert.equal((await disconnected[0].closed).reason, "slow-consumer");
    const record = await activityOf(server, "disconnected");
    assert.deepEqual([record.address, record.reason], [frozen.address, "slow-consumer"]);
    assert.ok(results.every((result) => result.sent >= MEMBERS - 1));
  } finally {
    await Promise.all(members.map((member) => member.close()));
    await server.stop();
  }
});

Deno.test("with slowConsumer drop, a frozen member misses broadcasts, is told in the result, and stays connected", async () => {
  const { server, members, frozen, results, frozenStillOpen } = await roomWithOneFrozen("drop");
  try {
    const dropped = results.filter((result) => result.dropped.length > 0);
    assert.ok(dropped.length > 0, "some broadcasts were dropped for the frozen member");
    assert.ok(dropped.every((result) => result.dropped[0].address === frozen.address));
    assert.ok(frozenStillOpen);
  } finally {
    await Promise.all(members.map((member) => member.close()));
    await server.stop();
  }
});

Deno.test("an unknown slowConsumer policy is a TypeError", async () => {
  assert.throws(
    () => new ServerNetwork(HOST, 0, { slowConsumer: "ignore" as "drop" }),
    (error) => error instanceof TypeError && /"disconnect", "drop" or "wait"/.test(error.message),
  );
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  await assert.rejects(server.broadcast("x", { slowConsumer: "later" as "drop" }), TypeError);
});
