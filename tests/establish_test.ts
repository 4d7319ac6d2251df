// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { fromHex, toHex } from "../_bytes.ts";
import { encodePreamble, encodeRefuse, prologue, REFUSE_CODES } from "../_establish.ts";
import { generateKeyPair } from "../cipher.ts";

const config = async (psk?: Uint8Array<ArrayBuffer>) => ({
  applicationName: "aesm",
  keyPair: await generateKeyPair(),
  psk,
  maxMessageSize: 1024,
});

Deno.test("encodePreamble() gives the bytes of PROTOCOL.md's worked example", async () => {
  const preamble = await encodePreamble(await config());
  assert.equal(toHex(preamble), "6165736d010000007f5aeeb237f4528e");
  assert.equal(
    toHex(prologue(preamble, await config())),
    "6165736d010000007f5aeeb237f4528e" + "6165736d",
  );
});

Deno.test("encodePreamble() sets the protocol byte when a psk is configured", async () => {
  const preamble = await encodePreamble(await config(new Uint8Array(32)));
  assert.equal(preamble[5], 1);
});

Deno.test("encodeRefuse() writes a Refuse frame with the code and a bounded detail", () => {
  const frame = encodeRefuse("server-full", "x".repeat(1000));
  assert.deepEqual(frame.subarray(0, 4), fromHex("0201010" + "9"));
  assert.equal(frame.length, 3 + 1 + 256);
  assert.equal(REFUSE_CODES["server-full"], 0x09);
});
