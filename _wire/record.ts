// Copyright 2026 the aesm authors. MIT license.
/**
 * Records inside a transport frame's plaintext (`PROTOCOL.md`, "Records"):
 * `type (1) | length (2, big-endian) | body`. Private.
 *
 * @module
 */

import { type Bytes, concat } from "../_crypto/bytes.ts";
import { TAGLEN } from "../_crypto/primitives.ts";
import { ProtocolError } from "../errors.ts";
import { MAX_FRAME_BODY } from "./frame_format.ts";

/** Record types. Types 0x40 and above are extensions a receiver skips when unknown. */
export const RecordType = {
  Text: 0x01,
  Binary: 0x02,
  Continuation: 0x03,
  Close: 0x04,
  Ping: 0x05,
} as const;

/** The first extension type: unknown records from here on are skipped. */
export const FIRST_EXTENSION_TYPE = 0x40;

/** Close codes carried by a `Close` record. */
export const CloseCode = {
  normal: 0x00,
  shutdown: 0x01,
  "protocol-error": 0x02,
  "message-too-large": 0x03,
  timeout: 0x04,
  "internal-error": 0x05,
  "idle-timeout": 0x06,
  "slow-consumer": 0x07,
} as const;

/** A close code's name. */
export type CloseCodeName = keyof typeof CloseCode;

/** The longest reason a Close record may carry, in bytes. */
export const MAX_CLOSE_REASON = 256;

/** Header of every record. */
export const RECORD_HEADER_LENGTH = 3;
/** Extra header of a message's first record: the send time and the total length. */
export const START_HEADER_LENGTH = 12;
/** The largest plaintext of one transport frame. */
export const MAX_PLAINTEXT = MAX_FRAME_BODY - TAGLEN;
const MIN_CAPACITY = 512;
// The empty buffer of an idle batcher, shared: an idle connection allocates nothing.
const NO_BUFFER: Bytes = new Uint8Array(0);
const NO_VIEW = new DataView(NO_BUFFER.buffer);
// A long message starts in the current plaintext only if this much room is left.
const MIN_SPLIT = 256;

/**
 * Packs records into frame plaintexts of at most {@linkcode MAX_PLAINTEXT}
 * bytes, copying message bytes once, into a buffer that grows as needed.
 */
export class RecordBatcher {
  #done: Bytes[] = [];
  #buffer: Bytes = NO_BUFFER;
  #view = NO_VIEW;
  #fill = 0;
  #bytes = 0;

  /** Bytes packed and not yet taken. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether nothing is waiting. */
  get empty(): boolean {
    return this.#bytes === 0;
  }

  /** Packs one message, split over as many records and plaintexts as it needs. */
  addMessage(data: Uint8Array, text: boolean, time: number): void {
    const overhead = RECORD_HEADER_LENGTH + START_HEADER_LENGTH;
    let chunk = Math.min(data.length, this.#room(overhead + data.length) - overhead);
    this.#header(text ? RecordType.Text : RecordType.Binary, START_HEADER_LENGTH + chunk);
    this.#view.setUint32(this.#fill, Math.floor(time / 0x1_0000_0000));
    this.#view.setUint32(this.#fill + 4, time >>> 0);
    this.#view.setUint32(this.#fill + 8, data.length);
    this.#fill += START_HEADER_LENGTH;
    this.#bytes += START_HEADER_LENGTH;
    this.#copy(data.subarray(0, chunk));
    let offset = chunk;
    while (offset < data.length) {
      const rest = data.length - offset;
      chunk = Math.min(rest, this.#room(RECORD_HEADER_LENGTH + rest) - RECORD_HEADER_LENGTH);
      this.#header(RecordType.Continuation, chunk);
      this.#copy(data.subarray(offset, offset + chunk));
      offset += chunk;
    }
  }

  /** Packs a control record with a small body. */
  addControl(type: number, body: Uint8Array): void {
    this.#room(RECORD_HEADER_LENGTH + body.length);
    this.#header(type, body.length);
    this.#copy(body);
  }

  /** Takes the oldest plaintext, or `undefined` when nothing waits. */
  take(): Bytes | undefined {
    const next = this.#done.shift() ?? this.#takeCurrent();
    if (next !== undefined) this.#bytes -= next.length;
    return next;
  }

  #takeCurrent(): Bytes | undefined {
    if (this.#fill === 0) return undefined;
    const out = this.#buffer.subarray(0, this.#fill);
    this.#buffer = NO_BUFFER;
    this.#view = NO_VIEW;
    this.#fill = 0;
    return out;
  }

  // A record that fits a fresh plaintext but not this one starts a new
  // plaintext; a longer one fills this one first. Returns the room left in
  // the plaintext the record goes to, with buffer capacity for `wanted` bytes.
  #room(wanted: number): number {
    let free = MAX_PLAINTEXT - this.#fill;
    if (free < wanted && (wanted <= MAX_PLAINTEXT || free < MIN_SPLIT)) {
      const full = this.#takeCurrent();
      if (full !== undefined) this.#done.push(full);
      free = MAX_PLAINTEXT;
    }
    const need = this.#fill + Math.min(wanted, free);
    if (need > this.#buffer.length) {
      const capacity = Math.min(
        MAX_PLAINTEXT,
        Math.max(MIN_CAPACITY, need, this.#buffer.length * 2),
      );
      const grown = new Uint8Array(capacity);
      grown.set(this.#buffer.subarray(0, this.#fill));
      this.#buffer = grown;
      this.#view = new DataView(grown.buffer);
    }
    return free;
  }

  #header(type: number, length: number): void {
    this.#buffer[this.#fill] = type;
    this.#buffer[this.#fill + 1] = length >>> 8;
    this.#buffer[this.#fill + 2] = length & 0xff;
    this.#fill += RECORD_HEADER_LENGTH;
    this.#bytes += RECORD_HEADER_LENGTH;
  }

  #copy(bytes: Uint8Array): void {
    this.#buffer.set(bytes, this.#fill);
    this.#fill += bytes.length;
    this.#bytes += bytes.length;
  }
}

/** What the record decoder emits. */
export type RecordEvent =
  | {
    readonly kind: "message";
    readonly time: number;
    readonly data: string | Bytes;
    readonly size: number;
  }
  | { readonly kind: "close"; readonly code: number; readonly reason: string };

/** Thrown by the record decoder when a message exceeds this side's limit. */
export class OversizeError extends ProtocolError {
  constructor(readonly size: number, readonly limit: number) {
    super(`Cannot receive message: ${size} bytes exceeds the limit of ${limit} bytes`);
    this.name = "OversizeError";
  }
}

interface Assembly {
  text: boolean;
  time: number;
  total: number;
  chunks: Bytes[];
  fill: number;
}

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Turns frame plaintexts into messages and control events, keeping the
 * state of a message that spans frames.
 *
 * `decode` throws a `ProtocolError` for a malformed record, a continuation
 * out of place, invalid UTF-8 in a text message, an unknown type below 0x40,
 * or anything after a `Close` record; an `OversizeError` when a message's
 * declared total exceeds `maxMessageSize` (a message's buffer grows as its
 * bytes arrive, so a declared total reserves nothing).
 */
export class RecordDecoder {
  #maxMessageSize: number;
  #assembly: Assembly | undefined;
  #closed = false;

  constructor(maxMessageSize: number) {
    this.#maxMessageSize = maxMessageSize;
  }

  /** Bytes of the message being assembled, held until it is complete. */
  get pending(): number {
    return this.#assembly?.fill ?? 0;
  }

  /**
   * Decodes one plaintext into `events`. On a bad record it throws, having
   * pushed the events of the records before it.
   */
  decode(plaintext: Bytes, events: RecordEvent[]): void {
    // Nothing follows a Close: not a record, not even an empty frame.
    if (this.#closed) throw new ProtocolError("Cannot decode record: a frame after a close record");
    const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
    let offset = 0;
    while (offset < plaintext.length) {
      if (plaintext.length - offset < RECORD_HEADER_LENGTH) {
        throw new ProtocolError("Cannot decode record: truncated record header");
      }
      const type = plaintext[offset];
      const length = view.getUint16(offset + 1);
      const start = offset + RECORD_HEADER_LENGTH;
      offset = start + length;
      if (offset > plaintext.length) {
        throw new ProtocolError("Cannot decode record: body overruns the frame");
      }
      const body = plaintext.subarray(start, offset);
      // Checked before the Close takes effect: a Close with records after it
      // is a violation, not a close.
      if (type === RecordType.Close && offset < plaintext.length) {
        throw new ProtocolError("Cannot decode record: data after a close record");
      }
      const event = this.#record(type, body, view, start);
      if (event !== undefined) events.push(event);
    }
  }

  #record(type: number, body: Bytes, view: DataView, start: number): RecordEvent | undefined {
    switch (type) {
      case RecordType.Text:
      case RecordType.Binary:
        return this.#start(type === RecordType.Text, body, view, start);
      case RecordType.Continuation:
        return this.#continue(body);
      case RecordType.Close:
        return this.#close(body);
      case RecordType.Ping:
        if (body.length !== 0) throw new ProtocolError("Cannot decode record: a ping has no body");
        return undefined;
      default:
        if (type < FIRST_EXTENSION_TYPE) {
          throw new ProtocolError(
            `Cannot decode record: unknown record type 0x${type.toString(16).padStart(2, "0")}`,
          );
        }
        return undefined;
    }
  }

  #start(text: boolean, body: Bytes, view: DataView, start: number): RecordEvent | undefined {
    if (this.#assembly !== undefined) {
      throw new ProtocolError("Cannot decode record: a message starts inside another");
    }
    if (body.length < START_HEADER_LENGTH) {
      throw new ProtocolError("Cannot decode record: truncated message header");
    }
    const time = Number(view.getBigUint64(start));
    const total = view.getUint32(start + 8);
    const chunk = body.subarray(START_HEADER_LENGTH);
    if (total > this.#maxMessageSize) throw new OversizeError(total, this.#maxMessageSize);
    if (chunk.length > total) {
      throw new ProtocolError("Cannot decode record: message longer than declared");
    }
    if (chunk.length === total) return message(text, time, chunk.slice());
    // The buffer grows as the bytes arrive: a declared total reserves nothing.
    this.#assembly = { text, time, total, chunks: [chunk.slice()], fill: chunk.length };
    return undefined;
  }

  #continue(body: Bytes): RecordEvent | undefined {
    const assembly = this.#assembly;
    if (assembly === undefined) {
      throw new ProtocolError("Cannot decode record: continuation outside a message");
    }
    if (body.length === 0 || assembly.fill + body.length > assembly.total) {
      throw new ProtocolError("Cannot decode record: continuation longer than declared");
    }
    assembly.chunks.push(body);
    assembly.fill += body.length;
    if (assembly.fill < assembly.total) return undefined;
    this.#assembly = undefined;
    return message(assembly.text, assembly.time, concat(...assembly.chunks));
  }

  #close(body: Bytes): RecordEvent {
    if (this.#assembly !== undefined) {
      throw new ProtocolError("Cannot decode record: close inside a message");
    }
    if (body.length < 1) throw new ProtocolError("Cannot decode record: a close needs a code");
    if (body.length - 1 > MAX_CLOSE_REASON) {
      throw new ProtocolError(
        `Cannot decode record: a close reason is at most ${MAX_CLOSE_REASON} bytes, got ${
          body.length - 1
        }`,
      );
    }
    this.#closed = true;
    return { kind: "close", code: body[0], reason: decodeText(body.subarray(1)) };
  }
}

function message(text: boolean, time: number, bytes: Bytes): RecordEvent {
  return { kind: "message", time, data: text ? decodeText(bytes) : bytes, size: bytes.length };
}

function decodeText(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (error) {
    throw new ProtocolError("Cannot decode record: text is not valid UTF-8", { cause: error });
  }
}
