// Copyright 2026 the aesm authors. MIT license.
// The read side's stages as Web Streams, for tests that push bytes through
// them without a socket. A connection drives the same stages (FrameParser,
// FrameOpener, RecordDecoder) in one loop; these wrappers carry errors in
// band as a `Fault`, after every chunk before it, as that loop does.

import { FrameParser } from "../_wire/frame_parser.ts";
import { FrameOpener } from "../_wire/frame_opener.ts";
import { RecordDecoder, type RecordEvent } from "../_wire/record.ts";
import type { Bytes } from "../_crypto/bytes.ts";
import type { CipherState } from "../cipher.ts";
import type { Frame } from "../framing.ts";

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

/**
 * {@linkcode FrameOpener} as a stream stage. Errors travel in band: a
 * failure becomes a `Fault` after every plaintext before it, and a `Fault`
 * from upstream passes through; after a `Fault` the stage drops its input.
 */
export class DecryptStream extends TransformStream<Frame | Fault, Bytes | Fault> {
  constructor(cipher: CipherState) {
    const opener = new FrameOpener(cipher);
    let faulted = false;
    super({
      async transform(input, controller) {
        if (faulted) return;
        const { plaintexts, error } = input instanceof Fault
          ? { plaintexts: [], error: input.error }
          : await opener.open([input]);
        for (const plaintext of plaintexts) if (plaintext.length > 0) controller.enqueue(plaintext);
        if (error === undefined) return;
        faulted = true;
        controller.enqueue(new Fault(error));
      },
    });
  }
}

/**
 * {@linkcode RecordDecoder} as a stream stage: one array of events per
 * plaintext that completes any. Errors travel in band, after every event
 * before them, as a `Fault`; a `Fault` from upstream passes through; after a
 * `Fault` the stage drops its input.
 */
export class RecordDecoderStream extends TransformStream<Bytes | Fault, RecordEvent[] | Fault> {
  constructor(maxMessageSize: number) {
    const decoder = new RecordDecoder(maxMessageSize);
    let faulted = false;
    super({
      transform(input, controller) {
        if (faulted) return;
        const events: RecordEvent[] = [];
        try {
          if (input instanceof Fault) throw input.error;
          decoder.decode(input, events);
        } catch (error) {
          faulted = true;
          if (events.length > 0) controller.enqueue(events);
          controller.enqueue(new Fault(error));
          return;
        }
        if (events.length > 0) controller.enqueue(events);
      },
    });
  }
}
