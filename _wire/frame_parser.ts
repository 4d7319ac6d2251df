// Copyright 2026 the aesm authors. MIT license.
/**
 * The frame parser behind `FrameDecoderStream` and the connection's read
 * side. Private.
 *
 * @module
 */

import type { Bytes } from "../_crypto/bytes.ts";
import { ProtocolError } from "../errors.ts";
import { type Frame, FRAME_HEADER_LENGTH, FrameType } from "./frame_format.ts";

/**
 * Splits bytes into frames, whatever the chunk boundaries. A frame that lies
 * whole in one chunk is emitted as views of that chunk; one split across
 * chunks is gathered into a buffer of exactly its size. `push` throws a
 * `ProtocolError` on a type other than 1 to 4, after emitting the frames
 * before it; `end` throws one (with `truncated` set) inside a frame.
 */
export class FrameParser {
  #preambleLength: number;
  #header: Uint8Array | undefined; // Only for a header split across chunks.
  #headerFill = 0;
  #body: Bytes | undefined;
  #bodyFill = 0;

  constructor(preambleLength = 0) {
    this.#preambleLength = preambleLength;
    if (preambleLength > 0) this.#body = new Uint8Array(preambleLength);
  }

  push(chunk: Uint8Array, emit: (frame: Frame) => void): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#body !== undefined) {
        offset = this.#fillBody(chunk, offset, emit);
        continue;
      }
      const available = chunk.length - offset;
      if (this.#headerFill === 0 && available >= FRAME_HEADER_LENGTH) {
        checkType(chunk[offset]);
        const length = (chunk[offset + 1] << 8) | chunk[offset + 2];
        if (available >= FRAME_HEADER_LENGTH + length) {
          const start = offset + FRAME_HEADER_LENGTH;
          emit({
            type: chunk[offset] as FrameType,
            header: chunk.subarray(offset, start) as Bytes,
            body: chunk.subarray(start, start + length) as Bytes,
          });
          offset = start + length;
          continue;
        }
      }
      const take = Math.min(FRAME_HEADER_LENGTH - this.#headerFill, available);
      this.#header ??= new Uint8Array(FRAME_HEADER_LENGTH);
      this.#header.set(chunk.subarray(offset, offset + take), this.#headerFill);
      this.#headerFill += take;
      offset += take;
      if (this.#headerFill === FRAME_HEADER_LENGTH) {
        checkType(this.#header[0]);
        this.#body = new Uint8Array((this.#header[1] << 8) | this.#header[2]);
        this.#bodyFill = 0;
        if (this.#body.length === 0) this.#emitGathered(emit);
      }
    }
  }

  end(): void {
    if (this.#headerFill > 0 || this.#body !== undefined) {
      throw new ProtocolError("Cannot decode frame: the stream ended inside a frame", {
        truncated: true,
      });
    }
  }

  #fillBody(chunk: Uint8Array, offset: number, emit: (frame: Frame) => void): number {
    const body = this.#body!;
    const take = Math.min(body.length - this.#bodyFill, chunk.length - offset);
    body.set(chunk.subarray(offset, offset + take), this.#bodyFill);
    this.#bodyFill += take;
    if (this.#bodyFill === body.length) this.#emitGathered(emit);
    return offset + take;
  }

  #emitGathered(emit: (frame: Frame) => void): void {
    const body = this.#body!;
    this.#body = undefined;
    this.#headerFill = 0;
    if (this.#preambleLength > 0) {
      this.#preambleLength = 0;
      emit({ type: FrameType.Preamble, header: new Uint8Array(0), body });
    } else {
      emit({ type: this.#header![0] as FrameType, header: this.#header!.slice(), body });
    }
  }
}

function checkType(type: number): void {
  if (type < FrameType.Handshake || type > FrameType.TransportRekey) {
    throw new ProtocolError(
      `Cannot decode frame: unknown frame type 0x${type.toString(16).padStart(2, "0")}`,
    );
  }
}
