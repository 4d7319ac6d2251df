// Copyright 2026 the aesm authors. MIT license.
/**
 * The known-hosts file of `--tofu` (trust on first use, as SSH does): one
 * line per server, `host:port hexkey`; `#` starts a comment. Private to the CLI.
 *
 * @module
 */

import { EXIT } from "./help.ts";
import { CliError } from "./errors.ts";

/** A server's key as the known-hosts file records it. */
export interface KnownHost {
  /** Its public key, lowercase hex. */
  readonly key: string;
  /** The line that records it, from 1. */
  readonly line: number;
}

/**
 * Where the known-hosts file is: `$AESM_KNOWN_HOSTS`, else
 * `$XDG_CONFIG_HOME/aesm/known_hosts`, else `~/.config/aesm/known_hosts`.
 *
 * @throws {CliError} If none of these variables is set.
 */
export function knownHostsPath(): string {
  const explicit = Deno.env.get("AESM_KNOWN_HOSTS");
  if (explicit) return explicit;
  const config = Deno.env.get("XDG_CONFIG_HOME") ??
    ((Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE")) &&
      `${Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE")}/.config`);
  if (!config) {
    throw new CliError(
      "Cannot use --tofu: no home directory; set AESM_KNOWN_HOSTS to a file path",
      EXIT.usage,
    );
  }
  return `${config}/aesm/known_hosts`;
}

/**
 * The key recorded for `address`, if any.
 *
 * @throws {CliError} If a line is malformed (naming the file and line).
 */
export async function lookUp(path: string, address: string): Promise<KnownHost | undefined> {
  const lines = await readLines(path);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const [host, key, ...rest] = line.split(/\s+/);
    if (key === undefined || rest.length > 0 || !/^[0-9a-f]{64}$/i.test(key)) {
      throw new CliError(
        `Cannot read ${path}:${i + 1}: expected "host:port key" (64 hex digits); ` +
          "fix or delete that line",
        EXIT.failure,
      );
    }
    if (host === address) return { key: key.toLowerCase(), line: i + 1 };
  }
  return undefined;
}

/**
 * Records a key for `address` at the end of the file (made, with its
 * folder, if missing).
 *
 * @returns The line that records it.
 */
export async function remember(path: string, address: string, key: string): Promise<number> {
  const lines = await readLines(path);
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  // A file that ends without a newline gets one first; `lines` ends with "" when it has one.
  const ended = lines.length === 0 || lines[lines.length - 1] === "";
  const used = ended ? Math.max(lines.length - 1, 0) : lines.length;
  await Deno.writeTextFile(path, `${ended ? "" : "\n"}${address} ${key}\n`, {
    append: true,
    mode: 0o644,
  });
  return used + 1;
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(path)).split("\n");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}
