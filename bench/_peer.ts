// Copyright 2026 the aesm authors. MIT license.
/**
 * The other side of a benchmark, in its own process (so its own core): a
 * server that counts, echoes or broadcasts, or a crowd of fanout clients.
 * Started by `Peer` in `_control.ts`; its role is the first line of stdin,
 * its reports go to stdout as JSON lines. It exits on `{"type":"exit"}`,
 * when stdin closes, or after its `capMs`.
 *
 * @module
 */

import { type Message, messages, wallClock } from "./_control.ts";
import { FrameOpenerLoop } from "./_ceiling.ts";
import { connect, type Impl, type Link, listen, type TlsMaterial } from "./_impls.ts";
import { backendCalls } from "../_crypto/primitives.ts";

interface Role extends Message {
  readonly impl: Impl;
  readonly tls?: TlsMaterial;
  readonly capMs: number;
}

interface SinkRole extends Role {
  readonly warm: number;
  readonly count: number;
}

interface FanoutServerRole extends Role {
  readonly maxConnections: number;
  readonly backlog: number;
  readonly readBuffer: number;
}

interface FanoutClientsRole extends Role {
  readonly port: number;
  readonly concurrency: number;
  readonly readBuffer: number;
}

interface CeilingRole extends Role {
  readonly key: string;
  readonly count: number;
}

type Commands = AsyncIterator<Message>;

const MAX_COMMANDS = 10_000;
const MAX_ECHOES = 100_000_000;

function report(message: Message): void {
  console.log(JSON.stringify(message));
}

/** Answers a `usage` command: the crypto calls this process made, by backend. */
function answerUsage(command: Message): void {
  if (command.type === "usage") report({ type: "usage", ...backendCalls });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs V8's collector (the peer runs with `--expose-gc`) and lets finalizers settle. */
async function collect(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(50);
  }
}

// Counts `warm` messages, reports, then counts `count` more and reports when the last arrives.
async function sink(role: SinkRole, commands: Commands): Promise<void> {
  const server = await listen(role.impl, { tls: role.tls });
  let received = 0;
  let bytes = 0;
  const total = role.warm + role.count;
  server.serve(async (link) => {
    await link.consume((message) => {
      received++;
      if (received > role.warm) bytes += message.length;
      if (received === role.warm) report({ type: "warm" });
      if (received === total) report({ type: "done", t1: wallClock(), count: role.count, bytes });
    }, () => received >= total);
    await link.next(); // Wait for the sender's close.
  });
  report({ type: "ready", port: server.port });
  await untilExit(commands);
}

async function echoLink(link: Link): Promise<void> {
  for (let i = 0; i < MAX_ECHOES; i++) {
    const message = await link.next();
    if (message === undefined) return;
    await link.send(message);
  }
}

async function echo(role: Role, commands: Commands): Promise<void> {
  const server = await listen(role.impl, { tls: role.tls });
  server.serve(echoLink);
  report({ type: "ready", port: server.port });
  await untilExit(commands);
}

async function fanoutServer(role: FanoutServerRole, commands: Commands): Promise<void> {
  const server = await listen(role.impl, {
    tls: role.tls,
    maxConnections: role.maxConnections,
    tcpBacklog: role.backlog,
    readBuffer: role.readBuffer,
  });
  server.serve((link) => link.consume(() => {}, () => false));
  report({ type: "ready", port: server.port });
  for (let i = 0; i < MAX_COMMANDS; i++) {
    const { value: command, done } = await commands.next();
    if (done || command.type === "exit") return;
    answerUsage(command);
    if (command.type === "measure") {
      const expected = command.open as number;
      const deadline = Date.now() + (command.waitMs as number);
      while (server.open !== expected && Date.now() < deadline) await sleep(20);
      await collect();
      const { rss, heapUsed, external } = Deno.memoryUsage();
      report({ type: "memory", rss, heapUsed, external, open: server.open });
    } else if (command.type === "broadcast") {
      const message = new Uint8Array(64);
      new DataView(message.buffer).setUint32(0, command.seq as number);
      const t0 = wallClock();
      await server.broadcast(message);
      report({ type: "sent", t0, t1: wallClock() });
    }
  }
}

async function fanoutClients(role: FanoutClientsRole, commands: Commands): Promise<void> {
  const links: Link[] = [];
  const counts = new Map<number, number>();
  const onMessage = (message: Uint8Array) => {
    const seq = new DataView(message.buffer, message.byteOffset).getUint32(0);
    const count = (counts.get(seq) ?? 0) + 1;
    counts.set(seq, count);
    if (count === links.length) report({ type: "received", seq, t1: wallClock() });
  };
  const endpoint = { impl: role.impl, port: role.port, tls: role.tls };
  report({ type: "ready" });
  for (let i = 0; i < MAX_COMMANDS; i++) {
    const { value: command, done } = await commands.next();
    if (done || command.type === "exit") return;
    answerUsage(command);
    if (command.type !== "connect") continue;
    const count = command.count as number;
    const keep = command.keep as boolean;
    const started = performance.now();
    const made = await inPool(count, role.concurrency, async () => {
      const link = await connect(endpoint, { readBuffer: role.readBuffer });
      if (keep) {
        links.push(link);
        link.consume(onMessage, () => false).catch(() => {});
      } else {
        await link.close();
      }
    });
    report({ type: "connected", count: made, ms: performance.now() - started });
  }
}

/** Runs `task` `count` times, at most `concurrency` at once. */
async function inPool(
  count: number,
  concurrency: number,
  task: () => Promise<void>,
): Promise<number> {
  let started = 0;
  let made = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      await task();
      made++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return made;
}

async function untilExit(commands: Commands): Promise<void> {
  for (let i = 0; i < MAX_COMMANDS; i++) {
    const { value, done } = await commands.next();
    if (done || value.type === "exit") return;
    answerUsage(value);
  }
}

// The receiver's half of the cipher ceiling: opens frames on "go", reports the time it took.
async function ceilingOpener(role: CeilingRole, commands: Commands): Promise<void> {
  const loop = await FrameOpenerLoop.prepare(role.key);
  report({ type: "ready" });
  const { value: command, done } = await commands.next();
  if (done || command.type !== "go") return;
  const t0 = wallClock();
  const bytes = await loop.open(role.count);
  report({ type: "opened", t0, t1: wallClock(), bytes });
  await untilExit(commands);
}

async function main(): Promise<void> {
  const reader = messages(Deno.stdin.readable);
  const commands: Commands = {
    next: async () => {
      const { value, done } = await reader.read();
      return done ? { value: undefined, done: true } : { value, done: false };
    },
  };
  const { value: role, done } = await commands.next();
  if (done) return;
  setTimeout(() => {
    console.error(`peer ${role.type}: hard cap of ${role.capMs} ms reached`);
    Deno.exit(3);
  }, role.capMs as number);
  try {
    switch (role.type) {
      case "sink":
        await sink(role as SinkRole, commands);
        break;
      case "echo":
        await echo(role as Role, commands);
        break;
      case "fanout-server":
        await fanoutServer(role as FanoutServerRole, commands);
        break;
      case "fanout-clients":
        await fanoutClients(role as FanoutClientsRole, commands);
        break;
      case "ceiling-opener":
        await ceilingOpener(role as CeilingRole, commands);
        break;
      default:
        throw new Error(`unknown role ${role.type}`);
    }
  } catch (error) {
    report({ type: "error", message: error instanceof Error ? error.stack : String(error) });
  }
  Deno.exit(0);
}

if (import.meta.main) await main();
