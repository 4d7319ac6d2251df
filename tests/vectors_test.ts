// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { fromHex, toHex } from "../_crypto/bytes.ts";
import type { HandshakeState, TransportCiphers } from "../handshake.ts";
import { createHandshakeState } from "../_noise/handshake_state.ts";
import { hasNodeCrypto, type Suite, suiteFor, type SuiteName } from "../_crypto/primitives.ts";
import { hexOrUndefined, loadVectorFiles, type Vector } from "./_vectors.ts";

const files = await loadVectorFiles();

async function side(vector: Vector, initiator: boolean, suite: Suite): Promise<HandshakeState> {
  const prefix = initiator ? "init" : "resp";
  const field = (name: string) =>
    (vector as unknown as Record<string, string | undefined>)[`${prefix}_${name}`];
  return await createHandshakeState({
    protocolName: vector.protocol_name,
    initiator,
    prologue: fromHex(field("prologue")!),
    staticPrivateKey: hexOrUndefined(field("static")),
    ephemeralPrivateKey: hexOrUndefined(field("ephemeral")),
    remoteStaticPublicKey: hexOrUndefined(field("remote_static")),
    psks: ((vector as unknown as Record<string, string[] | undefined>)[`${prefix}_psks`] ?? []).map(
      fromHex,
    ),
  }, suite);
}

async function replay(vector: Vector, suite: Suite): Promise<void> {
  const initiator = await side(vector, true, suite);
  const responder = await side(vector, false, suite);
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

// "auto" mixes the two backends by size; "node" puts every function, every
// size, through node:crypto; "webcrypto" is the portable path.
const SUITES: SuiteName[] = hasNodeCrypto() ? ["webcrypto", "auto", "node"] : ["webcrypto", "auto"];

for (const name of SUITES) {
  const suite = suiteFor(name);
  Deno.test(`Noise test vectors replay byte for byte in both roles with the ${name} suite`, async (t) => {
    let ran = 0;
    let total = 0;
    for (const file of files) {
      total += file.vectors.length;
      for (const [i, vector] of file.vectors.entries()) {
        const step = `${file.name} #${i} ${vector.protocol_name}`;
        if (await t.step(step, () => replay(vector, suite))) ran++;
      }
    }
    console.log(
      `Noise vectors, ${name} suite (${suite.description}): ${ran} of ${total} passed (${
        files.map((f) => `${f.name}: ${f.vectors.length}`).join(", ")
      })`,
    );
    assert.equal(total, 110, "the shared vector files hold 110 vectors");
    assert.equal(ran, total);
  });
}
