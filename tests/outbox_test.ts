// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { Outbox, utf8Length } from "../_client/outbox.ts";
import type { Connection } from "../connection.ts";

Deno.test("utf8Length() counts what TextEncoder writes, lone surrogates as U+FFFD", () => {
  const texts = ["", "ascii", "é", "€uro", "😀", "a😀b", "\ud800", "x\udc00y", "\ud83d", "日本語"];
  const encoder = new TextEncoder();
  for (const text of texts) {
    assert.equal(utf8Length(text), encoder.encode(text).length, JSON.stringify(text));
  }
});

Deno.test("Outbox runs what waits on the next connection in order, before deliver() returns", () => {
  const outbox = new Outbox(10);
  const order: string[] = [];
  const fake = {} as Connection;
  const run = (name: string) => (connection: Connection) => {
    assert.equal(connection, fake);
    order.push(name);
    return Promise.resolve();
  };
  outbox.add(4, run("a"));
  outbox.add(0, run("flush"));
  outbox.add(5, run("b"));
  assert.deepEqual([outbox.bytes, outbox.full], [9, false]);
  outbox.add(3, run("c")); // Crosses the limit: taken, and now it is full.
  assert.deepEqual([outbox.bytes, outbox.full], [12, true]);
  outbox.deliver(fake);
  assert.deepEqual(order, ["a", "flush", "b", "c"]);
  assert.deepEqual([outbox.bytes, outbox.full], [0, false]);
});

Deno.test("Outbox.fail() rejects everything that waits with the error", async () => {
  const outbox = new Outbox(10);
  const waiting = [outbox.add(1, () => Promise.resolve()), outbox.add(0, () => Promise.resolve())];
  const error = new Error("gone");
  outbox.fail(error);
  for (const promise of waiting) await assert.rejects(promise, (e) => e === error);
  assert.equal(outbox.bytes, 0);
});
