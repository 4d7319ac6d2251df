// Copyright 2026 the aesm authors. MIT license.
/**
 * The file transfer's messages, on one aesm connection. Control messages are
 * JSON text; the file's bytes are binary messages of up to 1 MiB.
 *
 * ```
 * sender                                  receiver
 * {"type":"offer","name","size"}  ->
 *                                 <-  {"type":"accept","offset","sha256"}   (or "refuse", "message")
 * {"type":"start","offset"}       ->      offset: the receiver's if its sha256 matched, else 0
 * bytes from offset to size       ->
 * {"type":"done","sha256"}        ->
 *                                 <-  {"type":"verified"}   (or "failed", "message")
 * ```
 *
 * `accept` offers the bytes of a partial file (`NAME.part`) kept from an
 * earlier, cut transfer, with the SHA-256 of those bytes: the sender resumes
 * after them if its own file starts the same. `sha256` in `done` is the whole
 * file's. Private to the CLI.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import type { Packet } from "../queue.ts";

/** The bytes of the file in one message. */
export const CHUNK = 1024 * 1024;
/** How long either side waits for the other's next message. */
export const IDLE_MS = 60_000;

/** A control message. */
export type Control =
  | { type: "offer"; name: string; size: number }
  | { type: "accept"; offset: number; sha256: string }
  | { type: "refuse"; message: string }
  | { type: "start"; offset: number }
  | { type: "done"; sha256: string }
  | { type: "verified" }
  | { type: "failed"; message: string };

/** The connection ended, or went silent, before the transfer did: it can be resumed. */
export class DroppedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was cut.
   */
  constructor(message: string) {
    super(message);
    this.name = "DroppedError";
  }
}

/** The peer sent what the transfer does not allow. */
export class TransferError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "TransferError";
  }
}

/** Something packets can be received from: a client or a connection. */
export interface Receiver {
  receive(options?: { signal?: AbortSignal }): Promise<Packet | undefined>;
}

/**
 * Takes the next packet, waiting at most `IDLE_MS`.
 *
 * @throws {DroppedError} If the connection ends or stays silent that long.
 */
export async function nextPacket(from: Receiver, waitingFor: string): Promise<Packet> {
  let packet: Packet | undefined;
  try {
    packet = await from.receive({ signal: AbortSignal.timeout(IDLE_MS) });
  } catch (error) {
    if ((error as Error).name !== "TimeoutError") throw error;
    throw new DroppedError(`nothing came for ${IDLE_MS / 1000} s while waiting for ${waitingFor}`);
  }
  if (packet === undefined) throw new DroppedError(`the connection ended before ${waitingFor}`);
  return packet;
}

/** The fields of each control message, and their kinds. */
const FIELDS: Readonly<Record<Control["type"], Readonly<Record<string, "string" | "count">>>> = {
  offer: { name: "string", size: "count" },
  accept: { offset: "count", sha256: "string" },
  refuse: { message: "string" },
  start: { offset: "count" },
  done: { sha256: "string" },
  verified: {},
  failed: { message: "string" },
};

/**
 * Reads a control message of one of the types `expected`.
 *
 * @throws {TransferError} If it is anything else, or a field is missing or of the wrong kind.
 */
export function control<T extends Control["type"]>(
  packet: Packet,
  ...expected: T[]
): Extract<Control, { type: T }> {
  let message: Record<string, unknown> | undefined;
  try {
    message = packet.isText ? packet.json() : undefined;
  } catch {
    // Told below.
  }
  const type = message?.type as T;
  if (!expected.includes(type)) {
    throw new TransferError(
      `expected a ${expected.join(" or ")} message, got ` +
        (packet.isText ? packet.text().slice(0, 60) : `${packet.bytes().length} bytes`),
    );
  }
  for (const [field, kind] of Object.entries(FIELDS[type])) {
    const value = message![field];
    const ok = kind === "string"
      ? typeof value === "string"
      : Number.isSafeInteger(value) && (value as number) >= 0;
    if (!ok) {
      const wanted = kind === "string" ? "a string" : "a whole number";
      throw new TransferError(`${type}.${field} must be ${wanted}, got ${JSON.stringify(value)}`);
    }
  }
  return message as Extract<Control, { type: T }>;
}

/** Encodes a control message. */
export function encode(message: Control): string {
  return JSON.stringify(message);
}

/**
 * Checks a file name offered by a sender: a plain name, no folders.
 *
 * @throws {TransferError} If it could name anything but a new file in the folder.
 */
export function checkName(name: string): string {
  if (
    name === "" || name === "." || name === ".." || /[\/\\\0]/.test(name) ||
    name.length > 255 || name.endsWith(".part")
  ) {
    throw new TransferError(`the name ${JSON.stringify(name.slice(0, 60))} is not allowed`);
  }
  return name;
}

/**
 * Hashes the first `length` bytes of an open file, from its start, and
 * leaves the file's position after them.
 *
 * @returns The hash, to continue with the rest of the file.
 * @throws {TransferError} If the file is shorter.
 */
export async function hashPrefix(file: Deno.FsFile, length: number): Promise<Hash> {
  const hash = createHash("sha256");
  await file.seek(0, Deno.SeekMode.Start);
  const buffer = new Uint8Array(CHUNK);
  for (let done = 0; done < length;) {
    const n = await file.read(buffer.subarray(0, Math.min(CHUNK, length - done)));
    if (n === null) throw new TransferError(`the file ended after ${done} of ${length} bytes`);
    hash.update(buffer.subarray(0, n));
    done += n;
  }
  return hash;
}

/** A hash's hex digest so far, leaving it open for more. */
export function digestSoFar(hash: Hash): string {
  return hash.copy().digest("hex");
}

export { createHash, type Hash };
