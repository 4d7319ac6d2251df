// Copyright 2026 the aesm authors. MIT license.
/**
 * Micro-benchmarks of aesm's hot paths, one process, no sockets:
 *
 *   deno bench bench/micro_bench.ts
 *
 * @module
 */

import { RecordDecoderStream } from "../tests/_stages.ts";
import { CipherState } from "../cipher.ts";
import { encodeFrame, encodeFrameHeader, FrameDecoderStream, FrameType } from "../framing.ts";
import { RecordBatcher } from "../_record.ts";

const KiB = 1024;
const CHUNK = 64 * KiB;
const CHUNKS = 16;
const SMALL = 64;
const BATCH = 1000;

function random(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + 65536)));
  }
  return bytes;
}

// 64 KiB chunks cut from a stream of transport frames of `body` bytes, so frames straddle chunks.
function frameChunks(body: number): Uint8Array<ArrayBuffer>[] {
  const frame = encodeFrame(FrameType.Transport, random(body));
  const wire = new Uint8Array(CHUNK * CHUNKS);
  for (let offset = 0; offset < wire.length; offset += frame.length) {
    wire.set(frame.subarray(0, Math.min(frame.length, wire.length - offset)), offset);
  }
  const end = Math.floor(wire.length / frame.length) * frame.length;
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  for (let offset = 0; offset < end; offset += CHUNK) {
    chunks.push(wire.slice(offset, Math.min(end, offset + CHUNK)));
  }
  return chunks;
}

async function drain<T>(stream: ReadableStream<T>): Promise<number> {
  let count = 0;
  for await (const _ of stream) count++;
  return count;
}

// Frame plaintexts packed with 64 B binary messages, as RecordBatcher makes them.
function recordPlaintexts(): Uint8Array<ArrayBuffer>[] {
  const batcher = new RecordBatcher();
  const message = random(SMALL);
  for (let i = 0; i < 10 * BATCH; i++) batcher.addMessage(message, false, Date.now());
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (let plaintext = batcher.take(); plaintext !== undefined; plaintext = batcher.take()) {
    out.push(plaintext);
  }
  return out;
}

const smallFrames = frameChunks(SMALL + 15 + 16);
const largeFrames = frameChunks(65535);
const plaintexts = recordPlaintexts();
const key = random(32);
const encryptor = await CipherState.create(key);
const decryptor = await CipherState.create(key);
const header = encodeFrameHeader(FrameType.Transport, SMALL + 16);
const small = random(SMALL);
const large = random(64 * KiB - 17);
const message = random(SMALL);
const sealedSmall = await (await CipherState.create(key)).encryptWithAd(header, small);
const sealedLarge = await (await CipherState.create(key)).encryptWithAd(header, large);

Deno.bench({
  name: "encodeFrame, 64 B body",
  group: "framing",
  fn: () => void encodeFrame(FrameType.Transport, small),
});

Deno.bench({
  name: `FrameDecoderStream, ${CHUNKS} × 64 KiB chunks of 95 B frames`,
  group: "framing",
  baseline: true,
  fn: async () =>
    void await drain(
      ReadableStream.from(smallFrames).pipeThrough(
        new FrameDecoderStream(),
      ),
    ),
});

Deno.bench({
  name: `FrameDecoderStream, ${CHUNKS} × 64 KiB chunks of 64 KiB frames`,
  group: "framing",
  fn: async () =>
    void await drain(
      ReadableStream.from(largeFrames).pipeThrough(
        new FrameDecoderStream(),
      ),
    ),
});

Deno.bench({
  name: `RecordBatcher, ${BATCH} × 64 B messages packed and taken`,
  group: "records",
  baseline: true,
  fn: () => {
    const batcher = new RecordBatcher();
    for (let i = 0; i < BATCH; i++) batcher.addMessage(message, false, 1_700_000_000_000);
    for (let taken = batcher.take(); taken !== undefined; taken = batcher.take()) {
      // Taking is part of the cost.
    }
  },
});

Deno.bench({
  name: `RecordDecoderStream, ${plaintexts.length} plaintexts of 64 B messages (${
    10 * BATCH
  } messages)`,
  group: "records",
  fn: async () =>
    void await drain(
      ReadableStream.from(plaintexts).pipeThrough(
        new RecordDecoderStream(16 * 1024 * 1024),
      ),
    ),
});

Deno.bench({
  name: "CipherState.encryptWithAd, 64 B, one at a time",
  group: "cipher",
  baseline: true,
  fn: async () => void await encryptor.encryptWithAd(header, small),
});

Deno.bench({
  name: "CipherState.encryptWithAd, 64 B, 4 in flight (per batch of 4)",
  group: "cipher",
  fn: async () =>
    void await Promise.all([
      encryptor.encryptWithAd(header, small),
      encryptor.encryptWithAd(header, small),
      encryptor.encryptWithAd(header, small),
      encryptor.encryptWithAd(header, small),
    ]),
});

Deno.bench({
  name: "CipherState.encryptWithAd, 64 KiB, one at a time",
  group: "cipher",
  fn: async () => void await encryptor.encryptWithAd(header, large),
});

Deno.bench({
  name: "CipherState.encryptWithAd, 64 KiB, 4 in flight (per batch of 4)",
  group: "cipher",
  fn: async () =>
    void await Promise.all([
      encryptor.encryptWithAd(header, large),
      encryptor.encryptWithAd(header, large),
      encryptor.encryptWithAd(header, large),
      encryptor.encryptWithAd(header, large),
    ]),
});

Deno.bench({
  name: "CipherState.decryptWithAd, 64 B, one at a time",
  group: "cipher",
  fn: async () => {
    decryptor.setNonce(0n);
    await decryptor.decryptWithAd(header, sealedSmall);
  },
});

Deno.bench({
  name: "CipherState.decryptWithAd, 64 KiB, one at a time",
  group: "cipher",
  fn: async () => {
    decryptor.setNonce(0n);
    await decryptor.decryptWithAd(header, sealedLarge);
  },
});
