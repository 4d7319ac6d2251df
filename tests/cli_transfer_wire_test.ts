// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { checkName, control, TransferError } from "../_cli/transfer_wire.ts";
import type { Connection } from "../connection.ts";
import { Packet } from "../queue.ts";

const from = { address: "127.0.0.1:1" } as unknown as Connection;
const packet = (data: string | Uint8Array<ArrayBuffer>) => new Packet(0, data, from);

Deno.test("control() takes a message of an expected type with every field of the right kind", () => {
  const offer = control(packet('{"type":"offer","name":"a.bin","size":3}'), "offer");
  assert.deepEqual(offer, { type: "offer", name: "a.bin", size: 3 });
  const either = control(packet('{"type":"refuse","message":"no"}'), "accept", "refuse");
  assert.equal(either.type, "refuse");
});

Deno.test("control() refuses other types, bytes, bad JSON, and missing or ill-typed fields", () => {
  for (
    const data of [
      '{"type":"done","sha256":"00"}',
      new Uint8Array(4),
      "not json",
      '{"type":"offer","size":3}',
      '{"type":"offer","name":"a","size":-1}',
      '{"type":"offer","name":"a","size":1.5}',
      '{"type":"offer","name":7,"size":1}',
    ]
  ) {
    assert.throws(() => control(packet(data), "offer"), TransferError, String(data));
  }
});

Deno.test("checkName() allows plain names only: no folders, no dots alone, no .part", () => {
  assert.equal(checkName("report 2026.pdf"), "report 2026.pdf");
  for (const name of ["", ".", "..", "../x", "a/b", "a\\b", "x\0", "data.part", "x".repeat(256)]) {
    assert.throws(() => checkName(name), TransferError, JSON.stringify(name));
  }
});
