// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import * as mod from "../mod.ts";
import * as noise from "../noise.ts";

const NOISE_CORE = [
  "CipherState",
  "SymmetricState",
  "HandshakeState",
  "DecryptionError",
  "MAX_NONCE",
  "MAX_MESSAGE_LENGTH",
  "FrameType",
  "FRAME_HEADER_LENGTH",
  "MAX_FRAME_BODY",
  "encodeFrame",
  "encodeFrameHeader",
  "FrameDecoderStream",
];

Deno.test("mod.ts exports the socket API and its keys and errors, and no Noise internals", () => {
  for (const name of NOISE_CORE) assert.ok(!(name in mod), `mod.ts exports ${name}`);
  for (
    const name of [
      "ServerNetwork",
      "ClientNetwork",
      "Connection",
      "Connections",
      "Packet",
      "PacketQueue",
      "ActivityLog",
      "generateKeyPair",
      "keyPairFromPrivateKey",
      "HandshakeError",
      "RefusedError",
      "AuthenticationError",
      "ConnectError",
      "TimeoutError",
      "ConnectionClosedError",
      "ProtocolError",
      "MessageTooLargeError",
    ]
  ) {
    assert.ok(name in mod, `mod.ts lacks ${name}`);
  }
});

Deno.test("deno doc mod.ts lists no Noise internals", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", new URL("../mod.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(output.success);
  const doc = JSON.parse(new TextDecoder().decode(output.stdout));
  const symbols = Object.values(doc.nodes as Record<string, { symbols: { name: string }[] }>)
    .flatMap((file) => file.symbols);
  const names = new Set(symbols.map((symbol) => symbol.name));
  for (const name of NOISE_CORE) assert.ok(!names.has(name), `deno doc mod.ts lists ${name}`);
  assert.ok(names.has("ServerNetwork") && names.has("ClientNetwork"));
});

Deno.test("the exact Noise surface is importable from noise.ts", async () => {
  for (const name of NOISE_CORE) assert.ok(name in noise, `noise.ts lacks ${name}`);
  const protocolName = "Noise_XXpsk3_25519_AESGCM_SHA256";
  const psks = [crypto.getRandomValues(new Uint8Array(32))];
  const prologue = new TextEncoder().encode("prologue");
  const initiator = await noise.HandshakeState.create({
    protocolName,
    initiator: true,
    prologue,
    staticPrivateKey: (await noise.generateKeyPair()).privateKey,
    psks,
  });
  const responder = await noise.HandshakeState.create({
    protocolName,
    initiator: false,
    prologue,
    staticPrivateKey: (await noise.generateKeyPair()).privateKey,
    psks,
  });
  const payload = new TextEncoder().encode("payload");
  assert.equal((await responder.readMessage(await initiator.writeMessage())).length, 0);
  await initiator.readMessage(await responder.writeMessage());
  assert.deepEqual(await responder.readMessage(await initiator.writeMessage(payload)), payload);
  assert.ok(initiator.isComplete && responder.isComplete);
  assert.deepEqual(initiator.handshakeHash, responder.handshakeHash);
  assert.equal(initiator.remoteStaticPublicKey?.length, 32);
  const { send } = await initiator.split();
  const { receive } = await responder.split();
  const ad = new Uint8Array([1]);
  assert.deepEqual(await receive.decryptWithAd(ad, await send.encryptWithAd(ad, payload)), payload);
});
