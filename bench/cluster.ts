// Copyright 2026 the aesm authors. MIT license.
/**
 * The scaling bench: 1, 2 and 4 server processes joined over NATS on this
 * machine, the same clients spread over them (in their own process).
 *
 *   deno run -A bench/cluster.ts            # 1000 clients, 400 broadcasts, 20 latency rounds
 *   deno run -A bench/cluster.ts --quick    # 200 clients, 100 broadcasts, 10 rounds
 *
 * Needs `nats-server` (apt-get install nats-server); each row starts its own
 * on a free loopback port. Rows:
 * - latency: one node (in turn) broadcasts one message; the time until every
 *   client has it (median and min–max over rounds);
 * - throughput: every node broadcasts its share of the messages at once
 *   (awaiting each `sendAll`); the time until every client has every message,
 *   as broadcasts and deliveries per second, and the cluster messages (one
 *   broadcast crossing NATS to one other node) per second.
 *
 * @module
 */

import { type Message, messages, wallClock } from "./_control.ts";
import { formatNumber, median } from "./_stats.ts";
import { generateClusterKey } from "../cluster.ts";
import { NatsServer } from "../examples/_nats_server.ts";

const PEER = new URL("./_cluster_peer.ts", import.meta.url).pathname;
const quick = Deno.args.includes("--quick");
const CLIENTS = quick ? 200 : 1000;
const BROADCASTS = quick ? 96 : 384; // A multiple of 1, 2 and 4 processes, so every share is equal.
const ROUNDS = quick ? 10 : 20;
const PROCESSES = [1, 2, 4];
const STEP_CAP_MS = 60_000;

/** A subprocess with a JSON-lines control channel. */
class Proc implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #reports: ReadableStreamDefaultReader<Message>;

  constructor(args: string[], env: Record<string, string> = {}) {
    this.#child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
        "sh",
        Deno.execPath(),
        "run",
        "-A",
        PEER,
        ...args,
      ],
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#reports = messages(this.#child.stdout);
  }

  async send(command: Message): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
  }

  async next(type: string): Promise<Message> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cap = new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error(`Cannot bench: no "${type}" in time`)), STEP_CAP_MS)
    );
    try {
      while (true) {
        const { value, done } = await Promise.race([this.#reports.read(), cap]);
        if (done) throw new Error(`Cannot bench: a peer exited before "${type}"`);
        if (value.type === type) return value;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.send({ type: "exit" }).catch(() => {});
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#reports.cancel().catch(() => {});
  }
}

interface Row {
  processes: number;
  latency: number[];
  throughputMs: number;
}

async function measure(processes: number): Promise<Row> {
  const nats = new NatsServer();
  await nats.start();
  const key = Array.from(generateClusterKey(), (b) => b.toString(16).padStart(2, "0")).join("");
  try {
    await using stack = new AsyncDisposableStack();
    const nodes = Array.from(
      { length: processes },
      (_, i) =>
        stack.use(new Proc(["node", String(nats.port), `node-${i}`], { AESM_CLUSTER_KEY: key })),
    );
    const ports = await Promise.all(nodes.map(async (node) => (await node.next("ready")).port));
    for (const node of nodes) {
      for (let tries = 0;; tries++) {
        await node.send({ type: "nodes" });
        if ((await node.next("nodes")).count === processes - 1) break;
        if (tries > 200) throw new Error("Cannot bench: the nodes did not meet");
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
    const clients = stack.use(new Proc(["clients", ports.join(","), String(CLIENTS)]));
    await clients.next("ready");
    const latency: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const node = nodes[round % processes];
      await clients.send({ type: "expect", prefix: `l${round}`, count: 1 });
      const start = wallClock();
      await node.send({ type: "send", prefix: `l${round}`, count: 1 });
      const done = await clients.next("done");
      await node.next("sent");
      latency.push((done.at as number) - start);
    }
    await clients.send({ type: "expect", prefix: "t", count: BROADCASTS });
    const start = wallClock();
    // Each node sends its share with its own prefix's numbers; clients count by prefix "t".
    await Promise.all(
      nodes.map((node) => node.send({ type: "send", prefix: "t", count: BROADCASTS / processes })),
    );
    const done = await clients.next("done");
    for (const node of nodes) await node.next("sent");
    return { processes, latency, throughputMs: (done.at as number) - start };
  } finally {
    await nats.stop();
  }
}

const rows: Row[] = [];
for (const processes of PROCESSES) {
  console.error(`cluster bench: ${processes} process(es), ${CLIENTS} clients`);
  rows.push(await measure(processes));
}
const cpus = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(/^processor/gm)
  ?.length ?? "?";
console.log(`### scaling out (${CLIENTS} clients, ${cpus} cores, Deno ${Deno.version.deno})\n`);
console.log(
  "| server processes | every client has a broadcast, ms (median, min–max) | broadcasts/s to all | deliveries/s | cluster messages/s |",
);
console.log("| --- | --- | --- | --- | --- |");
for (const row of rows) {
  const seconds = row.throughputMs / 1000;
  const cluster = row.processes === 1
    ? "–"
    : formatNumber((BROADCASTS * (row.processes - 1)) / seconds);
  console.log(
    `| ${row.processes} | ${median(row.latency).toFixed(1)} (${
      Math.min(...row.latency).toFixed(1)
    }–${Math.max(...row.latency).toFixed(1)}) | ${formatNumber(BROADCASTS / seconds)} | ${
      formatNumber((BROADCASTS * CLIENTS) / seconds)
    } | ${cluster} |`,
  );
}
