// Copyright 2026 the aesm authors. MIT license.
/**
 * Micro-benchmarks of aesm's hot paths, one process, no sockets:
 *
 *   deno bench bench/micro_bench.ts
 *   deno bench --filter=aead bench/micro_bench.ts        # the thresholds in _crypto/primitives.ts
 *   deno bench --filter=handshake bench/micro_bench.ts   # also prints handshake CPU per side
 *
 * @module
 */

import { RecordDecoderStream } from "../tests/_stages.ts";
import { CipherState } from "../cipher.ts";
import { encodeFrame, encodeFrameHeader, FrameDecoderStream, FrameType } from "../framing.ts";
import { RecordBatcher } from "../_wire/record.ts";
import { cpuUsage } from "node:process";
import type { HandshakeState } from "../handshake.ts";
import { createHandshakeState } from "../_noise/handshake_state.ts";
import { hasNodeCrypto, suiteFor, type SuiteName } from "../_crypto/primitives.ts";
import { nodeCrypto as loadNodeCrypto } from "../_crypto/node_crypto.ts";
import { webCrypto } from "../_crypto/webcrypto.ts";
import type { Backend } from "../_crypto/backend.ts";

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

// ---- The crypto backends, by size: where _crypto/primitives.ts draws SYNC_AEAD_MAX ----

const AEAD_SIZES = [64, 1024, 4096, 8192, 16384, 65519];
const aeadKey = random(32);
const webKey = await webCrypto.importAeadKey(aeadKey);
const nodeCrypto = loadNodeCrypto();
const nodeKey = nodeCrypto && await nodeCrypto.importAeadKey(aeadKey);
const noAd = new Uint8Array(0);

for (const size of AEAD_SIZES) {
  const plaintext = random(size);
  const sealed = await webCrypto.seal(webKey, 0n, noAd, plaintext);
  const group = `aead seal ${size} B`;
  if (nodeCrypto && nodeKey) {
    const node = nodeCrypto;
    Deno.bench({
      name: `aead seal ${size} B, node:crypto (synchronous)`,
      group,
      baseline: true,
      fn: () => void node.seal(nodeKey, 1n, noAd, plaintext),
    });
    Deno.bench({
      name: `aead open ${size} B, node:crypto (synchronous)`,
      group: `aead open ${size} B`,
      baseline: true,
      fn: () => void node.open(nodeKey, 0n, noAd, sealed),
    });
  }
  Deno.bench({
    name: `aead seal ${size} B, WebCrypto, one at a time`,
    group,
    fn: async () => void await webCrypto.seal(webKey, 1n, noAd, plaintext),
  });
  Deno.bench({
    name: `aead seal ${size} B, WebCrypto, 4 in flight (per batch of 4)`,
    group,
    fn: async () =>
      void await Promise.all(
        [1n, 2n, 3n, 4n].map((n) => webCrypto.seal(webKey, n, noAd, plaintext)),
      ),
  });
  Deno.bench({
    name: `aead open ${size} B, WebCrypto, one at a time`,
    group: `aead open ${size} B`,
    fn: async () => void await webCrypto.open(webKey, 0n, noAd, sealed),
  });
}

// ---- The handshake's functions, and a whole handshake per suite ----

const BACKENDS: Backend<unknown, unknown>[] = [webCrypto as Backend<unknown, unknown>];
if (nodeCrypto) BACKENDS.push(nodeCrypto as Backend<unknown, unknown>);
const digestInput = random(64);
for (const backend of BACKENDS) {
  const ours = await backend.generateDhKeyPair();
  const theirs = (await backend.generateDhKeyPair()).publicKey;
  const chainingKey = random(32);
  const ikm = random(32);
  const group = "handshake functions";
  Deno.bench({
    name: `handshake X25519 key pair, ${backend.name}`,
    group,
    fn: async () => void await backend.generateDhKeyPair(),
  });
  Deno.bench({
    name: `handshake X25519 DH, ${backend.name}`,
    group,
    fn: async () => void await backend.dh(ours.privateKey, theirs),
  });
  Deno.bench({
    name: `handshake SHA-256 of 64 B, ${backend.name}`,
    group,
    fn: async () => void await backend.hash(digestInput),
  });
  Deno.bench({
    name: `handshake HKDF, 2 outputs, ${backend.name}`,
    group,
    fn: async () => void await backend.hkdf(chainingKey, ikm, 2),
  });
}

const PROTOCOL = "Noise_XX_25519_AESGCM_SHA256";
const statics = [random(32), random(32)];
const params = new Uint8Array([0, 0, 1, 0]);
const SUITES: SuiteName[] = hasNodeCrypto() ? ["auto", "webcrypto"] : ["webcrypto"];

/** One XX handshake as aesm runs it, timing each side's calls; returns their durations in ms. */
async function handshake(name: SuiteName): Promise<[number, number]> {
  const suite = suiteFor(name);
  const spent = [0, 0];
  const timed = async <T>(side: number, step: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await step();
    } finally {
      spent[side] += performance.now() - start;
    }
  };
  const create = (initiator: boolean) =>
    createHandshakeState({
      protocolName: PROTOCOL,
      initiator,
      prologue: params,
      staticPrivateKey: statics[initiator ? 0 : 1],
    }, suite);
  const initiator: HandshakeState = await timed(0, () => create(true));
  const responder: HandshakeState = await timed(1, () => create(false));
  const m1 = await timed(0, () => initiator.writeMessage());
  await timed(1, () => responder.readMessage(m1));
  const m2 = await timed(1, () => responder.writeMessage(params));
  await timed(0, () => initiator.readMessage(m2));
  const m3 = await timed(0, () => initiator.writeMessage(params));
  await timed(1, () => responder.readMessage(m3));
  await timed(0, () => initiator.split());
  await timed(1, () => responder.split());
  return [spent[0], spent[1]];
}

for (const name of SUITES) {
  Deno.bench({
    name: `handshake XX, both sides in memory, ${name}`,
    group: "handshake XX",
    baseline: name === "auto",
    fn: async () => void await handshake(name),
  });
}

// Handshake CPU per side, printed: the process's CPU time (every thread, so
// WebCrypto's pool too) over a run of handshakes, halved; and each side's
// time inside its own calls.
{
  const COUNT = 300;
  const lines = [];
  for (const name of SUITES) {
    for (let i = 0; i < 30; i++) await handshake(name); // Warm up.
    const sides = [0, 0];
    const cpu = cpuUsage();
    const start = performance.now();
    for (let i = 0; i < COUNT; i++) {
      const [a, b] = await handshake(name);
      sides[0] += a;
      sides[1] += b;
    }
    const wall = (performance.now() - start) / COUNT;
    const used = cpuUsage(cpu);
    const perSide = (used.user + used.system) / 1000 / COUNT / 2;
    lines.push(
      `handshake CPU per side, ${name} (${suiteFor(name).description}): ${perSide.toFixed(3)} ms ` +
        `(process CPU / 2); in its own calls: initiator ${(sides[0] / COUNT).toFixed(3)} ms, ` +
        `responder ${(sides[1] / COUNT).toFixed(3)} ms; ${wall.toFixed(3)} ms wall per handshake`,
    );
  }
  console.log(lines.join("\n"));
}
