// Copyright 2026 the aesm authors. MIT license.
/**
 * `aesm send FILE HOST:PORT`: sends a file to `aesm receive`, resuming after
 * a drop. Private to the CLI.
 *
 * @module
 */

import {
  expectPositionals,
  formatTarget,
  optionalNumber,
  parseArgs,
  type ParsedArgs,
  parseTarget,
  type Target,
} from "./args.ts";
import { CliError } from "./errors.ts";
import { EXIT, help } from "./help.ts";
import { delay, interrupted } from "./io.ts";
import { CLIENT_FLAGS, connectClient } from "./peer.ts";
import { formatSize, Progress } from "./progress.ts";
import {
  CHUNK,
  type Control,
  control,
  createHash,
  digestSoFar,
  DroppedError,
  encode,
  type Hash,
  hashPrefix,
  nextPacket,
  TransferError,
} from "./transfer_wire.ts";
import type { ClientNetwork } from "../client.ts";
import { ConnectError, ConnectionClosedError } from "../errors.ts";

/** The application name send and receive use unless `--app` names another. */
export const TRANSFER_APP = "aesm-file";
const DEFAULT_RETRIES = 3;

/**
 * Runs `aesm send`.
 *
 * @returns The exit code.
 */
export async function send(args: readonly string[]): Promise<number> {
  const parsed = parseArgs("send", args, { ...CLIENT_FLAGS, retries: "string" });
  if (parsed.booleans.has("help")) return help("send");
  const [path, where] = expectPositionals("send", parsed, ["FILE", "HOST:PORT"]);
  const target = parseTarget(where, "address");
  const retries = optionalNumber(parsed, "retries", 0, { integer: true }) ?? DEFAULT_RETRIES;
  const size = await fileSize(path);
  const name = path.split(/[\\/]/).pop()!;
  const interrupt = interrupted();
  try {
    for (let attempt = 0;; attempt++) {
      const progress = new Progress(name, size);
      try {
        const sha256 = await sendOnce(path, { name, size }, target, parsed, {
          progress,
          signal: interrupt.signal,
        });
        progress.clear();
        console.error(`sent ${name}: ${progress.summary()}, sha256 ${sha256} verified`);
        return EXIT.ok;
      } catch (error) {
        progress.clear();
        const action = `Cannot send ${path} to ${formatTarget(target)}`;
        const why = describeDrop(error, progress);
        const retry = resumable(error, attempt > 0) && attempt < retries;
        if (!retry) throw failure(error, action, why, attempt > 0);
        console.error(`${why}; resuming in 1 s (retry ${attempt + 1} of ${retries})`);
        await delay(1, interrupt.signal);
        const reason = interrupt.signal.reason;
        if (interrupt.signal.aborted) throw failure(reason, action, describeDrop(reason, progress));
      }
    }
  } finally {
    interrupt.dispose();
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new CliError(`Cannot send ${path}: it is not a file`, EXIT.usage);
    return info.size;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new CliError(`Cannot send ${path}: there is no such file`, EXIT.usage);
  }
}

/** Whether a failed attempt may be retried: a drop, or (on a retry) a receiver still away. */
function resumable(error: unknown, retrying: boolean): boolean {
  return error instanceof DroppedError || error instanceof ConnectionClosedError ||
    (retrying && error instanceof ConnectError);
}

/** What cut the transfer, and after how many bytes. */
function describeDrop(error: unknown, progress: Progress): string {
  const done = progress.offset + progress.moved;
  const where = `after ${formatSize(done)} of ${formatSize(progress.total)}`;
  if (error instanceof ConnectionClosedError) {
    return `the connection dropped ${where} (${error.reason})`;
  }
  if (isInterruption(error)) return `interrupted ${where}`;
  if (error instanceof DroppedError) return `${error.message} (${where})`;
  return error instanceof Error ? error.message : String(error);
}

function isInterruption(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

/** The error to end with; `retried` when an earlier attempt had reached the receiver. */
function failure(error: unknown, action: string, why: string, retried = false): unknown {
  if (error instanceof TransferError) {
    return new CliError(`${action}: ${error.message}`, EXIT.failure, { cause: error });
  }
  const resume = "run the same command again to resume (the receiver keeps the partial file)";
  if (error instanceof DroppedError || error instanceof ConnectionClosedError) {
    return new CliError(`${action}: ${why}; ${resume}`, EXIT.failure, { cause: error });
  }
  if (isInterruption(error)) {
    return new CliError(`${action}: ${why}; ${resume}`, EXIT.interrupted, { cause: error });
  }
  if (error instanceof ConnectError && retried) {
    return new CliError(
      `${why}; once the receiver is back, run the same command again to resume`,
      EXIT.unreachable,
      { cause: error },
    );
  }
  return error;
}

/** One attempt: connect, agree where to start, stream, check. */
async function sendOnce(
  path: string,
  offer: { name: string; size: number },
  target: Target,
  parsed: ParsedArgs,
  { progress, signal }: { progress: Progress; signal: AbortSignal },
): Promise<string> {
  const client = await connectClient(target, parsed, TRANSFER_APP, { signal });
  using file = await Deno.open(path);
  try {
    await client.send(encode({ type: "offer", ...offer }));
    const reply = await answer(client, "the receiver's answer", "accept", "refuse");
    if (reply.type === "refuse") throw new TransferError(`the receiver refused: ${reply.message}`);
    const { offset, hash } = await agree(file, reply, offer.size);
    if (offset > 0) console.error(`resuming ${offer.name} after ${formatSize(offset)}`);
    await client.send(encode({ type: "start", offset }));
    progress.start(offset);
    await stream(client, file, { from: offset, size: offer.size }, hash, { progress, signal });
    const sha256 = hash.digest("hex");
    await client.send(encode({ type: "done", sha256 }));
    await answer(client, "the receiver's check", "verified");
    return sha256;
  } catch (error) {
    // A receiver that failed (a full disk, say) said why before it closed.
    if (!(error instanceof ConnectionClosedError)) throw error;
    const last = client.retrieved.getData();
    throw last === undefined ? error : failed(control(last, "failed"));
  } finally {
    await client.close();
  }
}

/**
 * Waits for the receiver's next control message, of one of the types `expected`.
 *
 * @throws {TransferError} If the receiver reports that it failed, or sends anything else.
 */
async function answer<T extends "accept" | "refuse" | "verified">(
  client: ClientNetwork,
  waitingFor: string,
  ...expected: T[]
): Promise<Extract<Control, { type: T }>> {
  const types: Control["type"][] = [...expected, "failed"];
  const message: Control = control(await nextPacket(client, waitingFor), ...types);
  if (message.type === "failed") throw failed(message);
  return message as Extract<Control, { type: T }>;
}

function failed(message: { message: string }): TransferError {
  return new TransferError(`the receiver failed: ${message.message}`);
}

/** Where to start: after the receiver's partial file if this file starts the same. */
async function agree(
  file: Deno.FsFile,
  reply: { offset: number; sha256: string },
  size: number,
): Promise<{ offset: number; hash: Hash }> {
  if (reply.offset > 0 && reply.offset <= size) {
    const hash = await hashPrefix(file, reply.offset);
    if (digestSoFar(hash) === reply.sha256) return { offset: reply.offset, hash };
    console.error("the receiver's partial file differs from this one: sending it whole");
    await file.seek(0, Deno.SeekMode.Start);
  }
  return { offset: 0, hash: createHash("sha256") };
}

/** Sends the file's bytes from `from` to `size`, hashing them, one awaited message at a time. */
async function stream(
  client: ClientNetwork,
  file: Deno.FsFile,
  range: { from: number; size: number },
  hash: Hash,
  { progress, signal }: { progress: Progress; signal: AbortSignal },
): Promise<void> {
  const buffer = new Uint8Array(CHUNK);
  for (let sent = range.from; sent < range.size;) {
    signal.throwIfAborted(); // Ctrl-C: stop between messages, close cleanly, resume later.
    let filled = 0;
    const want = Math.min(CHUNK, range.size - sent);
    while (filled < want) {
      const n = await file.read(buffer.subarray(filled, want));
      if (n === null) throw new TransferError(`the file shrank to ${sent + filled} bytes`);
      filled += n;
    }
    const chunk = buffer.subarray(0, filled);
    hash.update(chunk);
    await client.send(chunk); // Copied before it resolves: the buffer is free again.
    sent += filled;
    progress.add(filled);
  }
}
