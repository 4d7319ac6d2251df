// Copyright 2026 the aesm authors. MIT license.
// Real parts: a nats-server process, three server processes joined on it, 300 clients.
import assert from "node:assert/strict";
import { generateKeyPair } from "../cipher.ts";
import { ClientNetwork } from "../client.ts";
import { generateClusterKey } from "../cluster.ts";
import { NatsCluster } from "../cluster/nats.ts";
import { connect } from "npm:@nats-io/transport-node@3.4.0";
import { freePort, NatsServer } from "../examples/_nats_server.ts";
import { HOST, within } from "./_network.ts";

const NODES = 3;
const CLIENTS = 300;
const NODE_SCRIPT = new URL("./_cluster_process.ts", import.meta.url).pathname;
const POLL_MS = 20;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` until it holds, failing after `ms`. */
async function until(done: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`Timed out after ${ms} ms waiting for ${what}`);
    await delay(POLL_MS);
  }
}

/** A server process on the cluster: its port, its events, and commands to it. */
class Node {
  readonly id: string;
  readonly events: Record<string, unknown>[] = [];
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #reading: Promise<void>;

  constructor(natsPort: number, id: string, key: Uint8Array) {
    this.id = id;
    const keyHex = Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("");
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", NODE_SCRIPT, String(natsPort), id, keyHex],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    let pending = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        this.events.push(JSON.parse(pending.slice(0, newline)));
        pending = pending.slice(newline + 1);
      }
    }
  }

  /** Waits for an event that matches, after the first `from` events; returns it. */
  async event(
    match: (event: Record<string, unknown>) => boolean,
    what: string,
    from = 0,
  ): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await until(() => (found = this.events.slice(from).find(match)) !== undefined, what);
    return found!;
  }

  async command(command: unknown, answer: string): Promise<Record<string, unknown>> {
    const from = this.events.length;
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    return await this.event((e) => answer in e || "error" in e, `${this.id} to answer`, from);
  }

  kill(): void {
    this.#child.kill("SIGKILL");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#reading;
  }
}

/** A client that keeps every text it receives. */
interface Member {
  client: ClientNetwork;
  keyPair: Awaited<ReturnType<typeof generateKeyPair>>;
  got: string[];
  reading: Promise<void>;
}

/** A client of node `node`, that reconnects to the next nodes in turn when its node is lost. */
async function join(ports: number[], node: number, keyPair: Member["keyPair"]): Promise<Member> {
  const endpoints = ports.map((_, i) => ({ hostname: HOST, port: ports[(node + 1 + i) % NODES] }));
  const client = await ClientNetwork.connect({
    hostname: HOST,
    port: ports[node],
    keyPair,
    endpoints: endpoints.slice(0, NODES - 1),
    reconnect: { initialDelay: 50, maxDelay: 500 },
  });
  const got: string[] = [];
  const reading = (async () => {
    for await (const packet of client) got.push(packet.text());
  })();
  return { client, keyPair, got, reading };
}

function count(member: Member, text: string): number {
  return member.got.filter((t) => t === text).length;
}

/** Each node broadcasts `<round> from <id>` then `<round> end <id>`; all must get each once. */
async function broadcastRound(nodes: Node[], members: Member[], round: string): Promise<void> {
  for (const node of nodes) {
    await node.command({ sendAll: `${round} from ${node.id}` }, "sent");
    await node.command({ sendAll: `${round} end ${node.id}` }, "sent");
  }
  await until(
    () => members.every((m) => nodes.every((n) => count(m, `${round} end ${n.id}`) === 1)),
    `every client to get round ${round} from every node`,
  );
  // Each node's messages come in order: a second copy of "from" would have come before "end".
  for (const member of members) {
    for (const node of nodes) assert.equal(count(member, `${round} from ${node.id}`), 1);
  }
}

Deno.test({
  name: "Three server processes on nats-server act as one for 300 clients",
  sanitizeOps: true,
  sanitizeResources: true,
}, async (t) => {
  const key = generateClusterKey();
  const nats = new NatsServer();
  await nats.start();
  const nodes: Node[] = [];
  const members: Member[] = [];
  try {
    for (let i = 0; i < NODES; i++) nodes.push(new Node(nats.port, `node-${i}`, key));
    const ports = await Promise.all(
      nodes.map(async (node) =>
        (await node.event((e) => "ready" in e, `${node.id} to start`)).ready as number
      ),
    );
    for (const node of nodes) {
      await until(
        () =>
          new Set(node.events.filter((e) => e.activity === "node-joined").map((e) => e.node))
            .size === NODES - 1,
        `${node.id} to meet the others`,
      );
    }
    const keyPairs = await Promise.all(Array.from({ length: CLIENTS }, () => generateKeyPair()));
    for (let i = 0; i < CLIENTS; i += 25) {
      members.push(
        ...await within(
          Promise.all(
            keyPairs.slice(i, i + 25).map((pair, j) => join(ports, (i + j) % NODES, pair)),
          ),
          "a batch of clients to connect",
        ),
      );
    }

    await t.step(
      "each node's broadcast reaches all 300 clients exactly once, sealed on NATS",
      async () => {
        // A spy on the broker's side sees every message the nodes exchange.
        const spy = await connect({ servers: `${HOST}:${nats.port}` });
        const seen: Uint8Array[] = [];
        spy.subscribe("aesm.>", { callback: (_, message) => void seen.push(message.data) });
        await spy.flush();
        try {
          await broadcastRound(nodes, members, "r1");
          await spy.flush();
        } finally {
          await spy.close();
        }
        assert.ok(seen.length >= 2 * NODES, `the spy saw ${seen.length} messages`);
        const plain = seen.map((bytes) => new TextDecoder().decode(bytes)).join("\n");
        assert.ok(!plain.includes("r1 from"), "a broadcast crossed NATS in plaintext");
        assert.ok(!plain.includes("node-"), "a header crossed NATS in plaintext");
      },
    );

    await t.step("sendTo() by public key reaches a client on another node", async () => {
      const onNode2 = members[2]; // Client i is on node i % 3.
      const keyHex = hex(onNode2.keyPair.publicKey);
      const answer = await nodes[0].command({ sendTo: "direct", key: keyHex }, "routed");
      assert.deepEqual(answer, { routed: true });
      await until(() => count(onNode2, "direct") === 1, "the routed message");
      assert.equal(members.filter((m) => count(m, "direct") > 0).length, 1);
    });

    await t.step("a node killed with SIGKILL: the others carry on, its clients move", async () => {
      const [n0, n1, n2] = nodes;
      const from = [n0.events.length, n1.events.length];
      n2.kill();
      await n0.event(
        (e) => e.activity === "node-left" && e.node === "node-2",
        "node-left",
        from[0],
      );
      await n1.event(
        (e) => e.activity === "node-left" && e.node === "node-2",
        "node-left",
        from[1],
      );
      // Its clients reconnect by themselves to the next node of their endpoints (node 0),
      // keeping their keys.
      const orphans = members.filter((_, i) => i % NODES === 2);
      const killed = `${HOST}:${ports[2]}`;
      await until(
        () => orphans.every((m) => !m.client.connection.isClosed && m.client.address !== killed),
        "the killed node's clients to reconnect to another node",
      );
      assert.ok(orphans.every((m) => m.client.address === `${HOST}:${ports[0]}`));
      await broadcastRound([n0, n1], members, "r2");
      const moved = members[2]; // Now on node 0.
      const answer = await n1.command({
        sendTo: "after the kill",
        key: hex(moved.keyPair.publicKey),
      }, "routed");
      assert.deepEqual(answer, { routed: true });
      await until(() => count(moved, "after the kill") === 1, "the routed message");
    });

    await t.step("NATS restarted: the cluster heals and says so in the activity log", async () => {
      const live = nodes.slice(0, 2);
      const from = live.map((n) => n.events.length);
      await nats.stop("SIGKILL");
      for (const [i, node] of live.entries()) {
        await node.event(
          (e) => e.activity === "cluster-down",
          `${node.id} to see NATS go`,
          from[i],
        );
      }
      await nats.start();
      for (const [i, node] of live.entries()) {
        await node.event((e) => e.activity === "cluster-up", `${node.id} to heal`, from[i]);
      }
      await broadcastRound(live, members, "r3");
      // Presence healed too: a client on node 1 is reachable from node 0 again.
      const onNode1 = members.find((_, i) => i % NODES === 1)!;
      const answer = await live[0].command(
        { sendTo: "after the restart", key: hex(onNode1.keyPair.publicKey) },
        "routed",
      );
      assert.deepEqual(answer, { routed: true });
      await until(() => count(onNode1, "after the restart") === 1, "the routed message");
    });
  } finally {
    await Promise.all(members.map(async (m) => {
      await m.client.close();
      await m.reading;
    }));
    await Promise.all(nodes.map((node) => node[Symbol.asyncDispose]()));
    await nats.stop("SIGKILL");
  }
});

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("NatsCluster.connect() rejects when no NATS answers, and checks its options", async () => {
  await assert.rejects(NatsCluster.connect({ servers: `${HOST}:${freePort()}` }));
  await assert.rejects(
    NatsCluster.connect({ servers: `${HOST}:1`, subject: "no spaces" }),
    (error: Error) =>
      error instanceof TypeError && /expected NATS subject tokens/.test(error.message),
  );
});

Deno.test("NatsCluster.connect() signs in with the user and password NATS asks for", async () => {
  const nats = new NatsServer(freePort(), ["--user", "aesm", "--pass", "s3cret"]);
  await nats.start();
  try {
    const servers = `${HOST}:${nats.port}`;
    // (Not tried here without them: under Deno 2.9.6 the NATS client rejects, and then its
    // socket's ECONNRESET escapes as an uncaught error. README, Scaling out, says so.)
    const adapter = await NatsCluster.connect({
      servers,
      user: { name: "aesm", password: "s3cret" },
    });
    await adapter.close();
  } finally {
    await nats.stop("SIGKILL");
  }
});
