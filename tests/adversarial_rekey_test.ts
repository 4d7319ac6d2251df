// Copyright 2026 the aesm authors. MIT license.
// Rekey and long sessions: a small rekeyAfterBytes over a long exchange in
// both directions stays intact, with TransportRekey frames seen on the wire
// by a recording proxy; a forged 0x03/0x04 type is caught (the header is
// associated data); a raw peer that lies about its rekeys is caught too.

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import type { Connection } from "../connection.ts";
import { ServerNetwork } from "../server.ts";
import {
  checkSequenced,
  drainPackets,
  FrameType,
  messageRecord,
  mib,
  RawClient,
  RecordingProxy,
  RejectionTrap,
  sequenced,
  ServerWatch,
  type Tamper,
  within,
  withServer as withServerFixture,
} from "./_adversary.ts";

const MiB = 1024 * 1024;
const MAX_PLAINTEXT = 65_519;

type Sender = { send(data: Uint8Array): Promise<void>; flush(): Promise<void> };
type Receiver = { receive(): Promise<{ data: string | Uint8Array } | undefined> };

/** Sends `total` bytes of sequence-numbered messages of mixed sizes, without waiting per message. */
async function sendStream(to: Sender, total: number, seed: number): Promise<number> {
  let bytes = 0;
  let i = 0;
  while (bytes < total) {
    const size = 8 + ((i * 7919 + seed) % 40_000);
    await to.send(sequenced(i++, size));
    bytes += size;
  }
  await to.flush();
  return i;
}

async function receiveStream(from: Receiver, count: () => number | undefined): Promise<number> {
  let bytes = 0;
  for (let i = 0; count() === undefined || i < count()!; i++) {
    const packet = await from.receive();
    assert.ok(packet, `message ${i} arrived`);
    const data = packet.data as Uint8Array;
    assert.equal(checkSequenced(data), i, "in order and intact");
    bytes += data.length;
  }
  return bytes;
}

async function exchange(
  rekeyAfterBytes: number,
  total: number,
): Promise<{ rekeys: { c2s: number; s2c: number }; frames: { c2s: number; s2c: number } }> {
  const server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0, rekeyAfterBytes });
  const watch = new ServerWatch(server);
  const proxy = RecordingProxy.start({ targetPort: server.port, keepBytes: false });
  let client: ClientNetwork | undefined;
  try {
    client = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: proxy.port,
      rekeyAfterBytes,
    });
    const session = await proxy.session(0);
    const connection: Connection = await watch.connection(session.upstreamAddress);
    let upCount: number | undefined;
    let downCount: number | undefined;
    const c = client;
    const [up, down] = await within(
      Promise.all([
        sendStream(c, total / 2, 1).then((n) => (upCount = n)),
        sendStream(connection, total / 2, 2).then((n) => (downCount = n)),
        receiveStream(connection, () => upCount),
        receiveStream(c, () => downCount),
      ]).then(([, , up, down]) => [up, down]),
      60_000,
      "the exchange",
    );
    assert.ok(up >= total / 2 && down >= total / 2);
    const info = await c.close();
    assert.equal(info.reason, "normal");
    await watch.end(session.upstreamAddress);
    await proxy.close();
    const count = (direction: "c2s" | "s2c", type: number) =>
      session.frames[direction].filter((f) => f.type === type).length;
    return {
      rekeys: {
        c2s: count("c2s", FrameType.TransportRekey),
        s2c: count("s2c", FrameType.TransportRekey),
      },
      frames: {
        c2s: count("c2s", FrameType.Transport) + count("c2s", FrameType.TransportRekey),
        s2c: count("s2c", FrameType.Transport) + count("s2c", FrameType.TransportRekey),
      },
    };
  } finally {
    await client?.close();
    await proxy.close();
    await server.stop();
    await watch.done();
  }
}

// 64 KiB is the smallest rekeyAfterBytes there is (PROTOCOL.md section 6).
for (const [rekeyAfterBytes, total] of [[64 * 1024, 20 * MiB], [MiB, 64 * MiB]]) {
  Deno.test(`Rekeying every ${rekeyAfterBytes} bytes over ${mib(total)} both ways keeps every byte, in order`, async () => {
    using trap = new RejectionTrap();
    let failure: unknown;
    try {
      const { rekeys, frames } = await exchange(rekeyAfterBytes, total);
      console.log(
        `rekey every ${rekeyAfterBytes} B over ${
          mib(total)
        }: TransportRekey frames c2s ${rekeys.c2s} of ${frames.c2s}, ` +
          `s2c ${rekeys.s2c} of ${frames.s2c}`,
      );
      // Each direction carries at least total/2 bytes of plaintext; a rekey comes at
      // least once per rekeyAfterBytes plus one frame.
      const least = Math.floor(total / 2 / (rekeyAfterBytes + MAX_PLAINTEXT));
      assert.ok(rekeys.c2s >= least, `c2s: ${rekeys.c2s} rekeys, expected at least ${least}`);
      assert.ok(rekeys.s2c >= least, `s2c: ${rekeys.s2c} rekeys, expected at least ${least}`);
    } catch (error) {
      failure = error;
    }
    trap.check(failure);
  });
}

/** Flips the type of the first frame of `from` type in `direction` to `to`. */
function retype(direction: "c2s" | "s2c", from: number, to: number): Tamper {
  let done = false;
  return (d, _i, bytes) => {
    if (done || d !== direction || bytes[0] !== from) return { send: [bytes] };
    done = true;
    const copy = bytes.slice();
    copy[0] = to;
    return { send: [copy] };
  };
}

const REKEY_AFTER = 64 * 1024;

Deno.test("A forged 0x04 to 0x03 (or 0x03 to 0x04) type ends the connection with protocol-error", async () => {
  using trap = new RejectionTrap();
  const failures: string[] = [];
  for (
    const [label, tamper] of [
      ["c2s 0x04 as 0x03", retype("c2s", FrameType.TransportRekey, FrameType.Transport)],
      ["c2s 0x03 as 0x04", retype("c2s", FrameType.Transport, FrameType.TransportRekey)],
      ["s2c 0x04 as 0x03", retype("s2c", FrameType.TransportRekey, FrameType.Transport)],
    ] as const
  ) {
    const server = await ServerNetwork.listen({
      hostname: "127.0.0.1",
      port: 0,
      rekeyAfterBytes: REKEY_AFTER,
    });
    const watch = new ServerWatch(server);
    const proxy = RecordingProxy.start({ targetPort: server.port, tamper: () => tamper });
    const client = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: proxy.port,
      rekeyAfterBytes: REKEY_AFTER,
      closeTimeout: 500,
    });
    try {
      const session = await proxy.session(0);
      const connection = await watch.connection(session.upstreamAddress);
      const c2s = label.startsWith("c2s");
      const sender: Sender = c2s ? client : connection;
      const sent: Uint8Array[] = [];
      // 16000-byte messages, one frame each: frames 1-4 are Transport, frame 5 (past
      // 65536 bytes) is TransportRekey, and so on.
      for (let i = 0; i < 8; i++) {
        const message = sequenced(i, 16_000);
        try {
          await sender.send(message);
          await sender.flush();
          sent.push(message);
        } catch {
          break;
        }
      }
      const detector = c2s ? connection : client.connection;
      const info = await within(detector.closed, 5000, `${label}: the receiver to end`);
      const delivered = c2s ? drainPackets(connection) : drainPackets(client.connection);
      if (info.reason !== "protocol-error") failures.push(`${label}: ended ${info.reason}`);
      if (delivered.length >= sent.length) {
        failures.push(`${label}: the forged frame was delivered`);
      }
      try {
        assert.deepEqual(delivered, sent.slice(0, delivered.length));
      } catch {
        failures.push(`${label}: FORGERY, delivered messages that were not sent in order`);
      }
    } finally {
      await client.close();
      await proxy.close();
      await server.stop();
      await watch.done();
    }
  }
  trap.check(
    failures.length ? new assert.AssertionError({ message: failures.join("\n") }) : undefined,
  );
});

Deno.test("A raw peer that rekeys as PROTOCOL.md says is understood; one that lies about it is caught", async () => {
  await withServerFixture({}, async (server, watch) => {
    const keyPair = await generateKeyPair();
    // Honest: a rekey as often as section 6 allows (once 64 KiB of plaintext
    // has been sent), then Rekey() on the sending state.
    const honest = await RawClient.connect({ port: server.port }, keyPair);
    const big = (i: number) => `${i}`.repeat(40_000);
    for (let i = 0; i < 5; i++) {
      await honest.sendPlaintext(messageRecord(big(i)));
      await honest.sendPlaintext(
        messageRecord(`rekeyed ${i}`.repeat(3000)),
        FrameType.TransportRekey,
      );
      await honest.send.rekey();
    }
    const honestSide = await watch.connection(honest.localAddress);
    for (let i = 0; i < 5; i++) {
      assert.equal((await honestSide.receive())?.data, big(i));
      assert.equal((await honestSide.receive())?.data, `rekeyed ${i}`.repeat(3000));
    }
    honest.close();

    // Marks 0x04 but does not rekey: the next frame fails under the receiver's new key.
    const noRekey = await RawClient.connect({ port: server.port }, keyPair);
    await noRekey.sendPlaintext(messageRecord(big(9)));
    await noRekey.sendPlaintext(messageRecord("marked".repeat(5000)), FrameType.TransportRekey);
    await noRekey.sendPlaintext(messageRecord("old key"));
    assert.equal((await watch.end(noRekey.localAddress)).reason, "protocol-error");
    assert.deepEqual(drainPackets(await watch.connection(noRekey.localAddress)), [
      big(9),
      "marked".repeat(5000),
    ]);
    noRekey.close();

    // Rekeys without marking: the receiver still has the old key.
    const silent = await RawClient.connect({ port: server.port }, keyPair);
    await silent.sendPlaintext(messageRecord("unmarked"));
    await silent.send.rekey();
    await silent.sendPlaintext(messageRecord("new key"));
    assert.equal((await watch.end(silent.localAddress)).reason, "protocol-error");
    assert.deepEqual(drainPackets(await watch.connection(silent.localAddress)), ["unmarked"]);
    silent.close();
  }, { sentinel: false });
});
