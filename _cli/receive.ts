// Copyright 2026 the aesm authors. MIT license.
/**
 * `aesm receive --out DIR`: receives files from `aesm send`, keeping the
 * partial file of a cut transfer so that the next send resumes it. Private to
 * the CLI.
 *
 * @module
 */

import {
  expectPositionals,
  parseArgs,
  type ParsedArgs,
  parsePort,
  toHex,
  UsageError,
} from "./args.ts";
import { CliError } from "./errors.ts";
import { EXIT, help } from "./help.ts";
import { aborted, interrupted, writeAll } from "./io.ts";
import { SERVER_FLAGS, startServer } from "./peer.ts";
import { formatSize, Progress } from "./progress.ts";
import { TRANSFER_APP } from "./send.ts";
import {
  checkName,
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
import type { Connection } from "../connection.ts";
import { ConnectionClosedError } from "../errors.ts";
import type { ServerNetwork } from "../server.ts";

/**
 * How a transfer ended: the file is there and checked; it failed its check
 * (or an error stopped it); it was cut (the partial file kept for a resume);
 * it was refused before it began.
 */
type Outcome = "verified" | "failed" | "cut" | "refused";

/**
 * Runs `aesm receive`.
 *
 * @returns The exit code.
 */
export async function receive(args: readonly string[]): Promise<number> {
  const parsed = parseArgs("receive", args, {
    ...SERVER_FLAGS,
    out: "string",
    port: "string",
    host: "string",
    once: "boolean",
  });
  if (parsed.booleans.has("help")) return help("receive");
  expectPositionals("receive", parsed, []);
  const dir = await outputDir(parsed);
  const target = {
    hostname: parsed.strings.get("host") ?? "127.0.0.1",
    port: parsePort(parsed.strings.get("port") ?? "0", "--port"),
  };
  const interrupt = interrupted();
  try {
    await using server = await startServer(target, parsed, TRANSFER_APP);
    console.error(
      `receiving into ${dir} on ${server.address}, public key ${toHex(server.publicKey)}`,
    );
    const logging = logRefusals(server);
    const serving = serve(server, dir, parsed.booleans.has("once"));
    const outcome = await Promise.race([aborted(interrupt.signal), serving]);
    await server.stop();
    await serving;
    await logging;
    return outcome === "failed" ? EXIT.failure : EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}

async function outputDir(parsed: ParsedArgs): Promise<string> {
  const dir = parsed.strings.get("out");
  if (dir === undefined) {
    throw new UsageError("Cannot start: give --out DIR, the folder files go to");
  }
  const info = await Deno.stat(dir).catch(() => undefined);
  if (!info?.isDirectory) {
    throw new CliError(`Cannot receive into ${dir}: not a folder (mkdir it first)`, EXIT.usage);
  }
  return dir.replace(/\/+$/, "") || "/";
}

/** Serves senders until stopped, or with `once` until a transfer ends checked or failed. */
async function serve(server: ServerNetwork, dir: string, once: boolean): Promise<Outcome> {
  const busy = new Set<string>();
  const transfers = new Set<Promise<void>>();
  const first = Promise.withResolvers<Outcome>();
  const enough = new AbortController();
  try {
    while (!enough.signal.aborted) {
      const connection = await server.accept(enough).catch(() => undefined);
      if (connection === undefined) break; // Stopped, or done with --once.
      const transfer: Promise<void> = receiveOne(connection, dir, busy).then((outcome) => {
        transfers.delete(transfer);
        if (!once || outcome === "cut" || outcome === "refused") return;
        first.resolve(outcome);
        enough.abort();
      });
      transfers.add(transfer);
    }
  } finally {
    await Promise.all(transfers);
  }
  first.resolve("refused"); // When stopped before any transfer ended.
  return await first.promise;
}

/** Receives one file on one connection, and says how it ended on stderr. */
async function receiveOne(
  connection: Connection,
  dir: string,
  busy: Set<string>,
): Promise<Outcome> {
  let name: string | undefined;
  let claimed = false;
  try {
    const offer = control(await nextPacket(connection, "an offer"), "offer");
    name = checkName(offer.name);
    const refusal = await refuse(dir, name, busy);
    if (refusal !== undefined) {
      await connection.send(encode({ type: "refuse", message: refusal }));
      console.error(`${connection.address}: refused ${name}: ${refusal}`);
      return "refused";
    }
    busy.add(name);
    claimed = true;
    return await intoFile(connection, dir, { name, size: offer.size });
  } catch (error) {
    const what = name === undefined ? "a transfer" : name;
    if (error instanceof DroppedError || error instanceof ConnectionClosedError) {
      const why = error instanceof DroppedError ? error.message : "the connection closed";
      const kept = claimed ? " (the partial file is kept: the next send resumes it)" : "";
      console.error(`${connection.address}: ${what} cut: ${why}${kept}`);
      return "cut";
    }
    const message = error instanceof Error ? error.message : String(error);
    console.error(`${connection.address}: ${what} failed: ${message}`);
    await connection.send(encode({ type: "failed", message })).catch(() => {});
    return "failed";
  } finally {
    if (claimed) busy.delete(name!);
    await connection.close();
  }
}

async function refuse(dir: string, name: string, busy: Set<string>): Promise<string | undefined> {
  if (busy.has(name)) return `${name} is being received from another sender`;
  const exists = await Deno.lstat(`${dir}/${name}`).then(() => true, () => false);
  return exists ? `${name} already exists there (files are never overwritten)` : undefined;
}

/** Writes the file as NAME.part, resuming a partial one, and renames it once checked. */
async function intoFile(
  connection: Connection,
  dir: string,
  offer: { name: string; size: number },
): Promise<Outcome> {
  const part = `${dir}/${offer.name}.part`;
  const progress = new Progress(offer.name, offer.size);
  const sha256 = await fill(connection, part, offer.size, progress);
  if (sha256.got !== sha256.expected) {
    await Deno.remove(part);
    throw new TransferError(
      `SHA-256 mismatch (the file changed while it was sent?); removed ${part}`,
    );
  }
  if (await refuse(dir, offer.name, new Set())) {
    throw new TransferError(`${offer.name} appeared meanwhile; kept ${part}`);
  }
  await Deno.rename(part, `${dir}/${offer.name}`);
  await connection.send(encode({ type: "verified" }));
  console.error(
    `${connection.address}: received ${dir}/${offer.name}: ${progress.summary()}, ` +
      `sha256 ${sha256.got} verified`,
  );
  return "verified";
}

/** Fills NAME.part from where the sender starts to the end. */
async function fill(
  connection: Connection,
  part: string,
  size: number,
  progress: Progress,
): Promise<{ expected: string; got: string }> {
  using file = await Deno.open(part, { read: true, write: true, create: true });
  try {
    const hash = await resume(connection, file, size);
    progress.start(await file.seek(0, Deno.SeekMode.Current));
    const expected = await write(connection, file, { from: progress.offset, size }, hash, progress);
    return { expected, got: hash.digest("hex") };
  } finally {
    progress.clear();
  }
}

/**
 * Offers the partial file's bytes, and sets the file where the sender starts.
 *
 * @returns The hash of the bytes kept.
 */
async function resume(connection: Connection, file: Deno.FsFile, size: number): Promise<Hash> {
  const have = (await file.stat()).size;
  const offset = have <= size ? have : 0;
  let hash = await hashPrefix(file, offset);
  await connection.send(encode({ type: "accept", offset, sha256: digestSoFar(hash) }));
  const start = control(await nextPacket(connection, "the start"), "start");
  if (start.offset !== 0 && start.offset !== offset) {
    throw new TransferError(`start.offset must be 0 or ${offset}, got ${start.offset}`);
  }
  if (start.offset === 0) hash = createHash("sha256");
  if (start.offset > 0) {
    console.error(`${connection.address}: resuming after ${formatSize(offset)}`);
  }
  await file.truncate(start.offset);
  await file.seek(start.offset, Deno.SeekMode.Start);
  return hash;
}

/**
 * Writes the bytes that arrive until `done`.
 *
 * @returns The SHA-256 the sender gives.
 */
async function write(
  connection: Connection,
  file: Deno.FsFile,
  range: { from: number; size: number },
  hash: Hash,
  progress: Progress,
): Promise<string> {
  let received = range.from;
  while (true) {
    const packet = await nextPacket(
      connection,
      `the rest (${formatSize(received)} of ${formatSize(range.size)} so far)`,
    );
    if (packet.isText) {
      const done = control(packet, "done");
      if (received !== range.size) {
        throw new TransferError(`done after ${received} of ${range.size} bytes`);
      }
      return done.sha256;
    }
    const bytes = packet.bytes();
    received += bytes.length;
    if (received > range.size) throw new TransferError(`more than the ${range.size} bytes offered`);
    hash.update(bytes);
    await writeAll(file, bytes);
    progress.add(bytes.length);
  }
}

/** Prints connections refused (a wrong psk, a key not allowed) on stderr. */
async function logRefusals(server: ServerNetwork): Promise<void> {
  for await (const record of server.activity) {
    if (record.event === "refused") {
      console.error(`${record.address} refused (${record.reason}): ${record.message}`);
    }
  }
}
