// Copyright 2026 the aesm authors. MIT license.
// The close phase under attack: a raw peer that ignores the server's Close
// and keeps sending, as fast as it can or a few bytes at a time. Once its
// Close is sent the server reads at most highWaterMark more bytes, and the
// whole close has an absolute deadline (2 × closeTimeout) that trickled
// bytes cannot extend, so `stop()` ends whatever the peer does.

import assert from "node:assert/strict";
import { generateKeyPair } from "../cipher.ts";
import {
  mib,
  RawClient,
  record,
  RecordType,
  startRecord,
  within,
  withServer,
} from "./_adversary.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
// The read that crosses the bound is delivered too: one read is at most 256 KiB, plus a frame begun in the read before.
const MAX_READ = 320 * KiB;

/** Sends `plaintext` again and again until a write fails or `limit` bytes are sent. */
async function floodUntilCut(
  raw: RawClient,
  plaintext: Uint8Array,
  limit: number,
): Promise<number> {
  let sent = 0;
  try {
    while (sent < limit) {
      await raw.sendPlaintext(plaintext);
      sent += plaintext.length;
    }
  } catch {
    // The server cut the connection.
  }
  return sent;
}

Deno.test("A peer that keeps sending after the server's close gets at most highWaterMark more bytes (and one read) read", async () => {
  const highWaterMark = 64 * KiB;
  const options = { highWaterMark, closeTimeout: 2000 };
  await withServer(options, async (_server, watch) => {
    const raw = await RawClient.connect({ port: _server.port }, await generateKeyPair());
    try {
      const connection = await watch.connection(raw.localAddress);
      const closing = connection.close();
      // 16 KiB messages until the server cuts the connection, or 64 MiB.
      const chunk = startRecord(false, 16 * KiB, new Uint8Array(16 * KiB));
      const sent = await within(floodUntilCut(raw, chunk, 64 * MiB), 60_000, "the flood");
      const info = await within(closing, 10_000, "the close");
      const queued = connection.data.bytes;
      console.log(
        `close flood: peer sent ${mib(sent)} after the close; server queued ${mib(queued)} ` +
          `(bound ${mib(highWaterMark + MAX_READ)}); ended ${info.reason}`,
      );
      assert.ok(
        queued <= highWaterMark + MAX_READ,
        `the server queued ${queued} bytes after its close`,
      );
      assert.equal(info.clean, false);
      assert.equal(info.reason, "timeout");
    } finally {
      raw.close();
    }
  });
});

Deno.test("A peer that trickles pings after the server's close cannot hold stop() past its deadline", async () => {
  const closeTimeout = 400;
  const pings = 40; // 200 ms apart: 8 s, far past 2 × closeTimeout.
  const raw = { client: undefined as RawClient | undefined };
  let sentBeforeStop = -1;
  await withServer({ closeTimeout }, async (server, watch) => {
    raw.client = await RawClient.connect({ port: server.port }, await generateKeyPair());
    await watch.connection(raw.client.localAddress);
    const client = raw.client;
    let sent = 0;
    const trickle = (async () => {
      try {
        for (; sent < pings; sent++) {
          await client.sendPlaintext(record(RecordType.Ping, new Uint8Array(0)));
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      } catch {
        // The server cut the connection.
      }
    })();
    await within(server.stop(), 30_000, "stop()");
    sentBeforeStop = sent;
    await trickle;
    client.close();
  }, { sentinel: false });
  console.log(`close trickle: stop() resolved after ${sentBeforeStop} of ${pings} pings`);
  assert.ok(sentBeforeStop < pings, "stop() resolved while the peer was still trickling");
});
