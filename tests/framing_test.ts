// Copyright 2026 the aesm authors. MIT license.
import { concat } from "../_crypto/bytes.ts";
import assert from "node:assert/strict";
import {
  encodeFrame,
  encodeFrameHeader,
  type Frame,
  FRAME_HEADER_LENGTH,
  FrameDecoderStream,
  type FrameDecoderStreamOptions,
  FrameType,
  MAX_FRAME_BODY,
} from "../framing.ts";
import { ProtocolError } from "../errors.ts";

type Bytes = Uint8Array<ArrayBuffer>;

function bytes(length: number, seed = 0): Bytes {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

/** Runs `chunks` through a decoder and returns the frames as plain, copied values. */
async function decode(
  chunks: Uint8Array[],
  options?: FrameDecoderStreamOptions,
): Promise<{ type: number; header: number[]; body: number[] }[]> {
  const frames: Frame[] = await Array.fromAsync(
    ReadableStream.from(chunks).pipeThrough(new FrameDecoderStream(options)),
  );
  return frames.map((frame) => ({
    type: frame.type,
    header: [...frame.header],
    body: [...frame.body],
  }));
}

function expected(type: number, body: Uint8Array) {
  return { type, header: [...encodeFrameHeader(type as FrameType, body.length)], body: [...body] };
}

function oneByteChunks(wire: Uint8Array): Uint8Array[] {
  return Array.from(wire, (byte) => new Uint8Array([byte]));
}

const SAMPLE = [
  { type: FrameType.Handshake, body: bytes(32, 1) },
  { type: FrameType.Refuse, body: bytes(1, 2) },
  { type: FrameType.Transport, body: bytes(0) },
  { type: FrameType.TransportRekey, body: bytes(300, 3) },
  { type: FrameType.Transport, body: bytes(16, 4) },
];

function sampleWire(): Bytes {
  return concat(...SAMPLE.map(({ type, body }) => encodeFrame(type, body)));
}

Deno.test("encodeFrameHeader() writes the type and the big-endian length", () => {
  assert.deepEqual(encodeFrameHeader(FrameType.Transport, 0x1234), new Uint8Array([3, 0x12, 0x34]));
  assert.deepEqual(encodeFrameHeader(FrameType.Handshake, 0), new Uint8Array([1, 0, 0]));
});

Deno.test("encodeFrameHeader() accepts 65535 and rejects 65536 with a RangeError", () => {
  assert.equal(MAX_FRAME_BODY, 65535);
  assert.deepEqual(encodeFrameHeader(FrameType.Transport, 65535), new Uint8Array([3, 0xff, 0xff]));
  assert.throws(() => encodeFrameHeader(FrameType.Transport, 65536), RangeError);
  assert.throws(() => encodeFrameHeader(FrameType.Transport, -1), RangeError);
  assert.throws(() => encodeFrameHeader(FrameType.Transport, 1.5), RangeError);
});

Deno.test("encodeFrame() accepts a 65535-byte body and rejects a 65536-byte one with a RangeError", () => {
  const body = bytes(65535);
  const frame = encodeFrame(FrameType.Transport, body);
  assert.equal(frame.length, FRAME_HEADER_LENGTH + 65535);
  assert.deepEqual(frame.subarray(0, 3), new Uint8Array([3, 0xff, 0xff]));
  assert.deepEqual(frame.subarray(3), body);
  assert.throws(() => encodeFrame(FrameType.Transport, new Uint8Array(65536)), RangeError);
});

Deno.test("FrameDecoderStream decodes frames fed one byte at a time", async () => {
  const frames = await decode(oneByteChunks(sampleWire()));
  assert.deepEqual(frames, SAMPLE.map(({ type, body }) => expected(type, body)));
});

Deno.test("FrameDecoderStream decodes many frames from one chunk", async () => {
  const many = Array.from({ length: 200 }, (_, i) => ({
    type: (i % 4 + 1) as FrameType,
    body: bytes(i % 7 === 0 ? 0 : i, i),
  }));
  const wire = concat(...many.map(({ type, body }) => encodeFrame(type, body)));
  const frames = await decode([wire]);
  assert.deepEqual(frames, many.map(({ type, body }) => expected(type, body)));
});

Deno.test("FrameDecoderStream decodes a frame split at every offset", async () => {
  const wire = sampleWire();
  const all = SAMPLE.map(({ type, body }) => expected(type, body));
  for (let cut = 0; cut <= wire.length; cut++) {
    const frames = await decode([wire.subarray(0, cut), wire.subarray(cut)]);
    assert.deepEqual(frames, all, `split at ${cut}`);
  }
});

Deno.test("FrameDecoderStream decodes a maximum-size frame split into three uneven chunks", async () => {
  const body = bytes(MAX_FRAME_BODY, 9);
  const wire = encodeFrame(FrameType.Transport, body);
  const frames = await decode([wire.subarray(0, 1), wire.subarray(1, 40000), wire.subarray(40000)]);
  assert.deepEqual(frames, [expected(FrameType.Transport, body)]);
});

Deno.test("FrameDecoderStream emits zero-length bodies, whole or split after the header", async () => {
  const wire = concat(
    encodeFrame(FrameType.Transport, bytes(0)),
    encodeFrame(FrameType.Handshake, bytes(0)),
    encodeFrame(FrameType.Refuse, bytes(0)),
  );
  const want = [
    expected(FrameType.Transport, bytes(0)),
    expected(FrameType.Handshake, bytes(0)),
    expected(FrameType.Refuse, bytes(0)),
  ];
  assert.deepEqual(await decode([wire]), want);
  assert.deepEqual(await decode(oneByteChunks(wire)), want);
  assert.deepEqual(
    await decode([wire.subarray(0, 3), wire.subarray(3, 5), wire.subarray(5)]),
    want,
  );
});

Deno.test("FrameDecoderStream with preambleLength emits the preamble first, then frames", async () => {
  const preamble = bytes(16, 7);
  const body = bytes(32, 8);
  const wire = concat(preamble, encodeFrame(FrameType.Handshake, body));
  const want = [
    { type: FrameType.Preamble, header: [], body: [...preamble] },
    expected(FrameType.Handshake, body),
  ];
  assert.deepEqual(await decode([wire], { preambleLength: 16 }), want);
  assert.deepEqual(await decode(oneByteChunks(wire), { preambleLength: 16 }), want);
  for (let cut = 0; cut <= wire.length; cut++) {
    const frames = await decode([wire.subarray(0, cut), wire.subarray(cut)], {
      preambleLength: 16,
    });
    assert.deepEqual(frames, want, `split at ${cut}`);
  }
});

Deno.test("FrameDecoderStream with preambleLength does not read the preamble's bytes as a frame type", async () => {
  // 0xff in the first byte would be an unknown frame type if taken as a header.
  const preamble = new Uint8Array(16).fill(0xff);
  const frames = await decode([preamble], { preambleLength: 16 });
  assert.deepEqual(frames, [{ type: FrameType.Preamble, header: [], body: [...preamble] }]);
});

Deno.test("FrameDecoderStream rejects a stream that ends inside the preamble", async () => {
  await assert.rejects(decode([bytes(10)], { preambleLength: 16 }), ProtocolError);
  await assert.rejects(decode([], { preambleLength: 16 }), ProtocolError);
});

Deno.test("FrameDecoderStream rejects an unknown frame type with a ProtocolError", async () => {
  for (const type of [0x00, 0x05, 0x40, 0xff]) {
    const wire = new Uint8Array([type, 0, 1, 42]);
    await assert.rejects(decode([wire]), ProtocolError, `type ${type} in one chunk`);
    await assert.rejects(decode(oneByteChunks(wire)), ProtocolError, `type ${type} byte by byte`);
  }
});

Deno.test("FrameDecoderStream rejects an unknown type after good frames, having emitted them", async () => {
  const good = encodeFrame(FrameType.Transport, bytes(20));
  const wire = concat(good, new Uint8Array([0x09, 0, 0]));
  const seen: Frame[] = [];
  const stream = ReadableStream.from([wire]).pipeThrough(new FrameDecoderStream());
  await assert.rejects(
    (async () => {
      for await (const frame of stream) seen.push(frame);
    })(),
    ProtocolError,
  );
  assert.equal(seen.length, 1);
  assert.deepEqual(seen[0].body, bytes(20));
});

Deno.test("FrameDecoderStream rejects a stream that ends mid-frame with a ProtocolError", async () => {
  const wire = encodeFrame(FrameType.Transport, bytes(100));
  for (const cut of [1, 2, 3, 4, 50, wire.length - 1]) {
    await assert.rejects(decode([wire.subarray(0, cut)]), ProtocolError, `cut at ${cut}`);
    await assert.rejects(
      decode(oneByteChunks(wire.subarray(0, cut))),
      ProtocolError,
      `cut at ${cut}, byte by byte`,
    );
  }
});

Deno.test("FrameDecoderStream ends cleanly on an empty stream and at a frame boundary", async () => {
  assert.deepEqual(await decode([]), []);
  assert.deepEqual(await decode([new Uint8Array(0), new Uint8Array(0)]), []);
  const wire = encodeFrame(FrameType.Handshake, bytes(5));
  assert.deepEqual(await decode([wire, new Uint8Array(0)]), [
    expected(FrameType.Handshake, bytes(5)),
  ]);
});

Deno.test("FrameDecoderStream gives frames split across chunks their own buffers", async () => {
  const first = bytes(10, 1);
  const second = bytes(10, 2);
  const wire = concat(
    encodeFrame(FrameType.Transport, first),
    encodeFrame(FrameType.Transport, second),
  );
  const frames = await Array.fromAsync(
    ReadableStream.from(oneByteChunks(wire)).pipeThrough(new FrameDecoderStream()),
  );
  assert.deepEqual(frames[0].body, first);
  assert.deepEqual(frames[0].header, new Uint8Array([3, 0, 10]));
  assert.deepEqual(frames[1].body, second);
  assert.deepEqual(frames[1].header, new Uint8Array([3, 0, 10]));
});
