// Copyright 2026 the aesm authors. MIT license.
/**
 * Runs the aesm handshake over a TCP connection (`PROTOCOL.md`, "Connection
 * establishment"), for either side. Private.
 *
 * @module
 */

import { type Bytes, concat, EMPTY, equal } from "../_crypto/bytes.ts";
import {
  type CryptoChoice,
  DEFAULT_CHOICE,
  hash,
  suiteFor,
  TAGLEN,
} from "../_crypto/primitives.ts";
import { createHandshakeState } from "../_noise/handshake_state.ts";
import type { CipherState, KeyPair } from "../_noise/cipher_state.ts";
import {
  AuthenticationError,
  ProtocolError,
  RefusedError,
  type RefuseReason,
  TimeoutError,
} from "../errors.ts";
import { encodeFrame, encodeFrameHeader, type Frame, FrameType } from "../_wire/frame_format.ts";
import type { HandshakeError, HandshakeState } from "../_noise/handshake_state.ts";
import { FrameReader } from "../_wire/frame_reader.ts";
import { sendAndClose, type Transport } from "../_transport/transport.ts";

/** The preamble's magic: ASCII "aesm". */
export const MAGIC = new Uint8Array([0x61, 0x65, 0x73, 0x6d]);
/** The wire protocol version this code speaks. */
export const VERSION = 1;
/** Length of the client's preamble. */
export const PREAMBLE_LENGTH = 16;
/** The Noise protocols, by the preamble's protocol byte (`01`, XXpsk3, is retired). */
export const PROTOCOLS: Readonly<Record<number, string>> = {
  0x00: "Noise_XX_25519_AESGCM_SHA256",
  0x02: "Noise_XXpsk0_25519_AESGCM_SHA256",
};
/** The preamble's protocol byte without and with a psk. */
export const PROTOCOL_BYTE = { plain: 0x00, psk: 0x02 } as const;
/** The retired protocol byte of `Noise_XXpsk3_25519_AESGCM_SHA256`: always refused. */
export const RETIRED_PSK3_BYTE = 0x01;
/** The highest protocol byte defined. */
const MAX_PROTOCOL_BYTE = 0x02;

/**
 * The smallest `max_message_size` a peer may advertise: 64 KiB, what one
 * frame holds, so it costs a receiver no more memory than the frame buffer it
 * already has, and any message up to it reaches any conforming peer.
 */
export const MIN_MAX_MESSAGE_SIZE = 64 * 1024;

/** Exact length of message 1 (`-> e`, empty payload): with XX, and with XXpsk0 (a tag). */
export const MESSAGE1_LENGTH = { plain: 32, psk: 48 } as const;
/** Shortest message 2: `e` (32), encrypted `s` (48), parameters (4) and their tag (16). */
export const MIN_MESSAGE2_LENGTH = 32 + 48 + 4 + 16;
/** Shortest message 3: encrypted `s` (48), parameters (4) and their tag (16). */
export const MIN_MESSAGE3_LENGTH = 48 + 4 + 16;

/** Refuse codes on the wire, by reason. */
export const REFUSE_CODES: Record<Exclude<RefuseReason, "aborted">, number> = {
  malformed: 0x01,
  version: 0x02,
  "protocol-mismatch": 0x03,
  "application-mismatch": 0x04,
  "handshake-failed": 0x05,
  "psk-mismatch": 0x06,
  unauthorized: 0x07,
  "key-rejected": 0x08,
  "server-full": 0x09,
  timeout: 0x0a,
  "server-busy": 0x0b,
  "too-many-from-address": 0x0c,
};

const AUTHENTICATION_REASONS: ReadonlySet<RefuseReason> = new Set([
  "psk-mismatch",
  "unauthorized",
  "key-rejected",
]);
const MAX_REFUSE_DETAIL = 256;

/** What both sides configure for the handshake. */
export interface HandshakeConfig {
  readonly applicationName: string;
  readonly keyPair: KeyPair;
  readonly psk: Bytes | undefined;
  readonly maxMessageSize: number;
  /** The crypto backends: `"webcrypto"` forces the portable path. */
  readonly crypto?: CryptoChoice;
}

/** A finished handshake, ready for transport. */
export interface Established {
  /** The reader, with any frames that came after the handshake's. */
  readonly reader: FrameReader;
  readonly send: CipherState;
  readonly receive: CipherState;
  readonly remotePublicKey: Bytes;
  readonly handshakeHash: Bytes;
  readonly peerMaxMessageSize: number;
}

/** A handshake error that says which refusal to send the peer. */
function refusal(reason: RefuseReason, message: string, cause?: unknown): HandshakeError {
  const options = cause === undefined ? { reason } : { reason, cause };
  return AUTHENTICATION_REASONS.has(reason)
    ? new AuthenticationError(message, options)
    : new RefusedError(message, options);
}

// Refusals that came from the peer: a side that receives one closes without answering.
const received = new WeakSet<object>();

/** Whether `error` is a refusal the peer sent (never answered with one of ours). */
export function isReceivedRefusal(error: unknown): boolean {
  return typeof error === "object" && error !== null && received.has(error);
}

/** Encodes a Refuse frame. */
export function encodeRefuse(reason: RefuseReason, detail = ""): Bytes {
  const code = reason === "aborted" ? REFUSE_CODES.malformed : REFUSE_CODES[reason];
  const text = new TextEncoder().encode(detail).subarray(0, MAX_REFUSE_DETAIL);
  return encodeFrame(FrameType.Refuse, concat(new Uint8Array([code]), text));
}

function decodeRefuse(body: Bytes, fromServer: boolean): HandshakeError {
  const entry = Object.entries(REFUSE_CODES).find(([, code]) => code === body[0]);
  const reason = (entry?.[0] ?? "malformed") as RefuseReason;
  const detail = new TextDecoder().decode(body.subarray(1, 1 + MAX_REFUSE_DETAIL));
  const who = fromServer ? "the server" : "the client";
  const error = refusal(
    reason,
    `Cannot complete handshake: ${who} refused (${reason})${detail ? `: ${detail}` : ""}`,
  );
  received.add(error);
  return error;
}

/** The preamble for this configuration. */
export async function encodePreamble(config: HandshakeConfig): Promise<Bytes> {
  const tag = await applicationTag(config.applicationName);
  const protocol = config.psk ? PROTOCOL_BYTE.psk : PROTOCOL_BYTE.plain;
  return concat(MAGIC, new Uint8Array([VERSION, protocol, 0, 0]), tag);
}

// Application names are few and fixed by configuration: one SHA-256 each,
// not one per handshake (a bounded cache, in case a program makes many).
const tags = new Map<string, Promise<Bytes>>();
const MAX_TAGS = 64;

function applicationTag(name: string): Promise<Bytes> {
  let tag = tags.get(name);
  if (tag === undefined) {
    if (tags.size >= MAX_TAGS) tags.clear();
    tag = hash(new TextEncoder().encode(name)).then((digest) => digest.slice(0, 8));
    tags.set(name, tag);
  }
  return tag;
}

export function prologue(preambleBytes: Bytes, config: HandshakeConfig): Bytes {
  return concat(preambleBytes, new TextEncoder().encode(config.applicationName));
}

function encodeParams(config: HandshakeConfig): Bytes {
  const params = new Uint8Array(4);
  new DataView(params.buffer).setUint32(0, config.maxMessageSize);
  return params;
}

function decodeParams(payload: Bytes): number {
  if (payload.length < 4) {
    throw refusal("malformed", "Cannot complete handshake: the peer's parameters are too short");
  }
  const maxMessageSize = new DataView(payload.buffer, payload.byteOffset).getUint32(0);
  if (maxMessageSize < MIN_MAX_MESSAGE_SIZE) {
    throw refusal(
      "malformed",
      `Cannot complete handshake: the peer's max_message_size ${maxMessageSize} is below the floor of ${MIN_MAX_MESSAGE_SIZE}`,
    );
  }
  return maxMessageSize;
}

async function createState(
  config: HandshakeConfig,
  initiator: boolean,
  preambleBytes: Bytes,
): Promise<HandshakeState> {
  return await createHandshakeState({
    protocolName: PROTOCOLS[config.psk ? PROTOCOL_BYTE.psk : PROTOCOL_BYTE.plain],
    initiator,
    prologue: prologue(preambleBytes, config),
    staticPrivateKey: config.keyPair.privateKey,
    psks: config.psk ? [config.psk] : [],
  }, suiteFor(config.crypto ?? DEFAULT_CHOICE));
}

class Handshake {
  readonly reader: FrameReader;

  constructor(readonly conn: Transport, preambleLength: number) {
    this.reader = new FrameReader(conn, preambleLength);
  }

  async read(expected: string): Promise<Frame> {
    let frame: Frame | undefined;
    try {
      frame = await this.reader.next();
    } catch (error) {
      const reason = error instanceof ProtocolError && !error.truncated ? "malformed" : "aborted";
      throw refusal(
        reason,
        `Cannot complete handshake: the connection failed while waiting for ${expected}`,
        error,
      );
    }
    if (frame === undefined) {
      throw refusal(
        "aborted",
        `Cannot complete handshake: the peer closed the connection before ${expected}`,
      );
    }
    return frame;
  }

  async write(bytes: Uint8Array): Promise<void> {
    await this.conn.write(bytes);
  }

  /**
   * Sends a refusal for `error` if it names one and closes, best effort. A
   * refusal the peer sent is not answered: the side that receives one closes.
   */
  async refuse(error: unknown): Promise<void> {
    const reason = (error as { reason?: RefuseReason }).reason;
    if (reason === undefined || reason === "aborted" || reason === "timeout") return;
    if (isReceivedRefusal(error)) return;
    await sendAndClose(this.conn, encodeRefuse(reason));
  }

  done(
    send: CipherState,
    receive: CipherState,
    hs: HandshakeState,
    peerMaxMessageSize: number,
  ): Established {
    return {
      reader: this.reader,
      send,
      receive,
      remotePublicKey: hs.remoteStaticPublicKey!,
      handshakeHash: hs.handshakeHash,
      peerMaxMessageSize,
    };
  }
}

/** Options only the client has. */
export interface ClientHandshakeConfig extends HandshakeConfig {
  readonly serverPublicKey: Bytes | undefined;
}

/**
 * Runs the initiator's side, up to and including the server's acceptance: a
 * bad message 2 or a bad acceptance gets a Refuse frame. On failure the
 * connection is left for the caller to close.
 */
export async function establishClient(
  conn: Transport,
  config: ClientHandshakeConfig,
): Promise<Established> {
  const io = new Handshake(conn, 0);
  const preambleBytes = await encodePreamble(config);
  const hs = await createState(config, true, preambleBytes);
  await io.write(concat(preambleBytes, encodeFrame(FrameType.Handshake, await hs.writeMessage())));
  try {
    const peerMaxMessageSize = decodeParams(
      await readHandshake(io, hs, "the server's handshake message", {
        fromServer: true,
        minLength: MIN_MESSAGE2_LENGTH,
      }),
    );
    if (config.serverPublicKey && !equal(hs.remoteStaticPublicKey!, config.serverPublicKey)) {
      throw refusal("key-rejected", keyRejected(hs.remoteStaticPublicKey!));
    }
    await io.write(encodeFrame(FrameType.Handshake, await hs.writeMessage(encodeParams(config))));
    const { send, receive } = await hs.split();
    await readAcceptance(io, receive);
    return io.done(send, receive, hs, peerMaxMessageSize);
  } catch (error) {
    await io.refuse(error);
    throw error;
  }
}

// The acceptance is part of the handshake: a Refuse frame in its place is a
// refusal, and a bad one is refused in turn.
async function readAcceptance(io: Handshake, receive: CipherState): Promise<void> {
  const accept = await io.read("the server's acceptance");
  if (accept.type === FrameType.Refuse) throw decodeRefuse(accept.body, true);
  if (accept.type !== FrameType.Transport) {
    throw refusal(
      "malformed",
      `Cannot complete handshake: expected the server's acceptance (frame type 3), got frame type ${accept.type}`,
    );
  }
  if (accept.body.length !== TAGLEN) {
    throw refusal(
      "malformed",
      "Cannot complete handshake: the server's acceptance is not an empty transport message",
    );
  }
  try {
    await receive.decryptWithAd(accept.header, accept.body);
  } catch (error) {
    throw refusal(
      "handshake-failed",
      "Cannot complete handshake: the server's acceptance failed authentication",
      error,
    );
  }
}

function keyRejected(key: Bytes): string {
  const hex = Array.from(key.subarray(0, 8), (byte) => byte.toString(16).padStart(2, "0"));
  return `Cannot connect: the server's public key (${hex.join("")}...) is not the pinned one: ` +
    "the server's key changed, or another server answered; a server keeps one key across " +
    "restarts when started with the keyFile option " +
    '(ServerNetwork.listen({ keyFile: "server.key" })): restore its old key file, or pin the ' +
    "key it has now";
}

/** Options only the server has. */
export interface ServerHandshakeConfig extends HandshakeConfig {
  readonly authorize: (publicKey: Bytes) => boolean | Promise<boolean>;
}

/** Runs the responder's side. On failure the connection is left for the caller to close. */
export async function establishServer(
  conn: Transport,
  config: ServerHandshakeConfig,
): Promise<Established> {
  const io = new Handshake(conn, PREAMBLE_LENGTH);
  try {
    const first = await io.read("the preamble");
    const hs = await createState(config, false, await checkPreamble(first.body, config));
    // With a psk, message 1's tag is checked before this side makes an
    // ephemeral key or does any DH: a client without the psk costs only
    // hashing and one AES-GCM check.
    await readHandshake(io, hs, "the client's first handshake message", {
      length: config.psk ? MESSAGE1_LENGTH.psk : MESSAGE1_LENGTH.plain,
      failure: config.psk ? "psk-mismatch" : "handshake-failed",
    });
    await io.write(encodeFrame(FrameType.Handshake, await writeMessage2(hs, config)));
    const params = await readHandshake(io, hs, "the client's last handshake message", {
      minLength: MIN_MESSAGE3_LENGTH,
    });
    const peerMaxMessageSize = decodeParams(params);
    if (!await config.authorize(hs.remoteStaticPublicKey!)) {
      throw refusal("unauthorized", "Cannot accept client: its public key is not authorized");
    }
    const { send, receive } = await hs.split();
    const header = encodeFrameHeader(FrameType.Transport, 16);
    await io.write(concat(header, await send.encryptWithAd(header, EMPTY)));
    return io.done(send, receive, hs, peerMaxMessageSize);
  } catch (error) {
    await io.refuse(error);
    throw error;
  }
}

// Message 2's DH is the first use of the client's ephemeral key: a key X25519
// rejects (a low-order point) fails there, and is the client's failure.
async function writeMessage2(hs: HandshakeState, config: HandshakeConfig): Promise<Bytes> {
  try {
    return await hs.writeMessage(encodeParams(config));
  } catch (error) {
    throw refusal(
      "handshake-failed",
      "Cannot complete handshake: the client's ephemeral key is invalid",
      error,
    );
  }
}

async function checkPreamble(body: Bytes, config: HandshakeConfig): Promise<Bytes> {
  if (!equal(body.subarray(0, 4), MAGIC)) {
    throw refusal("aborted", "Cannot accept client: not an aesm client (bad magic)");
  }
  if (body[4] !== VERSION) {
    throw refusal("version", `Cannot accept client: unsupported version ${body[4]}`);
  }
  if (body[5] > MAX_PROTOCOL_BYTE || body[6] !== 0 || body[7] !== 0) {
    throw refusal("malformed", "Cannot accept client: malformed preamble");
  }
  const mine = await encodePreamble(config);
  if (body[5] !== mine[5]) {
    const detail = body[5] === RETIRED_PSK3_BYTE
      ? "the client speaks the retired XXpsk3 protocol (byte 01)"
      : config.psk
      ? "the server requires a pre-shared key"
      : "the server uses no pre-shared key";
    throw refusal("protocol-mismatch", `Cannot accept client: ${detail}`);
  }
  if (!equal(body.subarray(8), mine.subarray(8))) {
    throw refusal("application-mismatch", "Cannot accept client: it names another application");
  }
  return body;
}

/** What a handshake message must look like, and the refusal for one that fails authentication. */
interface Expect {
  readonly fromServer?: boolean;
  /** The exact length, or the least one: shorter (or other) is `malformed`. */
  readonly length?: number;
  readonly minLength?: number;
  /** @default {"handshake-failed"} */
  readonly failure?: "handshake-failed" | "psk-mismatch";
}

async function readHandshake(
  io: Handshake,
  hs: HandshakeState,
  expected: string,
  expect: Expect,
): Promise<Bytes> {
  const frame = await io.read(expected);
  if (frame.type === FrameType.Refuse) throw decodeRefuse(frame.body, expect.fromServer ?? false);
  if (frame.type !== FrameType.Handshake) {
    throw refusal(
      "malformed",
      `Cannot complete handshake: expected ${expected}, got frame type ${frame.type}`,
    );
  }
  const size = frame.body.length;
  if (
    (expect.length !== undefined && size !== expect.length) ||
    (expect.minLength !== undefined && size < expect.minLength)
  ) {
    const want = expect.length ?? `at least ${expect.minLength}`;
    throw refusal(
      "malformed",
      `Cannot complete handshake: ${expected} is ${size} bytes, expected ${want}`,
    );
  }
  try {
    return await hs.readMessage(frame.body);
  } catch (error) {
    const reason = expect.failure ?? "handshake-failed";
    const why = reason === "psk-mismatch" ? " (wrong pre-shared key?)" : "";
    throw refusal(
      reason,
      `Cannot complete handshake: ${expected} failed authentication${why}`,
      error,
    );
  }
}

/**
 * Runs `step` with a deadline and an optional signal. On either, the signal
 * given to `step` aborts and the call rejects with a `TimeoutError` or
 * `signal.reason`; the caller then closes the connection, which ends the step.
 */
export async function withDeadline<T>(
  timeout: number,
  signal: AbortSignal | undefined,
  step: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (signal?.aborted) throw signal.reason;
  const controller = new AbortController();
  const { promise: stopped, reject } = Promise.withResolvers<never>();
  const stop = (reason: unknown) => {
    controller.abort(reason);
    reject(reason);
  };
  const timer = setTimeout(
    () => stop(new TimeoutError(`Cannot complete handshake: no answer within ${timeout} ms`)),
    timeout,
  );
  const onAbort = () => stop(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const work = step(controller.signal);
  try {
    return await Promise.race([work, stopped]);
  } catch (error) {
    work.catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}
