// Copyright 2026 the aesm authors. MIT license.
/**
 * The scenarios: what each measures and how, for any implementation.
 * Private.
 *
 * @module
 */

import { type Message, wallClock } from "./_control.ts";
import { ceilingKey, FRAME_PLAINTEXT, sealFrames } from "./_ceiling.ts";
import {
  connect,
  type Endpoint,
  type Impl,
  type TlsMaterial,
  usesTls,
  WS_IMPLS,
} from "./_impls.ts";
import { median, percentile } from "./_stats.ts";
import type { Trial } from "./_trial.ts";

/** A column of a scenario's table. */
export interface Metric {
  readonly key: string;
  readonly label: string;
  readonly better: "higher" | "lower";
}

/** Values of one measurement, by metric key. */
export type Values = Record<string, number>;

/** One table of the report. */
export interface Scenario {
  readonly id: string;
  readonly title: string;
  readonly how: string;
  readonly metrics: readonly Metric[];
  readonly capMs: number;
  /** Why the scenario cannot run here, if it cannot. */
  readonly skip?: string;
  /** The implementations it measures, the first over each other one (default: aesm, TLS, TCP). */
  readonly impls?: readonly Impl[];
  run(impl: Impl, trial: Trial): Promise<Values>;
}

/** The counts of one mode. */
export interface Scale {
  readonly small: number;
  readonly bulkMessages: number;
  readonly rtt: number;
  readonly handshakes: number;
  readonly fanout: readonly number[];
  readonly broadcasts: number;
  /** Multiplies every cap. */
  readonly capFactor: number;
}

/** Full counts, as the issue gives them. */
export const FULL: Scale = {
  small: 1_000_000,
  bulkMessages: 1024,
  rtt: 20_000,
  handshakes: 1_000,
  fanout: [1_000, 5_000],
  broadcasts: 5,
  capFactor: 1,
};

/** Counts for iterating: the whole run stays under a minute. */
export const QUICK: Scale = {
  small: 100_000,
  bulkMessages: 256,
  rtt: 2_000,
  handshakes: 200,
  fanout: [200],
  broadcasts: 3,
  capFactor: 0.2,
};

const SMALL_SIZE = 64;
const SMALL_WARM = 10_000;
const BULK_SIZE = 1024 * 1024;
const BULK_WARM = 32;
const FANOUT_CONCURRENCY = 64;
const FANOUT_WARMUP = 16;
// The baselines' per-connection read buffer in the fanout (memory) scenario.
const FANOUT_READ_BUFFER = 4 * 1024;

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + 65536)));
  }
  return bytes;
}

function endpoint(impl: Impl, port: number, tls: TlsMaterial | undefined): Endpoint {
  return { impl, port, tls: usesTls(impl) ? tls : undefined };
}

function tlsFor(impl: Impl, tls: TlsMaterial | undefined): TlsMaterial | undefined {
  return usesTls(impl) ? tls : undefined;
}

// One way: the sender here, the receiver in a peer that reports when the last message arrived.
async function oneWay(
  impl: Impl,
  trial: Trial,
  tls: TlsMaterial | undefined,
  size: number,
  count: number,
  warm: number,
): Promise<{ seconds: number; bytes: number }> {
  const peer = trial.peer({ type: "sink", impl, tls: tlsFor(impl, tls), warm, count });
  const { port } = await peer.next<{ type: "ready"; port: number }>("ready");
  const link = trial.link(await connect(endpoint(impl, port, tls)));
  const message = randomBytes(size);
  for (let i = 0; i < warm; i++) {
    trial.check();
    await link.send(message);
  }
  await peer.next("warm");
  const done = peer.next<{ type: "done"; t1: number; bytes: number }>("done");
  done.catch(() => {});
  const t0 = wallClock();
  for (let i = 0; i < count; i++) {
    if ((i & 1023) === 0) trial.check();
    await link.send(message);
  }
  const { t1, bytes } = await done;
  await link.close();
  return { seconds: (t1 - t0) / 1000, bytes };
}

async function roundTrips(
  impl: Impl,
  trial: Trial,
  tls: TlsMaterial | undefined,
  count: number,
): Promise<Values> {
  const peer = trial.peer({ type: "echo", impl, tls: tlsFor(impl, tls) });
  const { port } = await peer.next<{ type: "ready"; port: number }>("ready");
  const link = trial.link(await connect(endpoint(impl, port, tls)));
  const message = randomBytes(SMALL_SIZE);
  const warm = Math.ceil(count / 10);
  const samples: number[] = [];
  for (let i = 0; i < warm + count; i++) {
    trial.check();
    const start = performance.now();
    await link.send(message);
    const echoed = await link.next();
    if (echoed?.length !== SMALL_SIZE) throw new Error("Cannot measure rtt: bad echo");
    if (i >= warm) samples.push((performance.now() - start) * 1000);
  }
  await link.close();
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
}

// Connect, handshake, one message echoed (unless `bare`), close; `concurrency` connectors at once.
async function handshakes(
  impl: Impl,
  trial: Trial,
  tls: TlsMaterial | undefined,
  count: number,
  concurrency: number,
  bare: boolean,
): Promise<Values> {
  const peer = trial.peer({ type: "echo", impl, tls: tlsFor(impl, tls) });
  const { port } = await peer.next<{ type: "ready"; port: number }>("ready");
  const target = endpoint(impl, port, tls);
  const message = randomBytes(SMALL_SIZE);
  const once = async () => {
    const link = trial.link(await connect(target, { readBuffer: 4096 }));
    if (!bare) {
      await link.send(message);
      if ((await link.next())?.length !== SMALL_SIZE) throw new Error("Cannot handshake: bad echo");
    }
    await link.close();
  };
  const pool = async (total: number) => {
    let started = 0;
    const worker = async () => {
      while (started < total) {
        trial.check();
        started++;
        await once();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  await pool(Math.max(2 * concurrency, Math.ceil(count / 20)));
  const start = performance.now();
  await pool(count);
  return { rate: count / ((performance.now() - start) / 1000) };
}

// Both halves of the cipher ceiling at once: sealing here, opening in a peer.
async function ceiling(trial: Trial, count: number): Promise<Values> {
  const key = ceilingKey();
  const peer = trial.peer({ type: "ceiling-opener", impl: "aesm", key, count });
  await peer.next("ready");
  const opened = peer.next<{ type: "opened"; t0: number; t1: number; bytes: number }>("opened");
  opened.catch(() => {});
  await peer.send({ type: "go" });
  const t0 = wallClock();
  const sealedBytes = await sealFrames(key, count, () => trial.check());
  const t1 = wallClock();
  const open = await opened;
  const seal = sealedBytes / 1e6 / ((t1 - t0) / 1000);
  const openRate = open.bytes / 1e6 / ((open.t1 - open.t0) / 1000);
  return { rate: Math.min(seal, openRate), seal, open: openRate };
}

interface Memory extends Message {
  readonly type: "memory";
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly open: number;
}

async function fanout(
  impl: Impl,
  trial: Trial,
  tls: TlsMaterial | undefined,
  clients: number,
  broadcasts: number,
): Promise<Values> {
  const server = trial.peer({
    type: "fanout-server",
    impl,
    tls: tlsFor(impl, tls),
    maxConnections: clients + FANOUT_WARMUP + 64,
    backlog: 4096,
    readBuffer: FANOUT_READ_BUFFER,
  });
  const { port } = await server.next<{ type: "ready"; port: number }>("ready");
  const crowd = trial.peer({
    type: "fanout-clients",
    impl,
    tls: tlsFor(impl, tls),
    port,
    concurrency: FANOUT_CONCURRENCY,
    readBuffer: FANOUT_READ_BUFFER,
  });
  await crowd.next("ready");
  const waitMs = 10_000;
  await crowd.ask({ type: "connect", count: FANOUT_WARMUP, keep: false }, "connected");
  const before = await server.ask<Memory>({ type: "measure", open: 0, waitMs }, "memory");
  await crowd.ask({ type: "connect", count: clients, keep: true }, "connected");
  const after = await server.ask<Memory>({ type: "measure", open: clients, waitMs }, "memory");
  if (after.open !== clients) {
    throw new Error(`Cannot measure fanout: ${after.open} of ${clients} connections open`);
  }
  const times: number[] = [];
  const sends: number[] = [];
  for (let seq = 0; seq <= broadcasts; seq++) {
    trial.check();
    const received = crowd.next<{ type: "received"; t1: number }>("received");
    received.catch(() => {});
    const sent = await server.ask<{ type: "sent"; t0: number; t1: number }>(
      { type: "broadcast", seq },
      "sent",
    );
    const { t1 } = await received;
    if (seq === 0) continue;
    times.push(t1 - sent.t0);
    sends.push(sent.t1 - sent.t0);
  }
  return {
    time: median(times),
    send: median(sends),
    memory: (after.rss - before.rss) / clients / 1024,
    live: (after.heapUsed + after.external - before.heapUsed - before.external) / clients / 1024,
  };
}

/** Builds the scenarios for a scale. */
export function scenarios(
  scale: Scale,
  tls: TlsMaterial | undefined,
  fdLimit: number,
): Scenario[] {
  const cap = (seconds: number) => Math.round(seconds * 1000 * scale.capFactor);
  const rate: Metric = { key: "rate", label: "", better: "higher" };
  const list: Scenario[] = [
    {
      id: "small",
      title: `small: ${scale.small.toLocaleString("en-US")} messages of 64 B one way`,
      how: `sender awaits each send; msgs/s at the receiver (subprocess), after ` +
        `${SMALL_WARM.toLocaleString("en-US")} warm-up messages`,
      metrics: [{ ...rate, label: "msgs/s" }],
      capMs: cap(150),
      run: async (impl, trial) => {
        const { seconds } = await oneWay(impl, trial, tls, SMALL_SIZE, scale.small, SMALL_WARM);
        return { rate: scale.small / seconds };
      },
    },
    {
      id: "bulk",
      title: `bulk: ${scale.bulkMessages.toLocaleString("en-US")} MiB in 1 MiB messages`,
      how: `sender awaits each send; MB/s (10^6 B) of payload at the receiver (subprocess), ` +
        `after ${BULK_WARM} warm-up messages`,
      metrics: [{ ...rate, label: "MB/s" }],
      capMs: cap(100),
      run: async (impl, trial) => {
        const { seconds, bytes } = await oneWay(
          impl,
          trial,
          tls,
          BULK_SIZE,
          scale.bulkMessages,
          BULK_WARM,
        );
        return { rate: bytes / 1e6 / seconds };
      },
    },
    {
      id: "ceiling",
      title:
        `cipher ceiling: ${scale.bulkMessages.toLocaleString("en-US")} MiB in 64 KiB frames, ` +
        "sealed here and opened in a subprocess at once, no sockets",
      how: "aesm's own seal path (4 frames in flight, as the write pump) and open path " +
        "(FrameOpener, batches of 4 frames, as one 256 KiB read) on the same backends as the " +
        "connections; MB/s of plaintext of the slower half, which bounds bulk",
      metrics: [
        { ...rate, label: "MB/s" },
        { key: "seal", label: "seal MB/s", better: "higher" },
        { key: "open", label: "open MB/s", better: "higher" },
      ],
      capMs: cap(100),
      impls: ["aesm"],
      run: (_impl, trial) =>
        ceiling(trial, Math.ceil(scale.bulkMessages * BULK_SIZE / FRAME_PLAINTEXT)),
    },
    {
      id: "rtt",
      title: `rtt: ${scale.rtt.toLocaleString("en-US")} ping-pongs of 64 B`,
      how: "client here, echo server in a subprocess; after 10% warm-up round trips",
      metrics: [
        { key: "p50", label: "p50 µs", better: "lower" },
        { key: "p99", label: "p99 µs", better: "lower" },
      ],
      capMs: cap(80),
      run: (impl, trial) => roundTrips(impl, trial, tls, scale.rtt),
    },
  ];
  list.push(
    {
      id: "ws-small",
      title: `WebSocket small: ${scale.small.toLocaleString("en-US")} messages of 64 B one way`,
      how: `as small, over WebSocket: aesm over ws:// against Deno's WebSocket over TLS ` +
        `(wss://, one binary message each)`,
      metrics: [{ ...rate, label: "msgs/s" }],
      capMs: cap(150),
      impls: WS_IMPLS,
      run: async (impl, trial) => {
        const { seconds } = await oneWay(impl, trial, tls, SMALL_SIZE, scale.small, SMALL_WARM);
        return { rate: scale.small / seconds };
      },
    },
    {
      id: "ws-rtt",
      title: `WebSocket rtt: ${scale.rtt.toLocaleString("en-US")} ping-pongs of 64 B`,
      how: "as rtt, over WebSocket: aesm over ws:// against Deno's WebSocket over TLS",
      metrics: [
        { key: "p50", label: "p50 µs", better: "lower" },
        { key: "p99", label: "p99 µs", better: "lower" },
      ],
      capMs: cap(80),
      impls: WS_IMPLS,
      run: (impl, trial) => roundTrips(impl, trial, tls, scale.rtt),
    },
  );
  for (const [concurrency, bare] of [[1, false], [16, false], [16, true]] as const) {
    const connectors = `${concurrency} concurrent connector${concurrency === 1 ? "" : "s"}`;
    list.push({
      id: `handshakes-${concurrency}${bare ? "-bare" : ""}`,
      title: `handshakes${bare ? " alone, without a message" : ""}: ` +
        `${scale.handshakes.toLocaleString("en-US")} connections, ${connectors}`,
      how: bare
        ? "connect + handshake + close, no message: the handshake's cost without the first " +
          "message's latency; server in a subprocess"
        : "connect + handshake + one 64 B message echoed + close; echo server in a subprocess",
      metrics: [{ ...rate, label: "connections/s" }],
      capMs: cap(120),
      run: (impl, trial) => handshakes(impl, trial, tls, scale.handshakes, concurrency, bare),
    });
  }
  for (const clients of scale.fanout) {
    const needed = clients + FANOUT_WARMUP + 256;
    list.push({
      id: `fanout-${clients}`,
      title: `fanout: ${clients.toLocaleString("en-US")} clients, one 64 B broadcast`,
      how: `server and clients in two subprocesses; time from the broadcast call until every ` +
        `client has it, and until the server's broadcast call returned (medians of ` +
        `${scale.broadcasts} broadcasts after one warm-up); server RSS growth per connection ` +
        `(after GC) from before to after connecting the clients, and the live part of it (V8 heap ` +
        `used + external; RSS also holds heap that V8 committed for the connects' garbage)`,
      metrics: [
        { key: "time", label: "time ms", better: "lower" },
        { key: "send", label: "server send ms", better: "lower" },
        { key: "memory", label: "KiB/conn", better: "lower" },
        { key: "live", label: "live KiB/conn", better: "lower" },
      ],
      capMs: cap(60 + clients * 0.03),
      skip: fdLimit < needed
        ? `ulimit -n is ${fdLimit} even raised to the hard limit; needs ${needed}`
        : undefined,
      run: (impl, trial) => fanout(impl, trial, tls, clients, scale.broadcasts),
    });
  }
  return list;
}
