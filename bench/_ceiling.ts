// Copyright 2026 the aesm authors. MIT license.
/**
 * The cipher ceiling: what AES-GCM allows a bulk transfer when nothing else
 * costs anything. The sender's half seals 64 KiB frames the way a
 * connection's write pump does (4 in flight, frame header as associated
 * data); the receiver's half, in another process, opens them the way a
 * connection's read loop does (`FrameOpener`, in batches of 4 frames, what
 * one 256 KiB socket read holds). No sockets, no records. Both halves run at
 * once, each on its own core, so the slower one is the ceiling. Private.
 *
 * @module
 */

import { fromHex, toHex } from "../_crypto/bytes.ts";
import { FrameOpener } from "../_wire/frame_opener.ts";
import { encryptNow } from "../_noise/cipher_state.ts";
import { type MaybePromise, TAGLEN } from "../_crypto/primitives.ts";
import { CipherState } from "../cipher.ts";
import { encodeFrameHeader, type Frame, FrameType } from "../framing.ts";

/** The plaintext of a full transport frame: 65535 bytes less the tag. */
export const FRAME_PLAINTEXT = 65535 - TAGLEN;
const SEAL_DEPTH = 4; // As connection.ts.
const OPEN_BATCH = 4; // Frames in one 256 KiB read.
const DISTINCT = 16; // Frames the opener cycles through (resetting the nonce).

/** A fresh key as hex, for both halves. */
export function ceilingKey(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(32)));
}

function plaintext(): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(FRAME_PLAINTEXT);
  crypto.getRandomValues(bytes.subarray(0, 65536 - TAGLEN));
  return bytes;
}

/** Seals `count` frames as the write pump does; returns the bytes of plaintext sealed. */
export async function sealFrames(
  key: string,
  count: number,
  check: () => void,
): Promise<number> {
  const cipher = await CipherState.create(fromHex(key));
  const data = plaintext();
  const header = encodeFrameHeader(FrameType.Transport, data.length + TAGLEN);
  const seal = (): MaybePromise<Uint8Array> => encryptNow(cipher, header, data);
  const frame = (sealed: Uint8Array) => {
    const out = new Uint8Array(header.length + sealed.length);
    out.set(header);
    out.set(sealed, header.length);
    return out;
  };
  const inflight: MaybePromise<Uint8Array>[] = [];
  let started = 0;
  for (let done = 0; done < count; done++) {
    if ((done & 63) === 0) check();
    while (started < count && inflight.length < SEAL_DEPTH) {
      const sealing = seal();
      if (sealing instanceof Promise) sealing.catch(() => {});
      inflight.push(sealing);
      started++;
    }
    const next = inflight.shift()!;
    frame(next instanceof Promise ? await next : next);
  }
  return count * data.length;
}

/** The receiver's half: frames to open, made before the clock starts. */
export class FrameOpenerLoop {
  #cipher: CipherState;
  #frames: Frame[];

  private constructor(cipher: CipherState, frames: Frame[]) {
    this.#cipher = cipher;
    this.#frames = frames;
  }

  /** Seals DISTINCT frames under `key` from nonce 0, to open again and again. */
  static async prepare(key: string): Promise<FrameOpenerLoop> {
    const sealer = await CipherState.create(fromHex(key));
    const data = plaintext();
    const header = encodeFrameHeader(FrameType.Transport, data.length + TAGLEN);
    const frames: Frame[] = [];
    for (let i = 0; i < DISTINCT; i++) {
      const body = await sealer.encryptWithAd(header, data);
      frames.push({ type: FrameType.Transport, header, body });
    }
    return new FrameOpenerLoop(await CipherState.create(fromHex(key)), frames);
  }

  /** Opens `count` frames in batches of OPEN_BATCH; returns the bytes of plaintext. */
  async open(count: number): Promise<number> {
    const opener = new FrameOpener(this.#cipher);
    let bytes = 0;
    for (let done = 0; done < count;) {
      const at = done % DISTINCT;
      if (at === 0) this.#cipher.setNonce(0n);
      const batch = this.#frames.slice(at, Math.min(at + OPEN_BATCH, DISTINCT, at + count - done));
      const { plaintexts, error } = await opener.open(batch);
      if (error !== undefined) throw error;
      for (const plaintext of plaintexts) bytes += plaintext.length;
      done += batch.length;
    }
    return bytes;
  }
}
