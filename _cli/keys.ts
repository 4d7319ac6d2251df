// Copyright 2026 the aesm authors. MIT license.
/**
 * `aesm keygen` and `aesm pubkey`: key files in the one documented format
 * (the key-file module's). Private to the CLI.
 *
 * @module
 */

import { expectPositionals, parseArgs, toHex } from "./args.ts";
import { CliError } from "./errors.ts";
import { EXIT, help } from "./help.ts";
import { readKeyFile, writeKeyFile } from "../key_file.ts";

/** Where `aesm keygen` writes when not told. */
const DEFAULT_KEY_FILE = "aesm.key";

/**
 * Runs `aesm keygen [--out FILE]`: writes a new key file (mode 0600, never
 * over an existing file) and prints its public key on stdout.
 *
 * @returns The exit code.
 */
export async function keygen(args: readonly string[]): Promise<number> {
  const parsed = parseArgs("keygen", args, { out: "string" });
  if (parsed.booleans.has("help")) return help("keygen");
  expectPositionals("keygen", parsed, []);
  const path = parsed.strings.get("out") ?? DEFAULT_KEY_FILE;
  let publicKey: Uint8Array;
  try {
    ({ publicKey } = await writeKeyFile(path));
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    throw new CliError(
      `Cannot write key file ${path}: a file is already there (keys are never overwritten); ` +
        "pick another name with --out, or delete it first",
      EXIT.failure,
    );
  }
  console.log(toHex(publicKey));
  console.error(`wrote ${path} (mode 0600); its public key is above`);
  return EXIT.ok;
}

/**
 * Runs `aesm pubkey FILE`: prints a key file's public key.
 *
 * @returns The exit code.
 */
export async function pubkey(args: readonly string[]): Promise<number> {
  const parsed = parseArgs("pubkey", args, {});
  if (parsed.booleans.has("help")) return help("pubkey");
  const [path] = expectPositionals("pubkey", parsed, ["FILE"]);
  const pair = await readKeyFile(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new CliError(
      `Cannot read key file ${path}: there is no such file (make one: aesm keygen --out ${path})`,
      EXIT.failure,
    );
  });
  console.log(toHex(pair.publicKey));
  return EXIT.ok;
}
