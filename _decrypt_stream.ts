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
import { Fault } from "./_fault.ts";

/** How many frames may be decrypting at once. */
const DEPTH = 4;

/**
 * Decrypts transport frames with the frame header as associated data, up to
 * four at once, emitting plaintexts in frame order. A `TransportRekey` frame
 * is a barrier: the frames before it finish, then the receiving key is
 * rekeyed, then later frames start.
 *
 * Errors travel in band: another frame type, a body shorter than a tag, or a
 * failed authentication becomes a `Fault` (a `ProtocolError`) emitted after
 * every plaintext before it, and so does a `Fault` from upstream. After a
 * `Fault` the stage drops its input.
 */
export class DecryptStream extends TransformStream<Frame | Fault, Bytes | Fault> {
  #cipher: CipherState;
  #inflight = 0;
  #chain: Promise<void> = Promise.resolve();
  #faulted = false;

  constructor(cipher: CipherState) {
    super({
      transform: (frame, controller) => this.#transform(frame, controller),
      flush: () => this.#chain,
    });
    this.#cipher = cipher;
  }

  async #transform(
    input: Frame | Fault,
    controller: TransformStreamDefaultController<Bytes | Fault>,
  ): Promise<void> {
    if (this.#faulted) return;
    const problem = input instanceof Fault ? input : check(input);
    if (problem !== undefined) return await this.#fault(problem, controller);
    const frame = input as Frame;
    const plaintext = this.#cipher.decryptWithAd(frame.header, frame.body);
    plaintext.catch(() => {}); // Observed in order below; this only marks it handled.
    this.#inflight++;
    this.#chain = this.#chain.then(async () => {
      try {
        const bytes = await plaintext;
        if (!this.#faulted && bytes.length > 0) controller.enqueue(bytes);
      } catch (error) {
        if (this.#faulted) return;
        this.#faulted = true;
        const fault = new Fault(
          new ProtocolError("Cannot decrypt frame: authentication failed", { cause: error }),
        );
        controller.enqueue(fault);
      } finally {
        this.#inflight--;
      }
    }).catch(() => {}); // The readable side was cancelled: nothing to deliver to.
    if (frame.type === FrameType.TransportRekey) {
      await this.#chain;
      if (!this.#faulted) await this.#cipher.rekey();
    } else if (this.#inflight >= DEPTH) {
      await this.#chain;
    }
  }

  async #fault(
    fault: Fault,
    controller: TransformStreamDefaultController<Bytes | Fault>,
  ): Promise<void> {
    await this.#chain;
    if (this.#faulted) return;
    this.#faulted = true;
    controller.enqueue(fault);
  }
}

function check(frame: Frame): Fault | undefined {
  if (frame.type !== FrameType.Transport && frame.type !== FrameType.TransportRekey) {
    return new Fault(
      new ProtocolError(
        `Cannot decrypt frame: unexpected frame type ${frame.type} after the handshake`,
      ),
    );
  }
  if (frame.body.length < TAGLEN) {
    return new Fault(new ProtocolError("Cannot decrypt frame: shorter than its tag"));
  }
  return undefined;
}
