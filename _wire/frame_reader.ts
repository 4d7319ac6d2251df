// Copyright 2026 the aesm authors. MIT license.
/**
 * Reads frames from a transport with one pending read at a time and no
 * stream machinery: the read side of a connection, from the preamble to the
 * end. Private.
 *
 * @module
 */

import { FrameParser } from "./frame_parser.ts";
import type { Transport } from "../_transport/transport.ts";
import type { Frame } from "./frame_format.ts";

const MIN_READ = 4 * 1024;
const MAX_READ = 256 * 1024;

/** Frames read so far, and how the input ended if it did. */
export interface FrameBatch {
  readonly frames: Frame[];
  /** Why reading stopped, after these frames: a bad frame, a cut mid-frame, a failed read. */
  readonly error?: unknown;
  /** Whether the input has ended (cleanly when there is no error). */
  readonly done: boolean;
}

/**
 * Reads only when asked (so a consumer that stops asking stops reading the
 * socket, and TCP slows the sender), never closes the socket (its owner
 * does), and reads into a fresh buffer whose size adapts, from 4 KiB for an
 * idle or chatty connection to 256 KiB for bulk: frames that lie whole in a
 * read are views of it.
 */
export class FrameReader {
  #conn: Transport;
  #parser: FrameParser;
  #size = MIN_READ;
  #pending: Frame[] = [];
  #error: unknown;
  #done = false;

  constructor(conn: Transport, preambleLength = 0) {
    this.#conn = conn;
    this.#parser = new FrameParser(preambleLength);
  }

  /** The next frame, reading if needed; `undefined` at the end. Throws what stopped the input. */
  async next(): Promise<Frame | undefined> {
    while (this.#pending.length === 0) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#done) return undefined;
      await this.#fill();
    }
    return this.#pending.shift();
  }

  /** Every frame parsed and not yet taken, reading once if there is none. */
  async read(): Promise<FrameBatch> {
    if (this.#pending.length === 0 && !this.#done) await this.#fill();
    const frames = this.#pending;
    this.#pending = [];
    return this.#error === undefined
      ? { frames, done: this.#done }
      : { frames, error: this.#error, done: true };
  }

  async #fill(): Promise<void> {
    const buffer = new Uint8Array(this.#size);
    let n: number | null;
    try {
      n = await this.#conn.read(buffer);
    } catch (error) {
      return this.#stop(error);
    }
    if (n === null) {
      try {
        this.#parser.end();
      } catch (error) {
        return this.#stop(error);
      }
      return this.#stop(undefined);
    }
    if (n === this.#size) this.#size = Math.min(MAX_READ, this.#size * 4);
    else if (n < this.#size / 4) this.#size = Math.max(MIN_READ, this.#size / 2);
    try {
      this.#parser.push(buffer.subarray(0, n), (frame) => this.#pending.push(frame));
    } catch (error) {
      this.#stop(error);
    }
  }

  #stop(error: unknown): void {
    this.#done = true;
    this.#error = error;
  }
}
