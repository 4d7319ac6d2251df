// Copyright 2026 the aesm authors. MIT license.
// The crypto seam: every backend computes the same bytes, and each suite
// sends each operation where _crypto/primitives.ts says.
import assert from "node:assert/strict";
import { type CipherState, DecryptionError } from "../cipher.ts";
import { createCipherState, decryptNow, encryptNow } from "../_noise/cipher_state.ts";
import {
  backendCalls,
  hasNodeCrypto,
  type Suite,
  suiteFor,
  type SuiteName,
  SYNC_AEAD_MAX,
} from "../_crypto/primitives.ts";

type Bytes = Uint8Array<ArrayBuffer>;

const MAX_PLAINTEXT = 65519; // The largest transport plaintext: 65535 minus the tag.
const MESSAGES = 400;
const REKEY_EVERY = 37;

// A seeded generator, so a failure names sizes that can be replayed.
function generator(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

const SEED = Number(Deno.env.get("AESM_CROSS_SEED") ?? (Date.now() % 2 ** 31));

function sizes(random: () => number): number[] {
  const edges = [0, 1, 15, 16, SYNC_AEAD_MAX - 16, SYNC_AEAD_MAX - 1, SYNC_AEAD_MAX];
  edges.push(SYNC_AEAD_MAX + 1, SYNC_AEAD_MAX + 16, MAX_PLAINTEXT - 1, MAX_PLAINTEXT);
  const out = [...edges];
  while (out.length < MESSAGES) out.push(Math.floor(random() * (MAX_PLAINTEXT + 1)));
  return out;
}

function randomBytes(size: number): Bytes {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + 65536)));
  }
  return bytes;
}

function cipher(key: Uint8Array, suite: SuiteName): Promise<CipherState> {
  return createCipherState(key, suiteFor(suite));
}

const NAMES: SuiteName[] = hasNodeCrypto() ? ["webcrypto", "auto", "node"] : ["webcrypto", "auto"];
const PAIRS = NAMES.flatMap((a) => NAMES.filter((b) => b !== a).map((b) => [a, b] as const));

for (const [sealer, opener] of PAIRS) {
  Deno.test(`What the ${sealer} suite seals, the ${opener} suite opens, byte for byte, 0 to 65519 bytes, through rekeys`, async () => {
    const random = generator(SEED);
    const key = randomBytes(32);
    const send = await cipher(key, sealer);
    const receive = await cipher(key, opener);
    const twin = await cipher(key, opener); // Seals the same stream with the other suite.
    for (const [i, size] of sizes(random).entries()) {
      const ad = randomBytes(3);
      const plaintext = randomBytes(size);
      const sealed = await send.encryptWithAd(ad, plaintext);
      const where = `message ${i} of ${size} bytes (AESM_CROSS_SEED=${SEED})`;
      assert.deepEqual(await twin.encryptWithAd(ad, plaintext), sealed, `same bytes, ${where}`);
      assert.deepEqual(await receive.decryptWithAd(ad, sealed), plaintext, where);
      if (i % REKEY_EVERY === REKEY_EVERY - 1) {
        await Promise.all([send.rekey(), receive.rekey(), twin.rekey()]);
      }
    }
    assert.equal(send.nonce, BigInt(MESSAGES));
    assert.equal(receive.nonce, BigInt(MESSAGES));
  });
}

for (const name of NAMES) {
  Deno.test(`The ${name} suite rejects a flipped bit at every size class and keeps its nonce`, async () => {
    const key = randomBytes(32);
    const send = await cipher(key, "webcrypto");
    const receive = await cipher(key, name);
    for (const size of [0, 64, SYNC_AEAD_MAX - 16, SYNC_AEAD_MAX, MAX_PLAINTEXT]) {
      const sealed = await send.encryptWithAd(new Uint8Array(0), randomBytes(size));
      for (const position of [0, sealed.length >> 1, sealed.length - 1]) {
        const forged = sealed.slice();
        forged[position] ^= 1;
        const before = receive.nonce;
        await assert.rejects(receive.decryptWithAd(new Uint8Array(0), forged), DecryptionError);
        assert.equal(receive.nonce, before, `size ${size}, byte ${position}`);
      }
      await receive.decryptWithAd(new Uint8Array(0), sealed);
    }
  });

  Deno.test(`The ${name} suite's DH, HASH and HKDF give the WebCrypto suite's bytes`, async () => {
    const suite = suiteFor(name);
    const reference = suiteFor("webcrypto");
    for (const size of [0, 1, 32, 64, 1000, 70000]) {
      const data = randomBytes(size);
      assert.deepEqual(await suite.hash(data), await reference.hash(data), `hash of ${size}`);
    }
    const chainingKey = randomBytes(32);
    for (const ikm of [new Uint8Array(0), randomBytes(32)]) {
      for (const outputs of [2, 3] as const) {
        assert.deepEqual(
          await suite.hkdf(chainingKey, ikm, outputs),
          await reference.hkdf(chainingKey, ikm, outputs),
        );
      }
    }
    const mine = await suite.generateRawKeyPair();
    const theirs = await reference.generateRawKeyPair();
    const [a, b] = [
      await suite.importDhKeyPair(mine.privateKey),
      await reference.importDhKeyPair(theirs.privateKey),
    ];
    assert.deepEqual(a.publicKey, mine.publicKey);
    assert.deepEqual((await reference.importDhKeyPair(mine.privateKey)).publicKey, mine.publicKey);
    assert.deepEqual(await suite.dh(a, theirs.publicKey), await reference.dh(b, mine.publicKey));
  });

  Deno.test(`The ${name} suite refuses a low-order public key`, async () => {
    const suite: Suite = suiteFor(name);
    const pair = await suite.generateDhKeyPair();
    const one = new Uint8Array(32);
    one[0] = 1;
    for (const publicKey of [new Uint8Array(32), one]) {
      await assert.rejects(async () => await suite.dh(pair, publicKey));
    }
  });
}

Deno.test(
  "The auto suite seals small frames with node:crypto, synchronously, and large ones with WebCrypto",
  {
    ignore: !hasNodeCrypto(),
  },
  async () => {
    const key = randomBytes(32);
    const auto = await cipher(key, "auto");
    const small = encryptNow(auto, new Uint8Array(0), randomBytes(SYNC_AEAD_MAX));
    assert.ok(small instanceof Uint8Array, "a small frame is sealed without a promise");
    const opened = decryptNow(await cipher(key, "node"), new Uint8Array(0), small);
    assert.ok(opened instanceof Uint8Array, "and opened without one");
    const before = { ...backendCalls };
    const large = encryptNow(auto, new Uint8Array(0), randomBytes(SYNC_AEAD_MAX + 1));
    assert.ok(large instanceof Promise, "a large frame goes to WebCrypto");
    await large;
    assert.equal(backendCalls.webcrypto - before.webcrypto, 1);
    assert.equal(backendCalls["node:crypto"], before["node:crypto"]);
  },
);

Deno.test("The webcrypto suite never calls node:crypto", async () => {
  const before = backendCalls["node:crypto"];
  const key = randomBytes(32);
  const send = await cipher(key, "webcrypto");
  const receive = await cipher(key, "webcrypto");
  for (const size of [0, 64, MAX_PLAINTEXT]) {
    const sealed = await send.encryptWithAd(new Uint8Array(0), randomBytes(size));
    await receive.decryptWithAd(new Uint8Array(0), sealed);
  }
  await send.rekey();
  const suite = suiteFor("webcrypto");
  const pair = await suite.generateDhKeyPair();
  await suite.dh(pair, (await suite.generateDhKeyPair()).publicKey);
  await suite.hkdf(randomBytes(32), randomBytes(32), 2);
  assert.equal(backendCalls["node:crypto"], before);
});

Deno.test("suiteFor() names every suite it gives", () => {
  for (const name of NAMES) assert.equal(suiteFor(name).name, name);
  console.log(`AES-GCM up to ${SYNC_AEAD_MAX} B synchronously; cross-test seed ${SEED}`);
});

Deno.test("Without node:crypto (as in a browser) the core loads, auto is WebCrypto, and a handshake and both frame sizes work", async () => {
  const url = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
  // node:crypto is looked up on first use, so hiding it after the imports is in time.
  const script = `
    import { backendCalls, hasNodeCrypto, suiteFor } from ${url("../_crypto/primitives.ts")};
    import { HandshakeState } from ${url("../handshake.ts")};
    const process = globalThis.process;
    const lookUp = process.getBuiltinModule.bind(process);
    process.getBuiltinModule = (id) => id === "node:crypto" ? undefined : lookUp(id);
    const protocolName = "Noise_NN_25519_AESGCM_SHA256";
    const a = await HandshakeState.create({ protocolName, initiator: true });
    const b = await HandshakeState.create({ protocolName, initiator: false });
    await b.readMessage(await a.writeMessage());
    await a.readMessage(await b.writeMessage());
    const [x, y] = [await a.split(), await b.split()];
    const sizes = [];
    for (const size of [64, 65519]) {
      const sealed = await x.send.encryptWithAd(new Uint8Array(0), new Uint8Array(size));
      sizes.push((await y.receive.decryptWithAd(new Uint8Array(0), sealed)).length);
    }
    console.log(JSON.stringify({
      node: hasNodeCrypto(),
      auto: suiteFor("auto").description,
      sizes,
      calls: backendCalls,
    }));
  `;
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", script],
    env: { AESM_CRYPTO: "auto" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
  const report = JSON.parse(new TextDecoder().decode(stdout));
  assert.equal(report.node, false);
  assert.equal(report.auto, "webcrypto for everything");
  assert.deepEqual(report.sizes, [64, 65519]);
  assert.equal(report.calls["node:crypto"], 0);
  assert.ok(report.calls.webcrypto > 0);
});
