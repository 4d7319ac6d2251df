// Copyright 2026 the aesm authors. MIT license.
// Backpressure and memory: a client sends as fast as it can to a server
// whose application reads nothing for a while. The server runs in its own
// process (tests/_adversary.ts sink), so that its RSS is its own even when
// the test files run in parallel in one process. Its queue and its RSS stay
// within stated bounds; nothing is dropped; once the application reads,
// every byte arrives in order.

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { mib, PeerProcess, RejectionTrap, sequenced, within } from "./_adversary.ts";

const MiB = 1024 * 1024;
const HIGH_WATER_MARK = 1 * MiB;
const MAX_MESSAGE_SIZE = 1 * MiB;
const WRITE_HIGH_WATER_MARK = 1 * MiB;
const MESSAGE_SIZE = 65_504; // One full frame each.
const FULL = 1024 * MiB;
const REDUCED = 256 * MiB;
// Past this projected time for 1 GiB, the run sends 256 MiB instead.
const FULL_BUDGET_SECONDS = 20;
const IDLE_MS = 750;

// The queue holds up to the high-water mark, plus the one message that
// crossed it (at most maxMessageSize).
const QUEUE_BOUND = HIGH_WATER_MARK + MAX_MESSAGE_SIZE;
// The server process holds its queue (2 MiB), the frames in flight (4
// decrypting and a few in the stream stages, reads of up to 256 KiB), and,
// above all, the garbage of a GiB of fresh buffers between collections: it
// must stay far below what was sent. 128 MiB over its idle RSS.
const RSS_BOUND = 128 * MiB;
// What the sender can get ahead while nothing reads: the server's queue, the
// client's write buffer and frames in flight, and the loopback socket
// buffers (at most the tcp_wmem and tcp_rmem maxima, 4 + 32 MiB here).
const AHEAD_BOUND = QUEUE_BOUND + WRITE_HIGH_WATER_MARK + 40 * MiB;

interface SinkFigures {
  messages: number;
  bytes: number;
  peakQueue: number;
  rssBefore: number;
  peakRss: number;
  closed: string;
  error?: string;
}

Deno.test("A flood into an application that reads nothing stays bounded, and then arrives whole and in order", async () => {
  using trap = new RejectionTrap();
  await using sink = new PeerProcess([
    "sink",
    String(IDLE_MS),
    String(HIGH_WATER_MARK),
    String(MAX_MESSAGE_SIZE),
  ]);
  const port = Number(await within(sink.line(), 20_000, "the sink server to listen"));
  const client = await ClientNetwork.connect({
    hostname: "127.0.0.1",
    port,
    writeHighWaterMark: WRITE_HIGH_WATER_MARK,
  });
  let failure: unknown;
  try {
    let limit = FULL;
    let sent = 0;
    let messages = 0;
    // Once the sink reads, the first 64 MiB tell the rate, and so whether 1 GiB fits.
    const reading = { started: false, at: 0, ahead: 0 };
    let decided = false;
    const decide = () => {
      const seconds = (performance.now() - reading.at) / 1000;
      const rate = (sent - reading.ahead) / seconds;
      const projected = FULL / rate;
      decided = true;
      if (projected <= FULL_BUDGET_SECONDS) return;
      limit = REDUCED;
      console.log(
        `flood: 1 GiB would take ~${projected.toFixed(0)} s here (${
          (rate / 1e6).toFixed(0)
        } MB/s); ` +
          "sending 256 MiB instead",
      );
    };
    const sender = (async () => {
      while (sent < limit) {
        await client.send(sequenced(messages++, MESSAGE_SIZE));
        sent += MESSAGE_SIZE;
        if (reading.started && !decided && sent - reading.ahead >= 64 * MiB) decide();
      }
      await client.flush();
    })();
    // The sink reads nothing for IDLE_MS after the first message, then says so.
    assert.equal(await within(sink.line(), 20_000, "the sink to start reading"), "reading");
    Object.assign(reading, { started: true, at: performance.now(), ahead: sent });
    const aheadWhileIdle = sent;
    const started = reading.at;
    await within(sender, 120_000, "the sender to finish");
    const info = await within(client.close(), 30_000, "the client's close");
    assert.equal(info.reason, "normal");
    const figures: SinkFigures = JSON.parse(
      await within(sink.line(), 30_000, "the sink's figures"),
    );
    const total = (performance.now() - started) / 1000;
    const growth = figures.peakRss - figures.rssBefore;
    console.log(
      `flood: ${mib(figures.bytes)} in ${figures.messages} messages (${
        limit === FULL ? "1 GiB" : "256 MiB"
      }), ` +
        `${(figures.bytes / total / 1e6).toFixed(0)} MB/s once reading; ` +
        `sender ${mib(aheadWhileIdle)} ahead while idle (bound ${mib(AHEAD_BOUND)}); ` +
        `server queue peak ${mib(figures.peakQueue)} (bound ${mib(QUEUE_BOUND)}); ` +
        `server rss ${mib(figures.rssBefore)} -> peak ${mib(figures.peakRss)}, +${mib(growth)} ` +
        `(bound ${mib(RSS_BOUND)})`,
    );
    assert.equal(figures.error, undefined);
    assert.equal(figures.closed, "normal");
    assert.equal(figures.messages, messages, "every message arrived, in order");
    assert.equal(figures.bytes, sent, "every byte arrived");
    assert.ok(aheadWhileIdle < AHEAD_BOUND, `the sender got ${mib(aheadWhileIdle)} ahead`);
    assert.ok(figures.peakQueue <= QUEUE_BOUND, `the queue held ${mib(figures.peakQueue)}`);
    assert.ok(growth < RSS_BOUND, `the server's rss grew by ${mib(growth)}`);
  } catch (error) {
    failure = error;
  } finally {
    await client.close();
  }
  trap.check(failure);
});
