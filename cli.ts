// Copyright 2026 the aesm authors. MIT license.
/**
 * The `aesm` command-line tool: key files, an encrypted netcat, and file
 * transfer.
 *
 * ```sh
 * deno run -A jsr:@aesm/aesm/cli <command> [options]    # or, in a clone: deno task cli <command>
 * ```
 *
 * | command                     | what it does                                                  |
 * | --------------------------- | ------------------------------------------------------------- |
 * | `keygen [--out FILE]`       | makes a key file (mode 0600) and prints its public key        |
 * | `pubkey FILE`               | prints a key file's public key                                |
 * | `listen [HOST:]PORT`        | a server: messages to stdout, stdin lines to every client     |
 * | `connect HOST:PORT`         | a client: stdin lines to messages, messages to stdout         |
 * | `send FILE HOST:PORT`       | sends a file, checked with SHA-256, resumed after a drop      |
 * | `receive --out DIR`         | receives files into DIR                                       |
 *
 * `aesm <command> --help` gives each command's options. Exit codes: 0 done,
 * 1 failed (a dropped connection, an I/O error, a failed file check), 2 a
 * wrong command line, 3 refused (authentication), 4 unreachable, 130
 * interrupted (Ctrl-C while connecting or sending a file, or a second Ctrl-C).
 * Errors are one line on stderr that says what to do.
 *
 * @example A key file, and its public key read back
 * ```ts
 * import assert from "node:assert/strict";
 * import { main } from "@aesm/aesm/cli";
 * import { readKeyFile } from "@aesm/aesm/key-file";
 *
 * const path = await Deno.makeTempDir() + "/server.key";
 * assert.equal(await main(["keygen", "--out", path]), 0); // Prints the public key.
 * assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
 * assert.equal((await readKeyFile(path)).publicKey.length, 32);
 * assert.equal(await main(["keygen", "--out", path]), 1); // Never overwrites a key.
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

import { UsageError } from "./_cli/args.ts";
import { explain } from "./_cli/errors.ts";
import { EXIT, help } from "./_cli/help.ts";
import { keygen, pubkey } from "./_cli/keys.ts";
import { connect, listen } from "./_cli/netcat.ts";
import { receive } from "./_cli/receive.ts";
import { send } from "./_cli/send.ts";

const COMMANDS: Readonly<Record<string, (args: readonly string[]) => Promise<number>>> = {
  keygen,
  pubkey,
  listen,
  connect,
  send,
  receive,
};

/**
 * Runs one command of the `aesm` tool, as the command line gives it. Errors
 * are printed (one line on stderr), not thrown.
 *
 * @param args The command and its arguments, as in `Deno.args`.
 * @returns The exit code: 0 done, 1 failed, 2 a wrong command line, 3 refused, 4 unreachable.
 *
 * @example Asking for help
 * ```ts
 * import assert from "node:assert/strict";
 * import { main } from "@aesm/aesm/cli";
 *
 * assert.equal(await main(["pubkey", "--help"]), 0); // Prints the usage of aesm pubkey.
 * assert.equal(await main(["no-such-command"]), 2); // Prints an error line.
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (command === undefined || command === "help" || command === "--help" || command === "-h") {
      return help(rest[0] !== undefined && rest[0] in COMMANDS ? rest[0] : "");
    }
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (run === undefined) {
      throw new UsageError(
        `Cannot run "${command}": not an aesm command (see aesm --help: keygen, pubkey, ` +
          "listen, connect, send, receive)",
      );
    }
    return await run(rest);
  } catch (error) {
    const { message, code } = explain(error);
    console.error(`aesm${command && command in COMMANDS ? ` ${command}` : ""}: ${message}`);
    return code === EXIT.ok ? EXIT.failure : code;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
