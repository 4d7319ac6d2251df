// Copyright 2026 the aesm authors. MIT license.
/**
 * Errors carried in band through the read pipeline. Private.
 *
 * An error that travels as a stream error overtakes the chunks still queued
 * between stages, so authentic messages received before a bad frame would be
 * lost. The read stages pass a `Fault` along in order instead, and stop.
 *
 * @module
 */

import { FrameParser } from "./_frame_parser.ts";
import type { Frame } from "./framing.ts";

/** An error in its place in the stream: everything before it is valid. */
export class Fault {
  constructor(readonly error: unknown) {}
}

/**
 * `FrameDecoderStream` with errors in band: frames as it gives them,
 * but a bad frame type, input that ends inside a frame, or a `Fault` from the
 * socket becomes a `Fault` after the frames before it. After a `Fault` it
 * drops its input.
 */
export class FrameFaultStream extends TransformStream<Uint8Array | Fault, Frame | Fault> {
  constructor(preambleLength = 0) {
    const parser = new FrameParser(preambleLength);
    let faulted = false;
    const fault = (controller: TransformStreamDefaultController<Frame | Fault>, error: unknown) => {
      faulted = true;
      controller.enqueue(error instanceof Fault ? error : new Fault(error));
    };
    super({
      transform(chunk, controller) {
        if (faulted) return;
        if (chunk instanceof Fault) return fault(controller, chunk);
        try {
          parser.push(chunk, (frame) => controller.enqueue(frame));
        } catch (error) {
          fault(controller, error);
        }
      },
      flush(controller) {
        if (faulted) return;
        try {
          parser.end();
        } catch (error) {
          fault(controller, error);
        }
      },
    });
  }
}
