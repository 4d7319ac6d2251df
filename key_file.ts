// Copyright 2026 the aesm authors. MIT license.
/**
 * Key files: a static key pair kept on disk, so that a server keeps its
 * public key across restarts and the clients that pinned it still connect.
 *
 * **The format** (version 1) is UTF-8 JSON, one object:
 *
 * ```json
 * {
 *   "format": "aesm-key-file",
 *   "version": 1,
 *   "publicKey": "<64 lowercase hex digits>",
 *   "privateKey": "<64 lowercase hex digits>"
 * }
 * ```
 *
 * `privateKey` is the raw X25519 scalar, `publicKey` its public key (checked
 * on reading). The file is created with mode 0600 (owner only); on systems
 * with file modes a key file that others may read is refused, as SSH
 * refuses such private keys.
 *
 * @example A key that survives a restart
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadKeyFile } from "@aesm/aesm/key-file";
 *
 * const path = await Deno.makeTempDir() + "/server.key";
 * const first = await loadKeyFile(path); // Made on first start.
 * const again = await loadKeyFile(path); // Loaded after.
 * assert.deepEqual(again.publicKey, first.publicKey);
 * assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

import { generateKeyPair, type KeyPair, keyPairFromPrivateKey } from "./_noise/cipher_state.ts";

/** The `format` field of every key file. */
export const KEY_FILE_FORMAT = "aesm-key-file";

const HEX_KEY = /^[0-9a-f]{64}$/;

/**
 * Writes a key pair to a new key file, readable by its owner only (mode 0600).
 *
 * @param path Where to write it; the file must not exist.
 * @param keyPair The pair to save; a new one is generated when absent.
 * @returns The pair saved.
 * @throws {Deno.errors.AlreadyExists} If a file is already there: a key is never overwritten.
 *
 * @example Writing a new key file
 * ```ts
 * import assert from "node:assert/strict";
 * import { readKeyFile, writeKeyFile } from "@aesm/aesm/key-file";
 *
 * const path = await Deno.makeTempDir() + "/client.key";
 * const written = await writeKeyFile(path);
 * assert.deepEqual((await readKeyFile(path)).privateKey, written.privateKey);
 * await Deno.remove(path);
 * ```
 */
export async function writeKeyFile(path: string | URL, keyPair?: KeyPair): Promise<KeyPair> {
  const pair = keyPair === undefined
    ? await generateKeyPair()
    : await keyPairFromPrivateKey(keyPair.privateKey);
  const text = JSON.stringify(
    {
      format: KEY_FILE_FORMAT,
      version: 1,
      publicKey: toHex(pair.publicKey),
      privateKey: toHex(pair.privateKey),
    },
    null,
    2,
  ) + "\n";
  try {
    await Deno.writeTextFile(path, text, { createNew: true, mode: 0o600 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    throw new Deno.errors.AlreadyExists(
      `Cannot write key file ${path}: a file is already there (keys are never overwritten)`,
      { cause: error },
    );
  }
  return pair;
}

/**
 * Reads a key file.
 *
 * @param path The key file.
 * @returns The key pair in it.
 * @throws {Deno.errors.NotFound} If there is no such file.
 * @throws {Deno.errors.PermissionDenied} If others may read it (its mode allows group or other
 * access): `chmod 600` it.
 * @throws {TypeError} If it is not a key file of this format, or its keys do not match.
 *
 * @example Reading a key file written earlier
 * ```ts
 * import assert from "node:assert/strict";
 * import { readKeyFile, writeKeyFile } from "@aesm/aesm/key-file";
 *
 * const path = await Deno.makeTempDir() + "/peer.key";
 * const { publicKey } = await writeKeyFile(path);
 * assert.deepEqual((await readKeyFile(path)).publicKey, publicKey);
 * await Deno.remove(path);
 * ```
 */
export async function readKeyFile(path: string | URL): Promise<KeyPair> {
  const { mode } = await Deno.stat(path);
  if (mode !== null && (mode & 0o077) !== 0) {
    throw new Deno.errors.PermissionDenied(
      `Cannot use key file ${path}: others may read it (mode ${(mode & 0o777).toString(8)}); ` +
        `run: chmod 600 ${path}`,
    );
  }
  const fields = parse(await Deno.readTextFile(path), path);
  const pair = await keyPairFromPrivateKey(fromHex(fields.privateKey));
  if (toHex(pair.publicKey) !== fields.publicKey) {
    throw new TypeError(
      `Cannot use key file ${path}: its publicKey does not belong to its privateKey`,
    );
  }
  return pair;
}

/**
 * Reads a key file, or makes one (mode 0600) if there is none: what a server
 * wants at start, so that its public key stays the same across restarts.
 *
 * @param path The key file.
 * @returns The key pair in it.
 * @throws {Deno.errors.PermissionDenied} If others may read the existing file.
 * @throws {TypeError} If the existing file is not a key file of this format.
 *
 * @example The same key on every start
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadKeyFile } from "@aesm/aesm/key-file";
 *
 * const path = await Deno.makeTempDir() + "/server.key";
 * assert.deepEqual((await loadKeyFile(path)).publicKey, (await loadKeyFile(path)).publicKey);
 * await Deno.remove(path);
 * ```
 */
export async function loadKeyFile(path: string | URL): Promise<KeyPair> {
  try {
    return await readKeyFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  try {
    return await writeKeyFile(path);
  } catch (error) {
    // Another process made it between our read and write: use theirs.
    if (error instanceof Deno.errors.AlreadyExists) return await readKeyFile(path);
    throw error;
  }
}

function parse(text: string, path: string | URL): { publicKey: string; privateKey: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TypeError(`Cannot use key file ${path}: it is not JSON`, { cause: error });
  }
  const fields = value as Record<string, unknown> | null;
  if (fields?.format !== KEY_FILE_FORMAT || fields.version !== 1) {
    throw new TypeError(
      `Cannot use key file ${path}: expected format "${KEY_FILE_FORMAT}" version 1`,
    );
  }
  for (const name of ["publicKey", "privateKey"]) {
    if (typeof fields[name] !== "string" || !HEX_KEY.test(fields[name] as string)) {
      throw new TypeError(`Cannot use key file ${path}: ${name} must be 64 lowercase hex digits`);
    }
  }
  return fields as { publicKey: string; privateKey: string };
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(hex.match(/../g)!.map((byte) => parseInt(byte, 16)));
}
