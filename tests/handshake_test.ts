// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { type CipherState, DecryptionError, generateKeyPair, type KeyPair } from "../cipher.ts";
import {
  HandshakeError,
  HandshakeState,
  type HandshakeStateOptions,
  SymmetricState,
} from "../handshake.ts";
import { parseProtocolName, type Pattern, PATTERN_NAMES } from "../_noise/patterns.ts";

type Bytes = Uint8Array<ArrayBuffer>;
type SideOptions = Partial<HandshakeStateOptions>;

interface Peers {
  initiator: HandshakeState;
  responder: HandshakeState;
  keys: { initiator: KeyPair; responder: KeyPair };
}

function protocol(pattern: string): string {
  return `Noise_${pattern}_25519_AESGCM_SHA256`;
}

function encode(text: string): Bytes {
  return new Uint8Array(new TextEncoder().encode(text));
}

function flipped(bytes: Uint8Array, index: number): Bytes {
  const copy = new Uint8Array(bytes);
  copy[index] ^= 0x01;
  return copy;
}

function randomKey(): Bytes {
  return crypto.getRandomValues(new Uint8Array(32));
}

function isOneWay(pattern: Pattern): boolean {
  return pattern.messages.length === 1;
}

/** Whether the side `fromInitiator` has a static key its peer learns, by pre-message or message. */
function hasStatic(pattern: Pattern, fromInitiator: boolean): boolean {
  const preMessage = fromInitiator ? pattern.initiatorPreMessage : pattern.responderPreMessage;
  return preMessage.includes("s") ||
    pattern.messages.some((tokens, i) => (i % 2 === 0) === fromInitiator && tokens.includes("s"));
}

/** Creates both sides of `protocolName` with random keys; `options` override either side. */
async function createPeers(
  protocolName: string,
  options: { initiator?: SideOptions; responder?: SideOptions } = {},
): Promise<Peers> {
  const { pattern } = parseProtocolName(protocolName);
  const keys = { initiator: await generateKeyPair(), responder: await generateKeyPair() };
  const psks = pattern.messages.flat().filter((token) => token === "psk").map(randomKey);
  const side = (initiator: boolean) => {
    const [own, peer] = initiator
      ? [keys.initiator, keys.responder]
      : [keys.responder, keys.initiator];
    const peerPreMessage = initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
    return HandshakeState.create({
      protocolName,
      initiator,
      staticPrivateKey: own.privateKey,
      remoteStaticPublicKey: peerPreMessage.includes("s") ? peer.publicKey : undefined,
      psks,
      ...(initiator ? options.initiator : options.responder),
    });
  };
  return { initiator: await side(true), responder: await side(false), keys };
}

function roles(peers: Peers, index: number): [HandshakeState, HandshakeState] {
  return index % 2 === 0 ? [peers.initiator, peers.responder] : [peers.responder, peers.initiator];
}

/** Writes handshake message `index` and checks that its payload arrives. */
async function exchange(peers: Peers, index: number): Promise<void> {
  const [writer, reader] = roles(peers, index);
  const payload = encode(`payload of message ${index}`);
  assert.deepEqual(await reader.readMessage(await writer.writeMessage(payload)), payload);
}

async function completeHandshake(peers: Peers, from = 0): Promise<void> {
  for (let i = from; !peers.initiator.isComplete; i++) await exchange(peers, i);
  assert.ok(peers.responder.isComplete);
  assert.equal(peers.initiator.handshakeHash.length, 32);
  assert.deepEqual(peers.initiator.handshakeHash, peers.responder.handshakeHash);
}

async function assertTalks(send: CipherState, receive: CipherState): Promise<void> {
  const ad = encode("ad");
  const plaintext = encode("transport message");
  const sealed = await send.encryptWithAd(ad, plaintext);
  assert.deepEqual(await receive.decryptWithAd(ad, sealed), plaintext);
}

async function assertTransportWorks(peers: Peers, oneWay: boolean): Promise<void> {
  const initiator = await peers.initiator.split();
  const responder = await peers.responder.split();
  await assertTalks(initiator.send, responder.receive);
  if (oneWay) return;
  await assertTalks(responder.send, initiator.receive);
  const ad = new Uint8Array(0);
  assert.notDeepEqual(
    await initiator.send.encryptWithAd(ad, new Uint8Array(16)),
    await responder.send.encryptWithAd(ad, new Uint8Array(16)),
    "each direction has its own key",
  );
}

async function assertRoundTrip(protocolName: string): Promise<void> {
  const { pattern } = parseProtocolName(protocolName);
  const peers = await createPeers(protocolName);
  await completeHandshake(peers);
  const expected = (fromInitiator: boolean) => {
    const keys = fromInitiator ? peers.keys.initiator : peers.keys.responder;
    return hasStatic(pattern, fromInitiator) ? keys.publicKey : undefined;
  };
  assert.deepEqual(peers.initiator.remoteStaticPublicKey, expected(false));
  assert.deepEqual(peers.responder.remoteStaticPublicKey, expected(true));
  await assertTransportWorks(peers, isOneWay(pattern));
}

function messageCount(patternName: string): number {
  return parseProtocolName(protocol(patternName)).pattern.messages.length;
}

const PSK_VARIANTS: [string, (name: string) => string][] = [
  ["without a psk", () => ""],
  ["with psk0", () => "psk0"],
  ["with a psk on the last message", (name) => `psk${messageCount(name)}`],
  ["with psk0 and a psk on the last message", (name) => `psk0+psk${messageCount(name)}`],
];

for (const [variant, modifier] of PSK_VARIANTS) {
  Deno.test(`HandshakeState completes every pattern ${variant}, and its split ciphers talk`, async (t) => {
    assert.equal(PATTERN_NAMES.length, 38);
    for (const name of PATTERN_NAMES) {
      const protocolName = protocol(name + modifier(name));
      await t.step(protocolName, () => assertRoundTrip(protocolName));
    }
  });
}

/** Reads every one-byte corruption of `message`, each of which must be rejected. */
async function assertEveryFlipRejected(reader: HandshakeState, message: Bytes): Promise<void> {
  for (let i = 0; i < message.length; i++) {
    await assert.rejects(reader.readMessage(flipped(message, i)), HandshakeError, `byte ${i}`);
  }
}

async function assertFlipsRejectedThenOriginalAccepted(
  patternName: string,
  index: number,
): Promise<void> {
  const peers = await createPeers(protocol(patternName));
  for (let i = 0; i < index; i++) await exchange(peers, i);
  const [writer, reader] = roles(peers, index);
  const payload = encode("payload");
  const message = await writer.writeMessage(payload);
  await assertEveryFlipRejected(reader, message);
  assert.deepEqual(await reader.readMessage(message), payload);
  await completeHandshake(peers, index + 1);
  await assertTransportWorks(peers, false);
}

Deno.test("HandshakeState.readMessage() rejects every flipped byte of XX messages 2 and 3 and rolls back", async (t) => {
  for (const index of [1, 2]) {
    await t.step(
      `message ${index + 1}`,
      () => assertFlipsRejectedThenOriginalAccepted("XX", index),
    );
  }
});

Deno.test("HandshakeState.readMessage() rejects every flipped byte of XXpsk3 messages and rolls back", async (t) => {
  for (const index of [0, 1, 2]) {
    await t.step(
      `message ${index + 1}`,
      () => assertFlipsRejectedThenOriginalAccepted("XXpsk3", index),
    );
  }
});

// XX message 1 is a bare ephemeral key and a plaintext payload: nothing can
// authenticate it yet, so the initiator is the one to reject the reply.
Deno.test("HandshakeState rejects the reply to every flipped byte of XX message 1 and rolls back", async () => {
  const peers = await createPeers(protocol("XX"));
  const message = await peers.initiator.writeMessage(encode("hello"));
  const respondTo = async (received: Bytes) => {
    const responder = await HandshakeState.create({
      protocolName: protocol("XX"),
      initiator: false,
      staticPrivateKey: peers.keys.responder.privateKey,
    });
    await responder.readMessage(received);
    return { responder, reply: await responder.writeMessage(encode("reply")) };
  };
  for (let i = 0; i < message.length; i++) {
    const { reply } = await respondTo(flipped(message, i));
    await assert.rejects(peers.initiator.readMessage(reply), HandshakeError, `byte ${i}`);
  }
  const { responder, reply } = await respondTo(message);
  assert.deepEqual(await peers.initiator.readMessage(reply), encode("reply"));
  await completeHandshake({ ...peers, responder }, 2);
});

Deno.test("HandshakeState.split() ciphers reject every flipped byte of a transport message", async () => {
  const peers = await createPeers(protocol("XX"));
  await completeHandshake(peers);
  const initiator = await peers.initiator.split();
  const responder = await peers.responder.split();
  const ad = new Uint8Array(0);
  const sealed = await initiator.send.encryptWithAd(ad, encode("transport"));
  for (let i = 0; i < sealed.length; i++) {
    await assert.rejects(responder.receive.decryptWithAd(ad, flipped(sealed, i)), DecryptionError);
  }
  assert.deepEqual(await responder.receive.decryptWithAd(ad, sealed), encode("transport"));
});

/** Plays the handshake up to message `index`, whose reader must reject it. */
async function assertReadRejected(peers: Peers, index: number): Promise<void> {
  for (let i = 0; i < index; i++) await exchange(peers, i);
  const [writer, reader] = roles(peers, index);
  const message = await writer.writeMessage(encode("payload"));
  await assert.rejects(reader.readMessage(message), (error: unknown) => {
    assert.ok(error instanceof HandshakeError, `got ${error}`);
    assert.equal(error.name, "HandshakeError");
    return true;
  });
}

Deno.test("HandshakeState fails on the reading side when the psks differ", async (t) => {
  for (const [name, index] of [["XXpsk3", 2], ["NNpsk0", 0], ["Npsk0", 0]] as const) {
    await t.step(name, async () => {
      const peers = await createPeers(protocol(name), { responder: { psks: [randomKey()] } });
      await assertReadRejected(peers, index);
    });
  }
});

Deno.test("HandshakeState fails on the reading side when the prologues differ", async (t) => {
  for (const [name, index] of [["NN", 1], ["XX", 1], ["IK", 0]] as const) {
    await t.step(name, async () => {
      const peers = await createPeers(protocol(name), {
        initiator: { prologue: encode("v1") },
        responder: { prologue: encode("v2") },
      });
      await assertReadRejected(peers, index);
    });
  }
});

Deno.test("HandshakeState fails on the reading side with a wrong remoteStaticPublicKey", async (t) => {
  const wrong = async () => ({ remoteStaticPublicKey: (await generateKeyPair()).publicKey });
  await t.step("NK initiator", async () => {
    await assertReadRejected(await createPeers(protocol("NK"), { initiator: await wrong() }), 0);
  });
  await t.step("K responder", async () => {
    await assertReadRejected(await createPeers(protocol("K"), { responder: await wrong() }), 0);
  });
  await t.step("KN responder", async () => {
    await assertReadRejected(await createPeers(protocol("KN"), { responder: await wrong() }), 1);
  });
});

Deno.test("HandshakeState.create() rejects a malformed or unsupported protocol name with TypeError", async (t) => {
  const names = [
    "Noise_ZZ_25519_AESGCM_SHA256",
    "Noise_XX_448_AESGCM_SHA256",
    "Noise_XX_25519_ChaChaPoly_SHA256",
    "Noise_XX_25519_AESGCM_BLAKE2s",
    "Noise_XX_25519_AESGCM_SHA512",
    "Noise_XX_25519_AESGCM",
    "Noise_XX_25519_AESGCM_SHA256_",
    "Noise_XXfallback_25519_AESGCM_SHA256",
    "Noise_XXpsk_25519_AESGCM_SHA256",
    "Noise_XXpsk9_25519_AESGCM_SHA256",
    "Noise_XXpsk4_25519_AESGCM_SHA256",
    "Noise_XXpsk0+psk0_25519_AESGCM_SHA256",
    "Noise_XXpsk3+psk3_25519_AESGCM_SHA256",
    "Noise_Npsk2_25519_AESGCM_SHA256",
    "XX",
    "",
    42 as unknown as string,
  ];
  // The static key is there so that only the name can be at fault, and the
  // message must quote the name: a TypeError from deeper down would not.
  const { privateKey } = await generateKeyPair();
  for (const protocolName of names) {
    await t.step(String(protocolName) || "(empty)", async () => {
      const create = HandshakeState.create({
        protocolName,
        initiator: true,
        staticPrivateKey: privateKey,
      });
      await assert.rejects(create, (error: unknown) => {
        assert.ok(error instanceof TypeError, `got ${error}`);
        const quoted = typeof protocolName === "string" ? `"${protocolName}"` : "expected a string";
        assert.ok(error.message.includes(quoted), error.message);
        return true;
      });
    });
  }
});

Deno.test("HandshakeState.create() rejects a key that is not 32 bytes with RangeError", async (t) => {
  const cases: [string, SideOptions][] = [
    ["staticPrivateKey", { staticPrivateKey: new Uint8Array(31) }],
    ["ephemeralPrivateKey", { ephemeralPrivateKey: new Uint8Array(33) }],
    ["remoteStaticPublicKey", { remoteStaticPublicKey: new Uint8Array(16) }],
    ["psks[0]", { psks: [new Uint8Array(31)] }],
  ];
  for (const [field, options] of cases) {
    await t.step(field, async () => {
      await assert.rejects(createPeers(protocol("IKpsk2"), { initiator: options }), RangeError);
    });
  }
});

Deno.test("HandshakeState.create() rejects a missing key the pattern needs with TypeError", async (t) => {
  const cases: [string, boolean, keyof HandshakeStateOptions][] = [
    ["XX", true, "staticPrivateKey"],
    ["XX", false, "staticPrivateKey"],
    ["N", false, "staticPrivateKey"],
    ["KN", true, "staticPrivateKey"],
    ["NK", true, "remoteStaticPublicKey"],
    ["K", false, "remoteStaticPublicKey"],
    ["KK", true, "remoteStaticPublicKey"],
  ];
  for (const [name, initiator, field] of cases) {
    await t.step(`${name} ${initiator ? "initiator" : "responder"} without ${field}`, async () => {
      const side = { [field]: undefined };
      const options = initiator ? { initiator: side } : { responder: side };
      await assert.rejects(createPeers(protocol(name), options), {
        name: "TypeError",
        message: new RegExp(`needs ${field}`),
      });
    });
  }
});

Deno.test("HandshakeState.create() rejects a psk count that does not match the pattern with RangeError", async (t) => {
  const cases: [string, number][] = [["XXpsk3", 0], ["XXpsk3", 2], ["XX", 1], ["XXpsk0+psk3", 1]];
  for (const [name, count] of cases) {
    await t.step(`${name} with ${count} psks`, async () => {
      const psks = Array.from({ length: count }, randomKey);
      await assert.rejects(createPeers(protocol(name), { initiator: { psks } }), RangeError);
    });
  }
});

Deno.test("HandshakeState rejects writing when a read is due and reading when a write is due with TypeError", async () => {
  const peers = await createPeers(protocol("XX"));
  await assert.rejects(peers.responder.writeMessage(), TypeError);
  await assert.rejects(peers.initiator.readMessage(new Uint8Array(32)), TypeError);
  await exchange(peers, 0);
  await assert.rejects(peers.initiator.writeMessage(), TypeError);
  await assert.rejects(peers.responder.readMessage(new Uint8Array(32)), TypeError);
  await completeHandshake(peers, 1);
});

Deno.test("HandshakeState rejects writing and reading after the handshake is complete with TypeError", async () => {
  const peers = await createPeers(protocol("NN"));
  await completeHandshake(peers);
  await assert.rejects(peers.initiator.writeMessage(), TypeError);
  await assert.rejects(peers.responder.writeMessage(), TypeError);
  await assert.rejects(peers.initiator.readMessage(new Uint8Array(48)), TypeError);
  await peers.initiator.split();
  await assert.rejects(peers.initiator.writeMessage(), TypeError);
});

Deno.test("HandshakeState.split() rejects before completion and a second time with TypeError", async () => {
  const peers = await createPeers(protocol("NN"));
  await assert.rejects(peers.initiator.split(), TypeError);
  await exchange(peers, 0);
  await assert.rejects(peers.initiator.split(), TypeError);
  await assert.rejects(peers.responder.split(), TypeError);
  await exchange(peers, 1);
  await assertTransportWorks(peers, false);
  await assert.rejects(peers.initiator.split(), TypeError);
  await assert.rejects(peers.responder.split(), TypeError);
});

Deno.test("HandshakeState.handshakeHash throws TypeError before the handshake is complete", async () => {
  const peers = await createPeers(protocol("NN"));
  assert.throws(() => peers.initiator.handshakeHash, TypeError);
  await exchange(peers, 0);
  assert.throws(() => peers.initiator.handshakeHash, TypeError);
  assert.throws(() => peers.responder.handshakeHash, TypeError);
});

Deno.test("HandshakeState.readMessage() rejects a short message with HandshakeError and rolls back", async (t) => {
  await t.step("NN responder reading 5 bytes", async () => {
    const peers = await createPeers(protocol("NN"));
    await assert.rejects(peers.responder.readMessage(new Uint8Array(5)), HandshakeError);
    await completeHandshake(peers);
  });
  await t.step("XX initiator reading every truncation of message 2", async () => {
    const peers = await createPeers(protocol("XX"));
    await exchange(peers, 0);
    const message = await peers.responder.writeMessage();
    for (let length = 0; length < message.length; length++) {
      await assert.rejects(peers.initiator.readMessage(message.slice(0, length)), HandshakeError);
    }
    await peers.initiator.readMessage(message);
    await completeHandshake(peers, 2);
  });
});

Deno.test("HandshakeState.readMessage() rejects a message over 65535 bytes with HandshakeError", async () => {
  const peers = await createPeers(protocol("NN"));
  const message = await peers.initiator.writeMessage(new Uint8Array(65535 - 32));
  assert.equal(message.length, 65535);
  const tooLong = new Uint8Array(65536);
  tooLong.set(message);
  await assert.rejects(peers.responder.readMessage(tooLong), HandshakeError);
  await peers.responder.readMessage(message);
  await completeHandshake(peers, 1);
});

Deno.test("HandshakeState.writeMessage() rejects a message over 65535 bytes with RangeError and rolls back", async (t) => {
  // NN message 1 is e (32 bytes) and a plaintext payload; XX message 2 is
  // e (32), an encrypted s (48) and a payload with its tag (16).
  for (const [name, index, overhead] of [["NN", 0, 32], ["XX", 1, 32 + 48 + 16]] as const) {
    await t.step(`${name} message ${index + 1}`, async () => {
      const peers = await createPeers(protocol(name));
      for (let i = 0; i < index; i++) await exchange(peers, i);
      const [writer, reader] = roles(peers, index);
      await assert.rejects(writer.writeMessage(new Uint8Array(65536 - overhead)), RangeError);
      assert.ok(writer.isMyTurn);
      const message = await writer.writeMessage(new Uint8Array(65535 - overhead));
      assert.equal(message.length, 65535);
      await reader.readMessage(message);
      await completeHandshake(peers, index + 1);
    });
  }
});

Deno.test("SymmetricState.initialize() zero-pads a protocol name of up to 32 bytes and hashes a longer one", async () => {
  const padded = (name: string) => {
    const h = new Uint8Array(32);
    h.set(encode(name));
    return h;
  };
  const sha256 = async (name: string) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", encode(name)));
  const h = async (name: string) => (await SymmetricState.initialize(name)).getHandshakeHash();
  const short = protocol("NN");
  const exact = protocol("NNpsk0");
  const long = protocol("NX1psk0");
  assert.deepEqual([short.length, exact.length, long.length], [28, 32, 33]);
  assert.deepEqual(await h(short), padded(short));
  assert.deepEqual(await h(exact), encode(exact));
  assert.deepEqual(await h(long), await sha256(long));
});

Deno.test("SymmetricState.mixHash() replaces h with SHA-256 of h followed by the data", async () => {
  const state = await SymmetricState.initialize(protocol("NN"));
  const before = state.getHandshakeHash();
  const data = encode("prologue");
  await state.mixHash(data);
  const expected = await crypto.subtle.digest("SHA-256", new Uint8Array([...before, ...data]));
  assert.deepEqual(state.getHandshakeHash(), new Uint8Array(expected));
});

Deno.test("HandshakeState refuses a second call while one is in progress", async () => {
  const initiator = await HandshakeState.create({ protocolName: protocol("NN"), initiator: true });
  const first = initiator.writeMessage();
  await assert.rejects(initiator.writeMessage(), (error: unknown) => {
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /in progress/);
    return true;
  });
  await first;
  assert.equal(initiator.isComplete, false);
  await assert.rejects(initiator.writeMessage(), TypeError);
});
