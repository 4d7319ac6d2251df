// Copyright 2026 the aesm authors. MIT license.
/**
 * The read side's decryption stage: transport frames in, plaintexts out,
 * several at once, in order. Private.
 *
 * @module
 */

import type { Bytes } from "../_crypto/bytes.ts";
import { decryptNow, rekeyNow } from "../_noise/cipher_state.ts";
import { type MaybePromise, TAGLEN } from "../_crypto/primitives.ts";
import type { CipherState } from "../_noise/cipher_state.ts";
import { ProtocolError } from "../errors.ts";
import { type Frame, FrameType } from "./frame_format.ts";

/** How many frames may be decrypting at once. */
const DEPTH = 8;

/** What {@linkcode FrameOpener.open} gives: the plaintexts in order, then the error if one stopped it. */
export interface Opened {
  readonly plaintexts: Bytes[];
  readonly error?: unknown;
}

/**
 * Decrypts transport frames with the frame header as associated data, in
 * frame order: a small frame at once where the cipher's suite is synchronous
 * (see `_crypto/primitives.ts`), larger ones up to eight at once. A `TransportRekey` frame is a barrier: the
 * frames before it finish, then the receiving key is rekeyed, then later
 * frames start. Another frame type, a body shorter than a tag, or a failed
 * authentication stops it with a `ProtocolError`, after the plaintexts of the
 * frames before; it opens nothing after that.
 */
export class FrameOpener {
  #cipher: CipherState;
  #failed = false;

  constructor(cipher: CipherState) {
    this.#cipher = cipher;
  }

  async open(frames: readonly Frame[]): Promise<Opened> {
    const plaintexts: Bytes[] = [];
    let start = 0;
    while (start < frames.length && !this.#failed) {
      let end = start;
      let barrier = false;
      while (end < frames.length && end - start < DEPTH && !barrier) {
        barrier = frames[end++].type === FrameType.TransportRekey;
      }
      const error = await this.#openRun(frames.slice(start, end), plaintexts);
      if (error !== undefined) return { plaintexts, error };
      if (barrier) await rekeyNow(this.#cipher);
      start = end;
    }
    return this.#failed
      ? { plaintexts, error: new ProtocolError("Cannot decrypt frame: the stream failed earlier") }
      : { plaintexts };
  }

  async #openRun(run: Frame[], plaintexts: Bytes[]): Promise<unknown> {
    const pending: MaybePromise<Bytes>[] = [];
    let problem: ProtocolError | undefined;
    for (const frame of run) {
      problem = check(frame) ?? this.#start(frame, pending);
      if (problem !== undefined) break;
    }
    for (const plaintext of pending) {
      try {
        plaintexts.push(plaintext instanceof Promise ? await plaintext : plaintext);
      } catch (error) {
        this.#failed = true;
        await Promise.allSettled(pending);
        return authenticationFailed(error);
      }
    }
    if (problem !== undefined) this.#failed = true;
    return problem;
  }

  // Starts decrypting `frame`; a synchronous failure stops the run there.
  #start(frame: Frame, pending: MaybePromise<Bytes>[]): ProtocolError | undefined {
    try {
      const plaintext = decryptNow(this.#cipher, frame.header, frame.body);
      // Awaited in order by the caller; this only marks it handled.
      if (plaintext instanceof Promise) plaintext.catch(() => {});
      pending.push(plaintext);
      return undefined;
    } catch (error) {
      return authenticationFailed(error);
    }
  }
}

function authenticationFailed(error: unknown): ProtocolError {
  return new ProtocolError("Cannot decrypt frame: authentication failed", { cause: error });
}

function check(frame: Frame): ProtocolError | undefined {
  if (frame.type !== FrameType.Transport && frame.type !== FrameType.TransportRekey) {
    return new ProtocolError(
      `Cannot decrypt frame: unexpected frame type ${frame.type} after the handshake`,
    );
  }
  if (frame.body.length < TAGLEN) {
    return new ProtocolError("Cannot decrypt frame: shorter than its tag");
  }
  return undefined;
}
