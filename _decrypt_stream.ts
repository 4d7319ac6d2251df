// Copyright 2026 the aesm authors. MIT license.
/**
 * The read side's decryption stage: transport frames in, plaintexts out.
 * Private.
 *
 * @module
 */

import type { Bytes } from "./_bytes.ts";
import { TAGLEN } from "./_primitives.ts";
import type { CipherState } from "./cipher.ts";
import { ProtocolError } from "./errors.ts";
import { type Frame, FrameType } from "./framing.ts";

/** How many frames may be decrypting at once. */
const DEPTH = 4;

/**
 * Decrypts transport frames with the frame header as associated data, up to
 * four at once, emitting plaintexts in frame order. A `TransportRekey` frame
 * is a barrier: the frames before it finish, then the receiving key is
 * rekeyed, then later frames start.
 *
 * Errors the stream with a `ProtocolError` on any other frame type, a body
 * shorter than a tag, or a failed authentication; nothing after a failed
 * frame is emitted.
 */
export class DecryptStream extends TransformStream<Frame, Bytes> {
  #cipher: CipherState;
  #inflight = 0;
  #chain: Promise<void> = Promise.resolve();
  #failed: unknown;

  constructor(cipher: CipherState) {
    super({
      transform: (frame, controller) => this.#transform(frame, controller),
      flush: () => this.#settled(),
    });
    this.#cipher = cipher;
  }

  async #transform(
    frame: Frame,
    controller: TransformStreamDefaultController<Bytes>,
  ): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed;
    if (frame.type !== FrameType.Transport && frame.type !== FrameType.TransportRekey) {
      throw new ProtocolError(
        `Cannot decrypt frame: unexpected frame type ${frame.type} after the handshake`,
      );
    }
    if (frame.body.length < TAGLEN) {
      throw new ProtocolError("Cannot decrypt frame: shorter than its tag");
    }
    const plaintext = this.#cipher.decryptWithAd(frame.header, frame.body);
    plaintext.catch(() => {}); // Observed in order below; this only marks it handled.
    this.#inflight++;
    this.#chain = this.#chain.then(async () => {
      let bytes: Bytes;
      try {
        bytes = await plaintext;
      } catch (error) {
        this.#failed ??= new ProtocolError("Cannot decrypt frame: authentication failed", {
          cause: error,
        });
        controller.error(this.#failed);
        return;
      } finally {
        this.#inflight--;
      }
      if (this.#failed === undefined && bytes.length > 0) controller.enqueue(bytes);
    });
    if (frame.type === FrameType.TransportRekey) {
      await this.#settled();
      await this.#cipher.rekey();
    } else if (this.#inflight >= DEPTH) {
      await this.#chain;
    }
    if (this.#failed !== undefined) throw this.#failed;
  }

  async #settled(): Promise<void> {
    await this.#chain;
    if (this.#failed !== undefined) throw this.#failed;
  }
}
