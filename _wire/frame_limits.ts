// Copyright 2026 the aesm authors. MIT license.
/**
 * The caps a receiver puts on transport frames that carry no work for it
 * (`PROTOCOL.md`, sections 5 and 6): empty frames in a row, and rekeys
 * closer together than {@linkcode MIN_REKEY_INTERVAL}. Both are judged from
 * the frame headers, before any decryption, so a peer past them costs
 * nothing more. Private.
 *
 * @module
 */

import { TAGLEN } from "../_crypto/primitives.ts";
import { ProtocolError } from "../errors.ts";
import { type Frame, FrameType } from "./frame_format.ts";

/** The most transport frames with an empty plaintext a peer may send in a row. */
export const MAX_EMPTY_FRAMES = 16;
/**
 * The fewest plaintext bytes a direction carries per rekey: those of the
 * frames since the previous TransportRekey frame (or since the start),
 * counting the TransportRekey frame's own.
 */
export const MIN_REKEY_INTERVAL = 64 * 1024;

/** What {@linkcode TransportLimits.scan} finds: how many frames pass, and why the next does not. */
export interface Scanned {
  readonly allowed: number;
  readonly error?: ProtocolError;
}

/** Counts one direction's frames against the caps, frame by frame, in order. */
export class TransportLimits {
  #empty = 0;
  #sinceRekey = 0;

  /** Takes frames in order up to the first that breaks a cap; counts those it passes. */
  scan(frames: readonly Frame[]): Scanned {
    for (let i = 0; i < frames.length; i++) {
      const error = this.#check(frames[i]);
      if (error !== undefined) return { allowed: i, error };
    }
    return { allowed: frames.length };
  }

  #check(frame: Frame): ProtocolError | undefined {
    const rekey = frame.type === FrameType.TransportRekey;
    if (!rekey && frame.type !== FrameType.Transport) return undefined; // The opener rejects it.
    const size = Math.max(0, frame.body.length - TAGLEN);
    this.#empty = size === 0 ? this.#empty + 1 : 0;
    if (this.#empty > MAX_EMPTY_FRAMES) {
      return new ProtocolError(
        `Cannot accept frame: more than ${MAX_EMPTY_FRAMES} empty transport frames in a row`,
      );
    }
    this.#sinceRekey += size;
    if (!rekey) return undefined;
    if (this.#sinceRekey < MIN_REKEY_INTERVAL) {
      return new ProtocolError(
        `Cannot accept frame: a rekey after ${this.#sinceRekey} bytes, fewer than ${MIN_REKEY_INTERVAL}`,
      );
    }
    this.#sinceRekey = 0;
    return undefined;
  }
}
