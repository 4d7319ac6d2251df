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
  type Frame,
  FRAME_HEADER_LENGTH,
  FrameType,
  MAX_FRAME_BODY,
} from "./_wire/frame_format.ts";
import {
  type Frame,
  FRAME_HEADER_LENGTH,
  FrameType,
  MAX_FRAME_BODY,
} from "./_wire/frame_format.ts";

/**
 * Encodes the 3-byte header of a frame.
 *
 * @param type The frame type.
 * @param length The body length.
 * @returns The header.
 * @throws {RangeError} If `length` is not an integer from 0 to {@linkcode MAX_FRAME_BODY}.
 *
 * @example Writing a header before streaming its body
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrameHeader, FrameType } from "@aesm/aesm/framing";
 *
 * assert.deepEqual(encodeFrameHeader(FrameType.Handshake, 258), new Uint8Array([0x01, 1, 2]));
 * assert.throws(() => encodeFrameHeader(FrameType.Handshake, -1), RangeError);
 * ```
 */
export function encodeFrameHeader(type: FrameType, length: number): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(type) || type < FrameType.Handshake || type > FrameType.TransportRekey) {
    throw new RangeError(`Cannot encode frame: unknown frame type ${type}`);
  }
  if (!Number.isInteger(length) || length < 0 || length > MAX_FRAME_BODY) {
    throw new RangeError(
      `Cannot encode frame: body length must be an integer from 0 to ${MAX_FRAME_BODY}, got ${length}`,
    );
  }
  return new Uint8Array([type, length >>> 8, length & 0xff]);
}

/**
 * Encodes a whole frame.
 *
 * @param type The frame type.
 * @param body The body, at most 65535 bytes.
 * @returns Header and body in one buffer.
 * @throws {RangeError} If `body` is longer than {@linkcode MAX_FRAME_BODY}.
 *
 * @example Encoding a frame
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, FrameType } from "@aesm/aesm/framing";
 *
 * const frame = encodeFrame(FrameType.Handshake, new Uint8Array([0xaa, 0xbb]));
 * assert.deepEqual(frame, new Uint8Array([0x01, 0, 2, 0xaa, 0xbb]));
 * assert.throws(() => encodeFrame(FrameType.Handshake, new Uint8Array(65536)), RangeError);
 * ```
 */
export function encodeFrame(type: FrameType, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const frame = new Uint8Array(FRAME_HEADER_LENGTH + body.length);
  frame.set(encodeFrameHeader(type, body.length));
  frame.set(body, FRAME_HEADER_LENGTH);
  return frame;
}

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
