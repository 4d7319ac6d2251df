// Copyright 2026 the aesm authors. MIT license.
/**
 * The subprocess side of the scaling bench (`bench/cluster.ts`). Private.
 *
 *   _cluster_peer.ts node <nats port> <node id>      (cluster key hex in AESM_CLUSTER_KEY)
 *   _cluster_peer.ts clients <port,port,...> <count>
 *
 * A node reports `{"type":"ready","port":p}`; `{"type":"send","prefix":s,"count":n}` makes it
 * `sendAll` n messages `s:i` (awaiting each) and report `{"type":"sent"}`. The clients process
 * connects `count` clients round-robin over the ports and reports `{"type":"ready"}`;
 * `{"type":"expect","prefix":s,"count":n}` reports `{"type":"done","at":wall clock}` once every
 * client has n messages with that prefix. Both exit when their stdin ends.
 *
 * @module
 */

import { NatsCluster } from "../cluster/nats.ts";
import { ClientNetwork } from "../client.ts";
import { ServerNetwork } from "../server.ts";
import { type Message, messages, wallClock } from "./_control.ts";

const HOST = "127.0.0.1";
const encoder = new TextEncoder();
const report = (message: Message) =>
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(message) + "\n"));
const commands = messages(Deno.stdin.readable);

if (Deno.args[0] === "node") await node(Number(Deno.args[1]), Deno.args[2]);
else await clients(Deno.args[1].split(",").map(Number), Number(Deno.args[2]));

async function node(natsPort: number, nodeId: string): Promise<void> {
  const key = Uint8Array.from(
    Deno.env.get("AESM_CLUSTER_KEY")!.match(/../g)!,
    (b) => parseInt(b, 16),
  );
  const adapter = await NatsCluster.connect({ servers: `${HOST}:${natsPort}` });
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    cluster: { adapter, key, nodeId },
    maxHandshakesPerAddress: 4096,
    maxConnectionsPerAddress: 4096,
    maxConnections: 4096,
  });
  report({ type: "ready", port: server.port });
  while (true) {
    const { value, done } = await commands.read();
    if (done || value.type === "exit") return;
    if (value.type === "nodes") report({ type: "nodes", count: server.cluster!.nodes().length });
    if (value.type === "send") {
      for (let i = 0; i < (value.count as number); i++) {
        await server.sendAll(`${value.prefix}:${i}`);
      }
      report({ type: "sent" });
    }
  }
}

async function clients(ports: number[], count: number): Promise<void> {
  const members: ClientNetwork[] = [];
  const got = new Map<string, number[]>();
  const waiting = new Map<string, { count: number; done: number }>();
  const take = (index: number, text: string) => {
    const prefix = text.slice(0, text.indexOf(":"));
    let counts = got.get(prefix);
    if (counts === undefined) got.set(prefix, counts = new Array(count).fill(0));
    counts[index]++;
    const wait = waiting.get(prefix);
    if (wait !== undefined && counts[index] === wait.count && ++wait.done === count) {
      report({ type: "done", at: wallClock() });
    }
  };
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(50, count - i) },
        (_, j) => ClientNetwork.connect({ hostname: HOST, port: ports[(i + j) % ports.length] }),
      ),
    );
    for (const client of batch) {
      const index = members.length;
      members.push(client);
      (async () => {
        for await (const packet of client) take(index, packet.text());
      })();
    }
  }
  report({ type: "ready" });
  while (true) {
    const { value, done } = await commands.read();
    if (done || value.type === "exit") break;
    if (value.type === "expect") {
      const prefix = value.prefix as string;
      const want = value.count as number;
      const counts = got.get(prefix) ?? [];
      const already = counts.filter((n) => n >= want).length;
      if (already === count) report({ type: "done", at: wallClock() });
      else waiting.set(prefix, { count: want, done: already });
    }
  }
  await Promise.all(members.map((client) => client.close()));
}
