// Copyright 2026 the aesm authors. MIT license.
/**
 * The frame format's constants and shape (PROTOCOL.md section 3), apart from
 * the codecs so that the parser and the public framing module both use them
 * without importing each other. Re-exported by `framing.ts`. Private.
 *
 * @module
 */

/**
 * Frame types. `Preamble` is never on the wire as a type: it marks the client's first 16 bytes.
 *
 * @example Reading the type of a decoded frame
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameDecoderStream, FrameType } from "@aesm/aesm/framing";
 *
 * const wire = ReadableStream.from([new Uint8Array([0x02, 0, 1, 0x06])]);
 * const [frame] = await Array.fromAsync(wire.pipeThrough(new FrameDecoderStream()));
 * assert.equal(frame.type, FrameType.Refuse);
 * assert.deepEqual(frame.body, new Uint8Array([0x06]));
 * ```
 */
export const FrameType = {
  /** The client's 16-byte preamble, emitted by a decoder made with `preambleLength`. */
  Preamble: 0x00,
  /** A Noise handshake message. */
  Handshake: 0x01,
  /** A refusal during the handshake: a reason code and a UTF-8 detail. */
  Refuse: 0x02,
  /** A Noise transport message. */
  Transport: 0x03,
  /** A Noise transport message after which the sender rekeys. */
  TransportRekey: 0x04,
} as const;

/** A frame type value. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

/**
 * Length of a frame header.
 *
 * @example A frame is its header and its body
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, FRAME_HEADER_LENGTH, FrameType } from "@aesm/aesm/framing";
 *
 * const frame = encodeFrame(FrameType.Transport, new Uint8Array(10));
 * assert.equal(FRAME_HEADER_LENGTH, 3);
 * assert.equal(frame.length, FRAME_HEADER_LENGTH + 10);
 * ```
 */
export const FRAME_HEADER_LENGTH = 3;

/**
 * The largest frame body: the Noise message limit.
 *
 * @example The two-byte length field caps the body
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrameHeader, FrameType, MAX_FRAME_BODY } from "@aesm/aesm/framing";
 *
 * const header = encodeFrameHeader(FrameType.Transport, MAX_FRAME_BODY);
 * assert.deepEqual(header, new Uint8Array([0x03, 0xff, 0xff]));
 * assert.throws(() => encodeFrameHeader(FrameType.Transport, MAX_FRAME_BODY + 1), RangeError);
 * ```
 */
export const MAX_FRAME_BODY = 65535;

/** A decoded frame. */
export interface Frame {
  /** The frame type. */
  readonly type: FrameType;
  /** The 3 header bytes, the associated data of a transport frame. */
  readonly header: Uint8Array<ArrayBuffer>;
  /** The body. */
  readonly body: Uint8Array<ArrayBuffer>;
}
