// Copyright 2026 the aesm authors. MIT license.
/**
 * The frame format (PROTOCOL.md section 3): its constants, its shape, and
 * how a frame and its header are encoded. The wire stages and the connection
 * use it directly; `framing.ts` re-exports it. Private.
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
