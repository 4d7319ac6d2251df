// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import {
  CipherState,
  DecryptionError,
  generateKeyPair,
  keyPairFromPrivateKey,
  MAX_NONCE,
} from "../cipher.ts";

type Bytes = Uint8Array<ArrayBuffer>;

const PKCS8_X25519_PREFIX = hex("302e020100300506032b656e04220420");
const RFC7748 = {
  alicePrivate: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
  alicePublic: hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
  bobPrivate: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
  bobPublic: hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
  shared: hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
};

function hex(text: string): Bytes {
  return new Uint8Array(text.match(/../g)!.map((pair) => parseInt(pair, 16)));
}

function encode(text: string): Bytes {
  return new Uint8Array(new TextEncoder().encode(text));
}

function randomKey(): Bytes {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** The AESGCM nonce of the Noise spec, built byte by byte: 4 zeros, then `n` big-endian. */
function iv(n: bigint): Bytes {
  const bytes = new Uint8Array(12);
  for (let i = 11; i >= 4; i--, n >>= 8n) bytes[i] = Number(n & 0xffn);
  return bytes;
}

/** AES-256-GCM straight from WebCrypto, as the reference for `CipherState`. */
async function referenceSeal(rawKey: Bytes, n: bigint, ad: Bytes, plaintext: Bytes) {
  const key = await crypto.subtle.importKey("raw", rawKey, "AES-GCM", false, ["encrypt"]);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: iv(n), additionalData: ad },
    key,
    plaintext,
  );
  return new Uint8Array(sealed);
}

async function x25519(privateKey: Bytes, publicKey: Bytes): Promise<Bytes> {
  const pkcs8 = new Uint8Array([...PKCS8_X25519_PREFIX, ...privateKey]);
  const own = await crypto.subtle.importKey("pkcs8", pkcs8, "X25519", false, ["deriveBits"]);
  const peer = await crypto.subtle.importKey("raw", publicKey, "X25519", true, []);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: peer }, own, 256));
}

function flipped(bytes: Bytes, index: number): Bytes {
  const copy = new Uint8Array(bytes);
  copy[index] ^= 0x01;
  return copy;
}

async function pair(key = randomKey()): Promise<[CipherState, CipherState]> {
  return [await CipherState.create(key), await CipherState.create(key)];
}

Deno.test("CipherState.decryptWithAd() recovers what encryptWithAd() sealed with the same associated data", async () => {
  const [send, receive] = await pair();
  const ad = encode("header");
  const plaintext = encode("attack at dawn");
  const sealed = await send.encryptWithAd(ad, plaintext);
  assert.equal(sealed.length, plaintext.length + 16);
  assert.notDeepEqual(sealed.subarray(0, plaintext.length), plaintext);
  assert.deepEqual(await receive.decryptWithAd(ad, sealed), plaintext);
});

Deno.test("CipherState.encryptWithAd() uses 4 zero bytes and the 64-bit big-endian counter as nonce", async () => {
  const key = randomKey();
  const cipher = await CipherState.create(key);
  const ad = encode("ad");
  const plaintext = encode("payload");
  for (const n of [0n, 1n, 0x0102_0304_0506_0708n, MAX_NONCE - 1n]) {
    cipher.setNonce(n);
    const sealed = await cipher.encryptWithAd(ad, plaintext);
    assert.deepEqual(sealed, await referenceSeal(key, n, ad, plaintext), `nonce ${n}`);
  }
});

Deno.test("CipherState moves its nonce by one per successful call", async () => {
  const [send, receive] = await pair();
  const ad = new Uint8Array(0);
  assert.equal(send.nonce, 0n);
  for (let i = 1n; i <= 3n; i++) {
    const sealed = await send.encryptWithAd(ad, encode(`message ${i}`));
    assert.equal(send.nonce, i);
    await receive.decryptWithAd(ad, sealed);
    assert.equal(receive.nonce, i);
  }
});

async function assertRejectedWithoutMovingNonce(
  tamper: (ad: Bytes, sealed: Bytes) => [Bytes, Bytes],
): Promise<void> {
  const [send, receive] = await pair();
  const ad = encode("header");
  const plaintext = encode("hello");
  const sealed = await send.encryptWithAd(ad, plaintext);
  await assert.rejects(receive.decryptWithAd(...tamper(ad, sealed)), (error: unknown) => {
    assert.ok(error instanceof DecryptionError);
    assert.equal(error.name, "DecryptionError");
    assert.ok(error.cause !== undefined, "the WebCrypto error is the cause");
    return true;
  });
  assert.equal(receive.nonce, 0n);
  assert.deepEqual(await receive.decryptWithAd(ad, sealed), plaintext);
  assert.equal(receive.nonce, 1n);
}

Deno.test("CipherState.decryptWithAd() rejects a tampered tag and keeps its nonce", async () => {
  await assertRejectedWithoutMovingNonce((ad, sealed) => [ad, flipped(sealed, sealed.length - 1)]);
});

Deno.test("CipherState.decryptWithAd() rejects a tampered ciphertext and keeps its nonce", async () => {
  await assertRejectedWithoutMovingNonce((ad, sealed) => [ad, flipped(sealed, 0)]);
});

Deno.test("CipherState.decryptWithAd() rejects wrong associated data and keeps its nonce", async () => {
  await assertRejectedWithoutMovingNonce((ad, sealed) => [flipped(ad, 2), sealed]);
});

Deno.test("CipherState.decryptWithAd() rejects a ciphertext shorter than a tag and keeps its nonce", async () => {
  await assertRejectedWithoutMovingNonce((ad, sealed) => [ad, sealed.slice(0, 15)]);
});

Deno.test("CipherState.encryptWithAd() gives overlapping calls consecutive nonces in call order", async () => {
  const key = randomKey();
  const cipher = await CipherState.create(key);
  const ad = encode("ad");
  const plaintexts = Array.from({ length: 8 }, (_, i) => encode(`message ${i}`.repeat(i + 1)));
  const sealed = await Promise.all(
    plaintexts.map((plaintext) => cipher.encryptWithAd(ad, plaintext)),
  );
  assert.equal(cipher.nonce, 8n);
  for (const [i, plaintext] of plaintexts.entries()) {
    assert.deepEqual(sealed[i], await referenceSeal(key, BigInt(i), ad, plaintext), `call ${i}`);
  }
});

Deno.test("CipherState.encryptWithAd() allows nonce 2^64 - 2, then rejects with RangeError", async () => {
  const [send, receive] = await pair();
  const ad = new Uint8Array(0);
  send.setNonce(MAX_NONCE - 1n);
  receive.setNonce(MAX_NONCE - 1n);
  const sealed = await send.encryptWithAd(ad, encode("last"));
  assert.deepEqual(await receive.decryptWithAd(ad, sealed), encode("last"));
  assert.equal(send.nonce, MAX_NONCE);
  await assert.rejects(send.encryptWithAd(ad, encode("one too many")), RangeError);
  await assert.rejects(receive.decryptWithAd(ad, sealed), RangeError);
  assert.equal(send.nonce, MAX_NONCE);
  assert.equal(receive.nonce, MAX_NONCE);
});

Deno.test("CipherState.setNonce() throws RangeError outside 0 to 2^64 - 1", async () => {
  const cipher = await CipherState.create(randomKey());
  assert.throws(() => cipher.setNonce(-1n), RangeError);
  assert.throws(() => cipher.setNonce(MAX_NONCE + 1n), RangeError);
  assert.equal(cipher.nonce, 0n);
  cipher.setNonce(MAX_NONCE);
  assert.equal(cipher.nonce, MAX_NONCE);
});

Deno.test("CipherState.rekey() takes the first 32 bytes of sealing 32 zero bytes under nonce 2^64 - 1", async () => {
  const key = randomKey();
  const cipher = await CipherState.create(key);
  cipher.setNonce(5n);
  await cipher.rekey();
  assert.equal(cipher.nonce, 5n);
  const block = await referenceSeal(key, MAX_NONCE, new Uint8Array(0), new Uint8Array(32));
  const nextKey = block.slice(0, 32);
  const ad = encode("ad");
  const plaintext = encode("after rekey");
  const sealed = await cipher.encryptWithAd(ad, plaintext);
  assert.deepEqual(sealed, await referenceSeal(nextKey, 5n, ad, plaintext));
});

Deno.test("CipherState.rekey() on both sides keeps them talking and locks out the old key", async () => {
  const key = randomKey();
  const [send, receive] = await pair(key);
  const stale = await CipherState.create(key);
  const ad = new Uint8Array(0);
  await receive.decryptWithAd(ad, await send.encryptWithAd(ad, encode("before")));
  stale.setNonce(1n);
  await send.rekey();
  await receive.rekey();
  const sealed = await send.encryptWithAd(ad, encode("after"));
  await assert.rejects(stale.decryptWithAd(ad, sealed), DecryptionError);
  assert.deepEqual(await receive.decryptWithAd(ad, sealed), encode("after"));
});

Deno.test("CipherState.rekey() rejects with TypeError without a key", async () => {
  const cipher = await CipherState.create();
  await assert.rejects(cipher.rekey(), TypeError);
});

Deno.test("CipherState without a key passes plaintext through as a copy", async () => {
  const cipher = await CipherState.create();
  assert.equal(cipher.hasKey(), false);
  const bytes = encode("in the clear");
  const encrypted = await cipher.encryptWithAd(encode("ad"), bytes);
  const decrypted = await cipher.decryptWithAd(encode("ad"), bytes);
  assert.deepEqual(encrypted, bytes);
  assert.deepEqual(decrypted, bytes);
  assert.notEqual(encrypted, bytes);
  assert.notEqual(decrypted, bytes);
});

Deno.test("CipherState.initializeKey() sets a key and resets the nonce to 0", async () => {
  const key = randomKey();
  const cipher = await CipherState.create();
  cipher.setNonce(9n);
  await cipher.initializeKey(key);
  assert.equal(cipher.hasKey(), true);
  assert.equal(cipher.nonce, 0n);
  const sealed = await cipher.encryptWithAd(new Uint8Array(0), encode("x"));
  assert.deepEqual(sealed, await referenceSeal(key, 0n, new Uint8Array(0), encode("x")));
});

Deno.test("CipherState rejects a key that is not 32 bytes with RangeError", async () => {
  for (const length of [0, 16, 31, 33]) {
    await assert.rejects(CipherState.create(new Uint8Array(length)), RangeError, `${length}`);
    const cipher = await CipherState.create();
    await assert.rejects(cipher.initializeKey(new Uint8Array(length)), RangeError, `${length}`);
    assert.equal(cipher.hasKey(), false);
  }
});

Deno.test("CipherState rejects arguments that are not a Uint8Array with TypeError", async () => {
  const cipher = await CipherState.create(randomKey());
  const notBytes = [1, 2, 3] as unknown as Uint8Array;
  const buffer = new ArrayBuffer(32) as unknown as Uint8Array;
  await assert.rejects(CipherState.create(buffer), TypeError);
  await assert.rejects(cipher.encryptWithAd(notBytes, new Uint8Array(1)), TypeError);
  await assert.rejects(cipher.encryptWithAd(new Uint8Array(0), notBytes), TypeError);
  await assert.rejects(cipher.decryptWithAd(notBytes, new Uint8Array(16)), TypeError);
  await assert.rejects(cipher.decryptWithAd(new Uint8Array(0), notBytes), TypeError);
  await assert.rejects(keyPairFromPrivateKey(notBytes), TypeError);
  assert.equal(cipher.nonce, 0n);
});

Deno.test("generateKeyPair() returns 32-byte keys that keyPairFromPrivateKey() reproduces", async () => {
  const generated = await generateKeyPair();
  assert.equal(generated.publicKey.length, 32);
  assert.equal(generated.privateKey.length, 32);
  const loaded = await keyPairFromPrivateKey(generated.privateKey);
  assert.deepEqual(loaded.publicKey, generated.publicKey);
  assert.deepEqual(loaded.privateKey, generated.privateKey);
  assert.notDeepEqual((await generateKeyPair()).privateKey, generated.privateKey);
});

Deno.test("keyPairFromPrivateKey() derives the RFC 7748 public keys", async () => {
  assert.deepEqual(
    (await keyPairFromPrivateKey(RFC7748.alicePrivate)).publicKey,
    RFC7748.alicePublic,
  );
  assert.deepEqual((await keyPairFromPrivateKey(RFC7748.bobPrivate)).publicKey, RFC7748.bobPublic);
});

Deno.test("keyPairFromPrivateKey() rejects a key that is not 32 bytes with RangeError", async () => {
  await assert.rejects(keyPairFromPrivateKey(new Uint8Array(31)), RangeError);
  await assert.rejects(keyPairFromPrivateKey(new Uint8Array(33)), RangeError);
});

Deno.test("Two parties with generated key pairs derive the same X25519 shared secret", async () => {
  const alice = await generateKeyPair();
  const bob = await generateKeyPair();
  const fromAlice = await x25519(alice.privateKey, bob.publicKey);
  const fromBob = await x25519(bob.privateKey, alice.publicKey);
  assert.deepEqual(fromAlice, fromBob);
  assert.notDeepEqual(fromAlice, new Uint8Array(32));
  assert.deepEqual(
    await x25519(RFC7748.alicePrivate, RFC7748.bobPublic),
    RFC7748.shared,
    "the reference X25519 helper itself matches RFC 7748",
  );
});

Deno.test("CipherState.decryptWithAd() gives back every nonce when overlapping calls all fail", async () => {
  for (let round = 0; round < 20; round++) {
    const [sender, receiver] = await pair();
    const ad = new Uint8Array(0);
    const results = await Promise.allSettled([
      receiver.decryptWithAd(ad, new Uint8Array(20)),
      receiver.decryptWithAd(ad, new Uint8Array(20)),
      receiver.decryptWithAd(ad, new Uint8Array(20)),
    ]);
    assert.ok(results.every((result) => result.status === "rejected"));
    assert.equal(receiver.nonce, 0n);
    const sealed = await sender.encryptWithAd(ad, encode("still in step"));
    assert.deepEqual(await receiver.decryptWithAd(ad, sealed), encode("still in step"));
  }
});

Deno.test("CipherState.decryptWithAd() keeps the nonces of overlapping calls that succeeded", async () => {
  const [sender, receiver] = await pair();
  const ad = new Uint8Array(0);
  const first = await sender.encryptWithAd(ad, encode("first"));
  const results = await Promise.allSettled([
    receiver.decryptWithAd(ad, first),
    receiver.decryptWithAd(ad, new Uint8Array(20)),
  ]);
  assert.equal(results[0].status, "fulfilled");
  assert.equal(results[1].status, "rejected");
  assert.equal(receiver.nonce, 1n);
});
