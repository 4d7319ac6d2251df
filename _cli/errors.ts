// Copyright 2026 the aesm authors. MIT license.
/**
 * How the CLI turns an error into one line and an exit code. Private to the CLI.
 *
 * @module
 */

import { UsageError } from "./args.ts";
import { EXIT } from "./help.ts";
import { ConnectError, RefusedError, TimeoutError } from "../errors.ts";

/** A failure the CLI explains itself: its message is the line printed, `code` the exit code. */
export class CliError extends Error {
  /** The exit code. */
  readonly code: number;

  /**
   * Creates the error.
   *
   * @param message One line: what failed and what to do.
   * @param code The exit code.
   * @param options The underlying error.
   */
  constructor(message: string, code: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "CliError";
    this.code = code;
  }
}

/** What an error means for the user: one line, and the exit code. */
export function explain(error: unknown): { message: string; code: number } {
  if (error instanceof CliError) return { message: error.message, code: error.code };
  if (error instanceof UsageError) return { message: error.message, code: EXIT.usage };
  if (error instanceof RefusedError) return { message: error.message, code: EXIT.refused };
  if (error instanceof DOMException && error.name === "AbortError") {
    return { message: "Interrupted", code: EXIT.interrupted };
  }
  if (error instanceof ConnectError || error instanceof TimeoutError) {
    return { message: error.message, code: EXIT.unreachable };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { message: message.split("\n")[0], code: EXIT.failure };
}

const HINTS: Partial<Record<string, string>> = {
  "psk-mismatch": "the pre-shared keys differ: give both sides the same --psk-file",
  "key-rejected": "the server's public key is not the pinned one (--pin): check the key, " +
    "or pin the new one if the server's key changed on purpose",
  unauthorized: "the server does not allow this client's key: give the server " +
    "--allow $(aesm pubkey YOUR.key) and connect with --key YOUR.key",
  "application-mismatch": "the server runs another application: use its --app name",
  "protocol-mismatch": "one side has a --psk-file and the other not: give both the same",
  "server-full": "the server has too many connections: try again later",
};

/**
 * Explains why connecting to `address` failed, naming the option to change.
 *
 * @returns The error to throw: a `CliError` with a one-line message.
 */
export function connectFailure(error: unknown, address: string): unknown {
  if (error instanceof RefusedError) {
    const hint = HINTS[error.reason] ?? `refused (${error.reason}): ${error.message}`;
    return new CliError(`Cannot connect to ${address}: ${hint}`, EXIT.refused, { cause: error });
  }
  if (error instanceof TimeoutError) {
    return new CliError(
      `Cannot connect to ${address}: no handshake within 10 s (is an aesm server listening ` +
        "there, reachable, and not busy?)",
      EXIT.unreachable,
      { cause: error },
    );
  }
  return error;
}
