// Copyright 2026 the aesm authors. MIT license.
// Servers joined by the in-process bus: broadcast, routing, presence, sealing, healing.
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import {
  type ClusterAdapter,
  type ClusterHandlers,
  generateClusterKey,
  InProcessCluster,
} from "../cluster.ts";
import { ServerNetwork } from "../server.ts";
import { activityOf, bounded, HOST, turn, within } from "./_network.ts";

/** An adapter that records what it publishes and can replay it. */
function recording(inner: ClusterAdapter) {
  const published: { bytes: Uint8Array<ArrayBuffer>; to?: string }[] = [];
  let handlers: ClusterHandlers | undefined;
  const adapter: ClusterAdapter = {
    maxPayload: inner.maxPayload,
    join: (nodeId, h) => {
      handlers = h;
      return inner.join(nodeId, h);
    },
    publish: (bytes, to) => {
      published.push({ bytes: bytes.slice(), to });
      inner.publish(bytes, to);
    },
    close: () => inner.close(),
  };
  return { adapter, published, handlers: () => handlers! };
}

async function cluster(nodes: number, bus = new InProcessCluster(), key = generateClusterKey()) {
  const servers: ServerNetwork[] = [];
  for (let i = 0; i < nodes; i++) {
    servers.push(
      await ServerNetwork.listen({
        hostname: HOST,
        port: 0,
        cluster: { adapter: bus.adapter(), key, nodeId: `node-${i}` },
      }),
    );
  }
  // Every node has heard from every other.
  for (const server of servers) {
    while (server.cluster!.nodes().length < nodes - 1) await delay(5);
  }
  return {
    bus,
    servers,
    async [Symbol.asyncDispose]() {
      await Promise.all(servers.map((server) => server.stop()));
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function clientsOf(servers: ServerNetwork[], perNode: number): Promise<ClientNetwork[]> {
  const clients: ClientNetwork[] = [];
  for (const server of servers) {
    for (let i = 0; i < perNode; i++) {
      clients.push(await ClientNetwork.connect({ hostname: HOST, port: server.port }));
    }
  }
  // Every node knows where every client is.
  for (const server of servers) {
    for (const client of clients) await server.cluster!.ready(client.publicKey, bounded());
  }
  return clients;
}

async function closeAll(clients: ClientNetwork[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
}

Deno.test("sendAll() on each node reaches every client of every node exactly once", async () => {
  await using c = await cluster(3);
  const clients = await clientsOf(c.servers, 5);
  try {
    for (const [i, server] of c.servers.entries()) {
      assert.equal(await server.sendAll(`from ${i}`), 5);
      assert.equal(await server.sendAll(`end ${i}`), 5);
    }
    for (const client of clients) {
      const got: string[] = [];
      // Each node's messages come in order, so its "end" comes after any copy of its "from".
      while (got.filter((text) => text.startsWith("end")).length < 3) {
        const packet = await client.receive(bounded());
        got.push(packet!.text());
      }
      assert.deepEqual(got.filter((t) => t.startsWith("from")).sort(), [
        "from 0",
        "from 1",
        "from 2",
      ]);
    }
  } finally {
    await closeAll(clients);
  }
});

Deno.test("sendTo() reaches a client on another node by public key or by address", async () => {
  await using c = await cluster(2);
  const [a, b] = c.servers;
  const [onA, onB] = [
    await ClientNetwork.connect({ hostname: HOST, port: a.port }),
    await ClientNetwork.connect({ hostname: HOST, port: b.port }),
  ];
  try {
    assert.equal(await a.cluster!.ready(onB.publicKey, bounded()), "node-1");
    await b.cluster!.ready(onA.publicKey, bounded());
    await a.sendTo("by key", onB.publicKey);
    assert.equal((await onB.receive(bounded()))?.text(), "by key");
    await b.sendTo(new Uint8Array([1, 2, 3]), onA.localAddress);
    assert.deepEqual((await onA.receive(bounded()))?.bytes(), new Uint8Array([1, 2, 3]));
    await a.sendTo("local by key", onA.publicKey);
    assert.equal((await onA.receive(bounded()))?.text(), "local by key");
    assert.equal(a.cluster!.locate(onA.publicKey), "node-0");
    assert.deepEqual(
      a.cluster!.clients().map((c) => [c.node, c.publicKey, c.address]),
      [["node-0", onA.publicKey, onA.localAddress], ["node-1", onB.publicKey, onB.localAddress]],
    );
    await assert.rejects(
      a.sendTo("nobody", generateClusterKey()),
      /no node of the cluster holds public key/,
    );
    await assert.rejects(a.sendTo("nobody", "127.0.0.1:1"), RangeError);
  } finally {
    await closeAll([onA, onB]);
  }
});

Deno.test("A client that leaves one node is forgotten by the others", async () => {
  await using c = await cluster(2);
  const [a, b] = c.servers;
  const client = await ClientNetwork.connect({ hostname: HOST, port: b.port });
  await a.cluster!.ready(client.publicKey, bounded());
  await client.close();
  await within(
    (async () => {
      while (a.cluster!.locate(client.publicKey) !== undefined) await delay(5);
    })(),
    "the leave to reach the other node",
  );
  await assert.rejects(a.sendTo("gone", client.publicKey), RangeError);
});

Deno.test("A node that stops is logged as left by the others, its clients forgotten", async () => {
  const bus = new InProcessCluster();
  await using c = await cluster(2, bus);
  const [a, b] = c.servers;
  const client = await ClientNetwork.connect({ hostname: HOST, port: b.port });
  await a.cluster!.ready(client.publicKey, bounded());
  const joined = await activityOf(a, "node-joined");
  assert.equal(joined.address, "node-1");
  await b.stop();
  const left = await activityOf(a, "node-left");
  assert.equal(left.address, "node-1");
  assert.deepEqual(a.cluster!.nodes(), []);
  assert.equal(a.cluster!.locate(client.publicKey), undefined);
  await client.close();
});

Deno.test("A node that goes silent is taken as gone after three heartbeats", async () => {
  const bus = new InProcessCluster();
  const key = generateClusterKey();
  const silent = bus.adapter();
  await using a = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { adapter: bus.adapter(), key, heartbeatInterval: 50 },
  });
  // A node that says hello and then nothing: its heartbeat is a minute apart.
  await using b = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { key, heartbeatInterval: 60_000, adapter: silent },
  });
  await activityOf(a, "node-joined");
  const left = await activityOf(a, "node-left");
  assert.equal(left.address, b.cluster!.nodeId);
  assert.match(left.message, /went silent/);
});

Deno.test("Nothing crosses the bus in plaintext, and replays are dropped", async () => {
  const bus = new InProcessCluster();
  const key = generateClusterKey();
  const recorder = recording(bus.adapter());
  await using a = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { adapter: recorder.adapter, key },
  });
  await using b = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { adapter: bus.adapter(), key },
  });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: b.port });
  await a.cluster!.ready(client.publicKey, bounded());
  const secret = "the secret plan, in plain words";
  await a.sendAll(secret);
  assert.equal((await client.receive(bounded()))?.text(), secret);
  const needle = new TextEncoder().encode("secret plan");
  const keyHex = Array.from(client.publicKey, (x) => x.toString(16).padStart(2, "0")).join("");
  for (const { bytes } of recorder.published) {
    assert.ok(!contains(bytes, needle), "a published message holds the plaintext");
    assert.ok(!new TextDecoder().decode(bytes).includes(keyHex), "presence crossed in the clear");
  }
  // The bus delivers every recorded message again: none reaches the client twice.
  const published = recorder.published.slice();
  const other = bus.adapter();
  await other.join("replayer", { receive: () => {}, link: () => {} });
  for (const { bytes, to } of published) other.publish(bytes, to);
  await a.sendAll("after");
  assert.equal((await client.receive(bounded()))?.text(), "after");
  await other.close();
});

Deno.test("A node with another key neither reads nor injects messages", async () => {
  const bus = new InProcessCluster();
  await using a = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { adapter: bus.adapter(), key: generateClusterKey() },
  });
  await using b = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { adapter: bus.adapter(), key: generateClusterKey(), heartbeatInterval: 20 },
  });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: b.port });
  await b.accept();
  await a.sendAll("from a stranger");
  for (let i = 0; i < 10; i++) await delay(10);
  assert.deepEqual([a.cluster!.nodes(), b.cluster!.nodes()], [[], []]);
  await b.sendAll("own");
  assert.equal((await client.receive(bounded()))?.text(), "own");
});

Deno.test("The cluster heals after the bus is interrupted, and says so in the activity log", async () => {
  await using c = await cluster(2);
  const [a, b] = c.servers;
  c.bus.interrupt();
  assert.equal((await activityOf(a, "cluster-down")).address, "node-0");
  assert.equal(a.cluster!.linked, false);
  const client = await ClientNetwork.connect({ hostname: HOST, port: b.port });
  await b.accept();
  await turn();
  assert.equal(a.cluster!.locate(client.publicKey), undefined);
  c.bus.restore();
  assert.match((await activityOf(a, "cluster-up")).message, /up again/);
  assert.equal(await a.cluster!.ready(client.publicKey, bounded()), "node-1");
  await a.sendAll("healed");
  assert.equal((await client.receive(bounded()))?.text(), "healed");
  await client.close();
});

Deno.test("A message larger than the bus carries is refused before it is sent", async () => {
  await using c = await cluster(2);
  const [a] = c.servers;
  await assert.rejects(a.sendAll(new Uint8Array(2 * 1024 * 1024)), /more than the bus carries/);
});

Deno.test("The cluster option is checked", () => {
  const adapter = new InProcessCluster().adapter();
  assert.throws(
    () => new ServerNetwork(HOST, 0, { cluster: { adapter, key: new Uint8Array(16) } }),
    (error: Error) =>
      error instanceof RangeError && /expected 32 bytes.*got 16 bytes/.test(error.message),
  );
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => new ServerNetwork(HOST, 0, { cluster: "nats://127.0.0.1" as any }),
    TypeError,
  );
});

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("reusePort without Deno's --unstable-net is a TypeError, not an exit", () => {
  assert.equal(typeof (Deno as { listenDatagram?: unknown }).listenDatagram, "undefined");
  assert.throws(
    () => new ServerNetwork(HOST, 0, { reusePort: true }),
    (error: Error) =>
      error instanceof TypeError && /run Deno with --unstable-net/.test(error.message),
  );
});

Deno.test("A replay from a node that left is dropped, and a node back under its id is heard", async () => {
  const bus = new InProcessCluster();
  const key = generateClusterKey();
  await using a = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { adapter: bus.adapter(), key, nodeId: "a" },
  });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: a.port });
  await a.accept();
  const recorder = recording(bus.adapter());
  const b = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { adapter: recorder.adapter, key, nodeId: "b" },
  });
  assert.equal((await activityOf(a, "node-joined")).address, "b");
  await b.sendAll("once");
  assert.equal((await client.receive(bounded()))?.text(), "once");
  await b.stop();
  assert.equal((await activityOf(a, "node-left")).address, "b");

  const replayer = bus.adapter();
  await replayer.join("replayer", { receive: () => {}, link: () => {} });
  for (const { bytes, to } of recorder.published) replayer.publish(bytes, to);
  await replayer.close();
  await using again = await ServerNetwork.listen({
    hostname: HOST,
    cluster: { adapter: bus.adapter(), key, nodeId: "b" },
  });
  // The first record after the replay is the new node's join: the replay woke nothing.
  const next = await activityOf(a, "node-joined");
  assert.equal(next.address, "b");
  assert.deepEqual(a.cluster!.nodes(), ["b"]);
  await again.sendAll("from the new b");
  assert.equal((await client.receive(bounded()))?.text(), "from the new b");
});

Deno.test("sendTo() by public key without a cluster reaches that client; an unknown key is a RangeError", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST });
  await using client = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  await server.accept();
  await server.sendTo("by key", client.publicKey);
  assert.equal((await client.receive(bounded()))?.text(), "by key");
  await assert.rejects(
    server.sendTo("nobody", generateClusterKey()),
    (error: Error) =>
      error instanceof RangeError && /no open connection with public key/.test(error.message),
  );
});

Deno.test("With shareActivity, a node's log shows the clients of the others, naming their node", async () => {
  const bus = new InProcessCluster();
  const key = generateClusterKey();
  const shared = (nodeId: string) => ({ adapter: bus.adapter(), key, nodeId, shareActivity: true });
  await using a = await ServerNetwork.listen({ hostname: HOST, cluster: shared("a") });
  await using b = await ServerNetwork.listen({ hostname: HOST, cluster: shared("b") });
  const client = await ClientNetwork.connect({ hostname: HOST, port: b.port });
  const connected = await activityOf(a, "connected");
  assert.deepEqual(
    [connected.node, connected.address, connected.publicKey],
    ["b", client.localAddress, client.publicKey],
  );
  await client.close();
  const left = await activityOf(a, "disconnected");
  assert.deepEqual([left.node, left.reason, left.clean], ["b", "normal", true]);
  // b's own records name no node; cluster events (a met b) stay on their node.
  const own = await activityOf(b, "connected");
  assert.equal(own.node, undefined);
  const rest: string[] = [];
  for (let record = b.activity.take(); record; record = b.activity.take()) {
    // When b logs that it met a depends on the heartbeats: it may come after the client.
    if (record.event !== "node-joined") rest.push(`${record.event} ${record.node ?? "-"}`);
  }
  assert.deepEqual(rest, ["disconnected -"]);
});

Deno.test("A client with endpoints reconnects to the next node when its node stops", async () => {
  await using c = await cluster(2);
  const [a, b] = c.servers;
  await using client = await ClientNetwork.connect({
    hostname: HOST,
    port: a.port,
    endpoints: [{ hostname: HOST, port: b.port }],
    reconnect: { initialDelay: 20, maxDelay: 200 },
  });
  await a.cluster!.ready(client.publicKey, bounded());
  await a.stop();
  const events: string[] = [];
  while (events.at(-1) !== `connected ${b.address}`) {
    const record = await client.activity.receive(bounded());
    assert.ok(record !== undefined, "the client's log ended");
    events.push(`${record.event} ${record.address}`);
  }
  assert.deepEqual(events, [
    `connected ${a.address}`,
    `disconnected ${a.address}`,
    `reconnecting ${b.address}`,
    `connected ${b.address}`,
  ]);
  assert.equal(client.address, b.address);
  assert.equal(await b.cluster!.ready(client.publicKey, bounded()), "node-1");
  await b.sendTo("found you", client.publicKey);
  assert.equal((await client.receive(bounded()))?.text(), "found you");
});

Deno.test("The endpoints option is checked", () => {
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => new ClientNetwork(HOST, 1, { endpoints: "127.0.0.1:2" as any }),
    (error: Error) => error instanceof TypeError && /expected an array/.test(error.message),
  );
  assert.throws(() => new ClientNetwork(HOST, 1, { endpoints: [{ port: 70000 }] }), RangeError);
});
