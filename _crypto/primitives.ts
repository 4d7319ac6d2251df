// Copyright 2026 the aesm authors. MIT license.
/**
 * The one place that chooses how each Noise function is computed: through
 * WebCrypto (`_crypto/webcrypto.ts`, every runtime and browser, asynchronous) or
 * `node:crypto` (`_crypto/node_crypto.ts`, where the runtime has it, synchronous).
 * Both compute the same functions (X25519, AES-256-GCM, SHA-256, HKDF):
 * the bytes on the wire do not depend on the choice. Private.
 *
 * @module
 */

import { type Bytes, copy, equal } from "./bytes.ts";
import {
  type Backend,
  chain,
  type DhKeyPair,
  type MaybePromise,
  type RawKeyPair,
} from "./backend.ts";
import { type KeyObject, nodeCrypto } from "./node_crypto.ts";
import { webCrypto } from "./webcrypto.ts";

export { type DhKeyPair, DHLEN, HASHLEN, type MaybePromise, TAGLEN } from "./backend.ts";
export { chain } from "./backend.ts";

/** The `crypto` connection option: `"webcrypto"` forces the portable path. */
export type CryptoChoice = "auto" | "webcrypto";
/** A suite by name; `"node"` (everything through `node:crypto`) exists for tests only. */
export type SuiteName = CryptoChoice | "node";

/**
 * The largest AES-GCM input (plaintext to seal, ciphertext with its tag to
 * open) that `"auto"` gives to `node:crypto`; larger ones go to WebCrypto.
 *
 * Measured with `deno bench --filter="aead seal" bench/micro_bench.ts` (Deno
 * 2.9.6, 2-core AMD EPYC, 2026-11-30, load average 8–10 from other work, so
 * p75 rather than means), µs per call:
 *
 * | bytes  | node:crypto | WebCrypto, one at a time | WebCrypto, 4 in flight |
 * | -----: | ----------: | -----------------------: | ---------------------: |
 * |     64 |         7.1 |                     46.4 |                   19.5 |
 * |  1,024 |         9.7 |                     15.0 |                   16.0 |
 * |  4,096 |        27.7 |                     30.1 |                   21.2 |
 * |  8,192 |        58.1 |                     61.3 |                   30.2 |
 * | 16,384 |         119 |                     83.7 |                   48.0 |
 * | 65,519 |         400 |                      171 |                    110 |
 *
 * A WebCrypto call hops to a thread pool and back, however small its input;
 * `node:crypto` runs on the calling thread, about 5 ns/B here against
 * WebCrypto's 1–2. Up to 4 KiB the synchronous call answers sooner than a
 * WebCrypto call (what a round trip waits for) and costs about what a
 * pipelined one does; above, WebCrypto wins on every count. Opening measures
 * the same within noise (`--filter="aead open"`).
 */
export const SYNC_AEAD_MAX = 4096;

/**
 * The Noise functions as one suite picks them. A function returns its
 * result directly when its backend is synchronous.
 */
export interface Suite {
  readonly name: SuiteName;
  /** Which backend computes what, for people (benchmarks, test output). */
  readonly description: string;
  generateDhKeyPair(): MaybePromise<DhKeyPair>;
  /** Imports a raw X25519 scalar; the same array imports once while its bytes stay the same. */
  importDhKeyPair(rawPrivateKey: Uint8Array): MaybePromise<DhKeyPair>;
  generateRawKeyPair(): MaybePromise<RawKeyPair>;
  dh(pair: DhKeyPair, publicKey: Bytes): MaybePromise<Bytes>;
  hash(data: Bytes): MaybePromise<Bytes>;
  hkdf(chainingKey: Bytes, inputKeyMaterial: Bytes, outputs: 2 | 3): MaybePromise<Bytes[]>;
  /** Imports an AES-256 key into the backends; the caller zeroes `raw` afterwards. */
  importAeadKey(raw: Bytes): MaybePromise<AeadKey>;
  seal(key: AeadKey, n: bigint, ad: Bytes, plaintext: Bytes): MaybePromise<Bytes>;
  open(key: AeadKey, n: bigint, ad: Bytes, ciphertext: Bytes): MaybePromise<Bytes>;
}

/** An AES-256-GCM key as a suite holds it: only that suite can use it. */
export interface AeadKey {
  readonly suite: SuiteName;
}

/**
 * The suite for a choice. `"auto"` computes X25519, SHA-256 and HKDF with
 * `node:crypto` and AES-GCM by size (see {@linkcode SYNC_AEAD_MAX}); without
 * `node:crypto` it is WebCrypto. Measured with `deno bench
 * --filter=handshake bench/micro_bench.ts` (same run, p75, µs): X25519 DH
 * 85 against 204, key pair 35 against 109, HKDF 9.7 against 77, SHA-256 of
 * 64 B 12 against 11 (but without an `await`); a whole XX handshake, both
 * sides, 1.5 ms against 2.4 ms, and its CPU per side (printed by the same
 * command) 0.49 ms against 0.98 ms.
 *
 * @throws {TypeError} For `"node"` where the runtime has no `node:crypto`.
 */
export function suiteFor(name: SuiteName): Suite {
  const all = suites ??= makeSuites();
  if (name === "node" && all.node === undefined) {
    throw new TypeError("Cannot use node:crypto: this runtime does not have it");
  }
  return all[name]!;
}

/** Whether this runtime has `node:crypto` (which this loads, if it is there). */
export function hasNodeCrypto(): boolean {
  return nodeCrypto() !== undefined;
}

/**
 * The choice when a connection or a Noise object names none: `"auto"`, or
 * `"webcrypto"` when the environment variable `AESM_CRYPTO` says so (the
 * tests run once each way). Read once, and only where reading it needs no
 * permission prompt.
 */
export const DEFAULT_CHOICE: CryptoChoice = readEnvironment("AESM_CRYPTO") === "webcrypto"
  ? "webcrypto"
  : "auto";

/** The suite of {@linkcode DEFAULT_CHOICE}. */
export function defaultSuite(): Suite {
  return suiteFor(DEFAULT_CHOICE);
}

/** Noise `HASH(data)` with the default suite. */
export async function hash(data: Bytes): Promise<Bytes> {
  return await defaultSuite().hash(data);
}

/** Noise `HKDF(chaining_key, input_key_material, num_outputs)` with the default suite. */
export async function hkdf(
  chainingKey: Bytes,
  inputKeyMaterial: Bytes,
  outputs: 2 | 3,
): Promise<Bytes[]> {
  return await defaultSuite().hkdf(chainingKey, inputKeyMaterial, outputs);
}

function readEnvironment(name: string): string | undefined {
  const runtime = globalThis as {
    Deno?: typeof Deno;
    process?: { env?: Record<string, string | undefined> };
  };
  try {
    if (runtime.Deno !== undefined) {
      const { state } = runtime.Deno.permissions.querySync({ name: "env", variable: name });
      return state === "granted" ? runtime.Deno.env.get(name) : undefined;
    }
    return runtime.process?.env?.[name];
  } catch {
    return undefined;
  }
}

/**
 * Calls made to each backend since this module loaded, for tests and
 * benchmarks to see which backend did the work.
 */
export const backendCalls: Record<"webcrypto" | "node:crypto", number> = {
  webcrypto: 0,
  "node:crypto": 0,
};

// ---- Suites ----

/** The same backend, counting its calls in {@linkcode backendCalls}. */
function counted<K, D>(backend: Backend<K, D>): Backend<K, D> {
  const out = { ...backend };
  for (const [name, fn] of Object.entries(backend)) {
    if (typeof fn !== "function") continue;
    (out as Record<string, unknown>)[name] = (...args: unknown[]) => {
      backendCalls[backend.name]++;
      return fn.apply(backend, args);
    };
  }
  return out;
}

interface Keyed<K> extends AeadKey {
  readonly key: K;
}

/** A suite that computes everything with one backend. */
function wholeSuite<K, D>(name: SuiteName, backend: Backend<K, D>): Suite {
  return {
    name,
    description: `${backend.name} for everything`,
    ...dhFunctions(backend),
    importAeadKey: (raw) =>
      chain(backend.importAeadKey(raw), (key): Keyed<K> => ({ suite: name, key })),
    seal: (key, n, ad, plaintext) => backend.seal((key as Keyed<K>).key, n, ad, plaintext),
    open: (key, n, ad, ciphertext) => backend.open((key as Keyed<K>).key, n, ad, ciphertext),
  };
}

/** `"auto"`: node:crypto, and WebCrypto for AES-GCM above SYNC_AEAD_MAX bytes. */
function mixedSuite(
  node: Backend<KeyObject, KeyObject>,
  web: Backend<CryptoKey, CryptoKey>,
): Suite {
  return {
    name: "auto",
    description: `node:crypto for X25519, SHA-256, HKDF and AES-GCM up to ${SYNC_AEAD_MAX} B; ` +
      "WebCrypto for AES-GCM above",
    ...dhFunctions(node),
    importAeadKey: (raw) => new MixedKey(node.importAeadKey(raw) as KeyObject, web),
    seal: (key, n, ad, plaintext) => {
      const { node: sync, web: webKey } = key as MixedKey;
      if (plaintext.length <= SYNC_AEAD_MAX) return node.seal(sync, n, ad, plaintext);
      return chain(webKey(), (key) => web.seal(key, n, ad, plaintext));
    },
    open: (key, n, ad, ciphertext) => {
      const { node: sync, web: webKey } = key as MixedKey;
      if (ciphertext.length <= SYNC_AEAD_MAX) return node.open(sync, n, ad, ciphertext);
      return chain(webKey(), (key) => web.open(key, n, ad, ciphertext));
    },
  };
}

/**
 * A key in `node:crypto` and, from the first large frame on, in WebCrypto
 * too: made from the `KeyObject` (`toCryptoKey`, no bytes through
 * JavaScript; where a runtime lacks it, exported, imported and zeroed).
 */
class MixedKey implements AeadKey {
  readonly suite = "auto";
  readonly node: KeyObject;
  #backend: Backend<CryptoKey, CryptoKey>;
  #web: MaybePromise<CryptoKey> | undefined;

  constructor(node: KeyObject, backend: Backend<CryptoKey, CryptoKey>) {
    this.node = node;
    this.#backend = backend;
  }

  readonly web = (): MaybePromise<CryptoKey> => this.#web ??= this.#toWeb();

  #toWeb(): MaybePromise<CryptoKey> {
    if (this.node.toCryptoKey !== undefined) {
      return this.node.toCryptoKey("AES-GCM", false, ["encrypt", "decrypt"]);
    }
    const exported = this.node.export();
    const raw = copy(exported);
    exported.fill(0);
    const imported = this.#backend.importAeadKey(raw);
    return Promise.resolve(imported).finally(() => raw.fill(0));
  }
}

type DhFunctions = Pick<
  Suite,
  "generateDhKeyPair" | "importDhKeyPair" | "generateRawKeyPair" | "dh" | "hash" | "hkdf"
>;

function dhFunctions<K, D>(backend: Backend<K, D>): DhFunctions {
  return {
    generateDhKeyPair: () => backend.generateDhKeyPair(),
    importDhKeyPair: cachedImport(backend),
    generateRawKeyPair: () => backend.generateRawKeyPair(),
    dh: (pair, publicKey) => backend.dh(pair.privateKey as D, publicKey),
    hash: (data) => backend.hash(data),
    hkdf: (chainingKey, ikm, outputs) => backend.hkdf(chainingKey, ikm, outputs),
  };
}

// A server imports the same static key for every handshake: keep the
// imported pair with the array it came from, and check the bytes on reuse
// (the caller may have changed them in place).
function cachedImport<K, D>(
  backend: Backend<K, D>,
): (raw: Uint8Array) => MaybePromise<DhKeyPair> {
  const imported = new WeakMap<Uint8Array, { bytes: Bytes; pair: MaybePromise<DhKeyPair<D>> }>();
  return (raw) => {
    const hit = imported.get(raw);
    if (hit !== undefined && equal(hit.bytes, raw)) return hit.pair;
    const pair = backend.importDhKeyPair(raw);
    imported.set(raw, { bytes: copy(raw), pair });
    if (pair instanceof Promise) pair.catch(() => imported.delete(raw));
    return pair;
  };
}

let suites: Record<CryptoChoice, Suite> & { node: Suite | undefined } | undefined;

// Made on first use, which is when node:crypto is looked up.
function makeSuites(): Record<CryptoChoice, Suite> & { node: Suite | undefined } {
  const web = counted(webCrypto);
  const found = nodeCrypto();
  const node = found && counted(found);
  const webcrypto = wholeSuite("webcrypto", web);
  return {
    webcrypto,
    node: node && wholeSuite("node", node),
    auto: node ? mixedSuite(node, web) : { ...webcrypto, name: "auto" },
  };
}
