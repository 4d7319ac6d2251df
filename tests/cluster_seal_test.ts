// Copyright 2026 the aesm authors. MIT license.
// The sealing of messages between cluster nodes.
import assert from "node:assert/strict";
import { ClusterSealer, SEAL_OVERHEAD } from "../cluster/_seal.ts";
import { generateClusterKey } from "../cluster.ts";

const text = (bytes: Uint8Array | undefined) => bytes && new TextDecoder().decode(bytes);
const plain = new TextEncoder().encode("a message between nodes");

Deno.test("ClusterSealer: a node opens what another node of the cluster sealed for the channel", async () => {
  const key = generateClusterKey();
  const [a, b] = [await ClusterSealer.create(key), await ClusterSealer.create(key)];
  const sealed = await a.seal(plain, "*");
  assert.equal(sealed.length, plain.length + SEAL_OVERHEAD);
  assert.equal(text(await b.open(sealed, "*")), "a message between nodes");
  assert.equal(
    text(await a.open(await b.seal(plain, "node-a"), "node-a")),
    "a message between nodes",
  );
});

Deno.test("ClusterSealer: each node seals under its own salt, with nonces that count up", async () => {
  const key = generateClusterKey();
  const [a, b] = [await ClusterSealer.create(key), await ClusterSealer.create(key)];
  const [first, second, other] = [
    await a.seal(plain, "*"),
    await a.seal(plain, "*"),
    await b.seal(plain, "*"),
  ];
  assert.deepEqual(first.subarray(0, 16), second.subarray(0, 16));
  assert.notDeepEqual(first.subarray(0, 16), other.subarray(0, 16));
  assert.deepEqual([...first.subarray(16, 28)], [...new Uint8Array(12)]);
  assert.deepEqual([...second.subarray(16, 28)], [...new Uint8Array(11), 1]);
  assert.notDeepEqual(first.subarray(28), second.subarray(28));
});

Deno.test("ClusterSealer: another channel, another cluster key, a short or flipped message do not open", async () => {
  const key = generateClusterKey();
  const [a, b] = [await ClusterSealer.create(key), await ClusterSealer.create(key)];
  const stranger = await ClusterSealer.create(generateClusterKey());
  const sealed = await a.seal(plain, "node-b");
  assert.equal(await b.open(sealed, "*"), undefined);
  assert.equal(await b.open(sealed, "node-c"), undefined);
  assert.equal(await stranger.open(sealed, "node-b"), undefined);
  assert.equal(await b.open(sealed.subarray(0, SEAL_OVERHEAD - 1), "node-b"), undefined);
  for (let i = 0; i < sealed.length; i++) {
    const flipped = sealed.slice();
    flipped[i] ^= 0x01;
    assert.equal(await b.open(flipped, "node-b"), undefined, `byte ${i} flipped still opened`);
  }
  assert.equal(text(await b.open(sealed, "node-b")), "a message between nodes");
});
