// Copyright 2026 the aesm authors. MIT license.
import { Fault, RecordDecoderStream } from "./_stages.ts";
import { concat } from "../_crypto/bytes.ts";
import assert from "node:assert/strict";
import {
  CloseCode,
  MAX_PLAINTEXT,
  OversizeError,
  RECORD_HEADER_LENGTH,
  RecordBatcher,
  type RecordEvent,
  RecordType,
  START_HEADER_LENGTH,
} from "../_wire/record.ts";
import { ProtocolError } from "../errors.ts";

type Bytes = Uint8Array<ArrayBuffer>;

const TIME = 1_700_000_000_000;
const LIMIT = 16 * 1024 * 1024;
const SIZES = [0, 1, 65000, 65503, 65504, 65505, 65519, 65520, 200000, 1024 * 1024];

function bytes(length: number, seed = 0): Bytes {
  return Uint8Array.from({ length }, (_, i) => (i * 131 + seed * 7 + (i >> 8)) & 0xff);
}

/** A text of `length` UTF-8 bytes mixing 1-, 2-, 3- and 4-byte characters. */
function text(length: number): string {
  const pieces = ["a", "é", "€", "😀"];
  let out = "";
  let size = 0;
  for (let i = 0; size < length; i++) {
    const piece = pieces[i % pieces.length];
    const width = new TextEncoder().encode(piece).length;
    const next = size + width <= length ? piece : "b";
    out += next;
    size += next === piece ? width : 1;
  }
  return out;
}

function takeAll(batcher: RecordBatcher): Bytes[] {
  const plaintexts: Bytes[] = [];
  for (let next = batcher.take(); next !== undefined; next = batcher.take()) {
    plaintexts.push(next);
  }
  return plaintexts;
}

async function decode(plaintexts: Uint8Array[], limit = LIMIT): Promise<RecordEvent[]> {
  const batches = await Array.fromAsync(
    ReadableStream.from(plaintexts as Bytes[]).pipeThrough(new RecordDecoderStream(limit)),
  );
  return batches.flatMap((batch) => {
    if (batch instanceof Fault) throw batch.error;
    return batch;
  });
}

function record(type: number, body: Uint8Array): Bytes {
  return concat(new Uint8Array([type, body.length >>> 8, body.length & 0xff]), body);
}

function start(type: number, total: number, chunk: Uint8Array, time = TIME): Bytes {
  const head = new Uint8Array(START_HEADER_LENGTH);
  const view = new DataView(head.buffer);
  view.setBigUint64(0, BigInt(time));
  view.setUint32(8, total);
  return record(type, concat(head, chunk));
}

function assertPlaintextSizes(plaintexts: Uint8Array[]): void {
  for (const [i, plaintext] of plaintexts.entries()) {
    assert.ok(plaintext.length > 0, `plaintext ${i} is empty`);
    assert.ok(
      plaintext.length <= MAX_PLAINTEXT,
      `plaintext ${i} is ${plaintext.length} bytes, over ${MAX_PLAINTEXT}`,
    );
  }
}

Deno.test("RecordBatcher and RecordDecoderStream round-trip binary messages of edge sizes", async () => {
  for (const size of SIZES) {
    const data = bytes(size, size);
    const batcher = new RecordBatcher();
    batcher.addMessage(data, false, TIME + size);
    const plaintexts = takeAll(batcher);
    assertPlaintextSizes(plaintexts);
    assert.ok(batcher.empty);
    const events = await decode(plaintexts);
    assert.equal(events.length, 1, `size ${size}`);
    const [event] = events;
    assert.equal(event.kind, "message");
    if (event.kind !== "message") continue;
    assert.equal(event.time, TIME + size);
    assert.equal(event.size, size);
    assert.ok(event.data instanceof Uint8Array, `size ${size} arrives as bytes`);
    assert.ok(event.data.length === size && event.data.every((byte, i) => byte === data[i]));
  }
});

Deno.test("RecordBatcher and RecordDecoderStream round-trip text messages of edge sizes", async () => {
  for (const size of SIZES) {
    const message = text(size);
    const encoded = new TextEncoder().encode(message);
    assert.equal(encoded.length, size);
    const batcher = new RecordBatcher();
    batcher.addMessage(encoded, true, TIME);
    const plaintexts = takeAll(batcher);
    assertPlaintextSizes(plaintexts);
    const events = await decode(plaintexts);
    assert.equal(events.length, 1, `size ${size}`);
    const [event] = events;
    assert.ok(event.kind === "message");
    assert.equal(typeof event.data, "string", `size ${size} arrives as a string`);
    assert.equal(event.data, message, `size ${size}`);
    assert.equal(event.size, size);
  }
});

Deno.test("RecordBatcher splits a message only as far as needed", () => {
  const overhead = RECORD_HEADER_LENGTH + START_HEADER_LENGTH;
  const fits = new RecordBatcher();
  fits.addMessage(bytes(MAX_PLAINTEXT - overhead), false, TIME);
  assert.deepEqual(takeAll(fits).map((p) => p.length), [MAX_PLAINTEXT]);

  const over = new RecordBatcher();
  over.addMessage(bytes(MAX_PLAINTEXT - overhead + 1), false, TIME);
  const sizes = takeAll(over).map((p) => p.length);
  assert.equal(sizes.length, 2);
  assert.equal(sizes[0], MAX_PLAINTEXT);
  assert.equal(sizes[1], RECORD_HEADER_LENGTH + 1);
});

Deno.test("RecordBatcher packs many small messages into one plaintext, and they decode in order", async () => {
  const batcher = new RecordBatcher();
  const messages = Array.from({ length: 500 }, (_, i) => `message ${i}`);
  for (const [i, message] of messages.entries()) {
    batcher.addMessage(new TextEncoder().encode(message), i % 2 === 0, TIME + i);
  }
  const plaintexts = takeAll(batcher);
  assert.equal(plaintexts.length, 1);
  assertPlaintextSizes(plaintexts);
  const events = await decode(plaintexts);
  assert.equal(events.length, messages.length);
  for (const [i, event] of events.entries()) {
    assert.ok(event.kind === "message");
    assert.equal(event.time, TIME + i);
    const data = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
    assert.equal(typeof event.data, i % 2 === 0 ? "string" : "object");
    assert.equal(data, messages[i]);
  }
});

Deno.test("RecordBatcher keeps every plaintext within MAX_PLAINTEXT for a mix of sizes", async () => {
  const batcher = new RecordBatcher();
  const sizes = [0, 1, 300, 65000, 10, 65519, 255, 256, 257, 200000, 3, 65504, 65505, 70000, 1];
  const messages = sizes.map((size, i) => bytes(size, i));
  let packed = 0;
  for (const message of messages) {
    batcher.addMessage(message, false, TIME);
    packed += message.length;
  }
  assert.ok(batcher.bytes > packed);
  const plaintexts = takeAll(batcher);
  assertPlaintextSizes(plaintexts);
  assert.equal(batcher.bytes, 0);
  const events = await decode(plaintexts);
  assert.equal(events.length, messages.length);
  for (const [i, event] of events.entries()) {
    assert.ok(event.kind === "message");
    assert.deepEqual(event.data, messages[i], `message ${i} of ${sizes[i]} bytes`);
  }
});

Deno.test("RecordBatcher.bytes counts what is packed and not taken", () => {
  const batcher = new RecordBatcher();
  assert.equal(batcher.bytes, 0);
  assert.ok(batcher.empty);
  assert.equal(batcher.take(), undefined);
  batcher.addMessage(bytes(100), false, TIME);
  assert.equal(batcher.bytes, RECORD_HEADER_LENGTH + START_HEADER_LENGTH + 100);
  batcher.addControl(RecordType.Ping, new Uint8Array(0));
  assert.equal(batcher.bytes, 2 * RECORD_HEADER_LENGTH + START_HEADER_LENGTH + 100);
  const plaintext = batcher.take();
  assert.equal(plaintext?.length, 2 * RECORD_HEADER_LENGTH + START_HEADER_LENGTH + 100);
  assert.ok(batcher.empty);
});

Deno.test("RecordDecoderStream decodes a message fed one record per plaintext, with pings between", async () => {
  const data = bytes(10);
  const events = await decode([
    start(RecordType.Binary, 10, data.subarray(0, 3)),
    record(RecordType.Ping, new Uint8Array(0)),
    record(RecordType.Continuation, data.subarray(3, 4)),
    record(0x40, bytes(5)),
    record(RecordType.Continuation, data.subarray(4)),
  ]);
  assert.equal(events.length, 1);
  assert.ok(events[0].kind === "message");
  assert.deepEqual(events[0].data, data);
});

Deno.test("RecordDecoderStream decodes a close record's code and reason", async () => {
  const events = await decode([
    concat(
      start(RecordType.Text, 2, new TextEncoder().encode("hi")),
      record(RecordType.Close, concat(new Uint8Array([CloseCode.shutdown]), bytesOf("bye"))),
    ),
  ]);
  assert.equal(events.length, 2);
  assert.deepEqual(events[1], { kind: "close", code: CloseCode.shutdown, reason: "bye" });
});

function bytesOf(value: string): Bytes {
  return new Uint8Array(new TextEncoder().encode(value));
}

Deno.test("RecordDecoderStream skips unknown extension records of type 0x40 and above", async () => {
  for (const type of [0x40, 0x7f, 0xff]) {
    const events = await decode([
      concat(
        record(type, bytes(7)),
        start(RecordType.Text, 1, bytesOf("x")),
        record(type, bytes(0)),
      ),
    ]);
    assert.equal(events.length, 1, `type 0x${type.toString(16)}`);
    assert.ok(events[0].kind === "message");
    assert.equal(events[0].data, "x");
  }
});

const MALFORMED: [string, Uint8Array[]][] = [
  ["a continuation outside a message", [record(RecordType.Continuation, bytes(4))]],
  ["a record overrunning its plaintext", [new Uint8Array([RecordType.Ping, 0, 5, 1, 2])]],
  ["a truncated record header", [new Uint8Array([RecordType.Ping, 0])]],
  ["a truncated record header after a good record", [
    concat(record(RecordType.Ping, new Uint8Array(0)), new Uint8Array([RecordType.Ping])),
  ]],
  ["the reserved type 0x06", [record(0x06, new Uint8Array(0))]],
  ["the reserved type 0x3f", [record(0x3f, new Uint8Array(0))]],
  ["the type 0x00", [record(0x00, new Uint8Array(0))]],
  ["invalid UTF-8 in a whole text message", [
    start(RecordType.Text, 2, new Uint8Array([0xc3, 0x28])),
  ]],
  ["invalid UTF-8 across continuations", [
    start(RecordType.Text, 3, new Uint8Array([0x61])),
    record(RecordType.Continuation, new Uint8Array([0xff, 0xfe])),
  ]],
  ["a truncated UTF-8 sequence at a text message's end", [
    start(RecordType.Text, 2, new Uint8Array([0x61, 0xe2])),
  ]],
  ["data after a close record in the same plaintext", [
    concat(
      record(RecordType.Close, new Uint8Array([0])),
      record(RecordType.Ping, new Uint8Array(0)),
    ),
  ]],
  ["data after a close record in a later plaintext", [
    record(RecordType.Close, new Uint8Array([0])),
    start(RecordType.Binary, 1, bytes(1)),
  ]],
  ["a first record longer than the declared total", [start(RecordType.Binary, 2, bytes(3))]],
  ["a continuation longer than the declared total", [
    start(RecordType.Binary, 4, bytes(2)),
    record(RecordType.Continuation, bytes(3)),
  ]],
  ["an empty continuation", [
    start(RecordType.Binary, 4, bytes(2)),
    record(RecordType.Continuation, new Uint8Array(0)),
  ]],
  ["a message starting inside another", [
    start(RecordType.Binary, 4, bytes(2)),
    start(RecordType.Binary, 1, bytes(1)),
  ]],
  ["a close inside a message", [
    start(RecordType.Text, 4, bytesOf("ab")),
    record(RecordType.Close, new Uint8Array([0])),
  ]],
  ["a message header shorter than 12 bytes", [record(RecordType.Binary, bytes(11))]],
  ["a close without a code", [record(RecordType.Close, new Uint8Array(0))]],
  ["a ping with a body", [record(RecordType.Ping, bytes(1))]],
];

for (const [what, plaintexts] of MALFORMED) {
  Deno.test(`RecordDecoderStream rejects ${what} with a ProtocolError`, async () => {
    await assert.rejects(decode(plaintexts), ProtocolError);
  });
}

Deno.test("RecordDecoderStream emits the messages of earlier plaintexts, then a Fault for a malformed one", async () => {
  const stream = ReadableStream.from([
    start(RecordType.Text, 2, bytesOf("ok")),
    record(0x06, new Uint8Array(0)),
  ]).pipeThrough(new RecordDecoderStream(LIMIT));
  const seen: RecordEvent[] = [];
  await assert.rejects(
    (async () => {
      for await (const events of stream) {
        if (events instanceof Fault) throw events.error;
        seen.push(...events);
      }
    })(),
    ProtocolError,
  );
  assert.equal(seen.length, 1);
  assert.ok(seen[0].kind === "message" && seen[0].data === "ok");
});

Deno.test("RecordDecoderStream emits one batch per plaintext, holding every event it completes", async () => {
  const batcher = new RecordBatcher();
  for (let i = 0; i < 3; i++) batcher.addMessage(bytesOf(`m${i}`), true, TIME);
  const batches = await Array.fromAsync(
    ReadableStream.from(takeAll(batcher)).pipeThrough(new RecordDecoderStream(LIMIT)),
  );
  assert.equal(batches.length, 1);
  assert.ok(!(batches[0] instanceof Fault));
  assert.deepEqual(batches[0].map((event) => event.kind === "message" && event.data), [
    "m0",
    "m1",
    "m2",
  ]);
});

Deno.test("RecordDecoderStream rejects a declared total over maxMessageSize with an OversizeError before allocating it", async () => {
  // A 4 GiB declared total: allocating it would fail or take the machine down.
  const error = await decode([start(RecordType.Binary, 0xffff_ffff, bytes(4))], 1024).then(
    () => assert.fail("expected an OversizeError"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof OversizeError);
  assert.ok(error instanceof ProtocolError);
  assert.equal(error.size, 0xffff_ffff);
  assert.equal(error.limit, 1024);
});

Deno.test("RecordDecoderStream accepts a message of exactly maxMessageSize and rejects one byte more", async () => {
  const exact = new RecordBatcher();
  exact.addMessage(bytes(1000), false, TIME);
  const events = await decode(takeAll(exact), 1000);
  assert.equal(events.length, 1);

  const over = new RecordBatcher();
  over.addMessage(bytes(1001), false, TIME);
  await assert.rejects(decode(takeAll(over), 1000), OversizeError);
});
