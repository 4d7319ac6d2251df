// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { fromHex, toHex } from "../_bytes.ts";
import { HandshakeState, type TransportCiphers } from "../handshake.ts";
import { hexOrUndefined, loadVectorFiles, type Vector } from "./_vectors.ts";

const files = await loadVectorFiles();

async function side(vector: Vector, initiator: boolean): Promise<HandshakeState> {
  const prefix = initiator ? "init" : "resp";
  const field = (name: string) =>
    (vector as unknown as Record<string, string | undefined>)[`${prefix}_${name}`];
  return await HandshakeState.create({
    protocolName: vector.protocol_name,
    initiator,
    prologue: fromHex(field("prologue")!),
    staticPrivateKey: hexOrUndefined(field("static")),
    ephemeralPrivateKey: hexOrUndefined(field("ephemeral")),
    remoteStaticPublicKey: hexOrUndefined(field("remote_static")),
    psks: ((vector as unknown as Record<string, string[] | undefined>)[`${prefix}_psks`] ?? []).map(
      fromHex,
    ),
  });
}

async function replay(vector: Vector): Promise<void> {
  const initiator = await side(vector, true);
  const responder = await side(vector, false);
  const oneWay = /^Noise_[NKX](psk\d)?_/.test(vector.protocol_name);
  let transport: { initiator: TransportCiphers; responder: TransportCiphers } | undefined;
  for (const [i, { payload, ciphertext }] of vector.messages.entries()) {
    const fromInitiator = oneWay || i % 2 === 0;
    const [sender, receiver] = fromInitiator ? [initiator, responder] : [responder, initiator];
    if (transport === undefined) {
      const message = await sender.writeMessage(fromHex(payload));
      assert.equal(toHex(message), ciphertext, `handshake message ${i}`);
      assert.equal(toHex(await receiver.readMessage(message)), payload, `handshake payload ${i}`);
      if (initiator.isComplete && responder.isComplete) {
        if (vector.handshake_hash !== undefined) {
          assert.equal(toHex(initiator.handshakeHash), vector.handshake_hash);
        }
        assert.deepEqual(initiator.handshakeHash, responder.handshakeHash);
        transport = { initiator: await initiator.split(), responder: await responder.split() };
      }
      continue;
    }
    const [send, receive] = fromInitiator
      ? [transport.initiator.send, transport.responder.receive]
      : [transport.responder.send, transport.initiator.receive];
    const sealed = await send.encryptWithAd(new Uint8Array(0), fromHex(payload));
    assert.equal(toHex(sealed), ciphertext, `transport message ${i}`);
    assert.equal(toHex(await receive.decryptWithAd(new Uint8Array(0), sealed)), payload);
  }
  assert.ok(transport, "the handshake completed");
}

Deno.test("Noise test vectors replay byte for byte in both roles", async (t) => {
  let ran = 0;
  let total = 0;
  for (const file of files) {
    total += file.vectors.length;
    for (const [i, vector] of file.vectors.entries()) {
      const ok = await t.step(`${file.name} #${i} ${vector.protocol_name}`, () => replay(vector));
      if (ok) ran++;
    }
  }
  console.log(
    `Noise vectors: ${ran} of ${total} passed (${
      files.map((f) => `${f.name}: ${f.vectors.length}`).join(", ")
    })`,
  );
  assert.equal(total, 110, "the shared vector files hold 110 vectors");
  assert.equal(ran, total);
});
