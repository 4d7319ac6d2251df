// Copyright 2026 the aesm authors. MIT license.
/**
 * The aesm frame layer (`PROTOCOL.md`, "Frames"): every byte after the
 * preamble is a frame of `type (1) | length (2, big-endian) | body`.
 *
 * @example Decoding frames from awkward chunks
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, FrameDecoderStream, FrameType } from "@aesm/aesm/framing";
 *
 * const wire = encodeFrame(FrameType.Handshake, new Uint8Array([1, 2, 3]));
 * const chunks = ReadableStream.from([wire.subarray(0, 2), wire.subarray(2)]);
 * const frames = await Array.fromAsync(chunks.pipeThrough(new FrameDecoderStream()));
 * assert.equal(frames.length, 1);
 * assert.deepEqual(frames[0].body, new Uint8Array([1, 2, 3]));
 * ```
 *
 * @module
 */

import { FrameParser } from "./_wire/frame_parser.ts";

export {
  encodeFrame,
  encodeFrameHeader,
  type Frame,
  FRAME_HEADER_LENGTH,
  FrameType,
  MAX_FRAME_BODY,
} from "./_wire/frame_format.ts";
import type { Frame } from "./_wire/frame_format.ts";

/** Options of {@linkcode FrameDecoderStream}. */
export interface FrameDecoderStreamOptions {
  /**
   * Bytes before the first frame, emitted as one `Preamble` frame.
   *
   * @default {0}
   */
  preambleLength?: number;
}

/**
 * Splits a byte stream into frames, whatever the chunk boundaries.
 *
 * A frame that lies whole in one chunk is emitted as views of that chunk;
 * one split across chunks is gathered into a buffer of exactly its size. A
 * type other than 1 to 4 errors the stream with a `ProtocolError` at once,
 * and so does input that ends inside a frame (with `truncated` set). Cancelling the readable side
 * cancels the source.
 *
 * @example Decoding a preamble, then frames
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameDecoderStream, FrameType } from "@aesm/aesm/framing";
 *
 * const wire = ReadableStream.from([new Uint8Array([0xaa, 0xbb, 0x01, 0, 1, 0x07])]);
 * const decoder = new FrameDecoderStream({ preambleLength: 2 });
 * const frames = await Array.fromAsync(wire.pipeThrough(decoder));
 * assert.deepEqual(frames.map((frame) => frame.type), [FrameType.Preamble, FrameType.Handshake]);
 * assert.deepEqual(frames[0].body, new Uint8Array([0xaa, 0xbb]));
 * assert.deepEqual(frames[1].body, new Uint8Array([0x07]));
 * ```
 */
export class FrameDecoderStream extends TransformStream<Uint8Array, Frame> {
  /**
   * Creates the decoder.
   *
   * @param options Whether a preamble comes first.
   */
  constructor(options?: FrameDecoderStreamOptions) {
    const parser = new FrameParser(options?.preambleLength ?? 0);
    super({
      transform: (chunk, controller) => parser.push(chunk, (frame) => controller.enqueue(frame)),
      flush: () => parser.end(),
    });
  }
}
