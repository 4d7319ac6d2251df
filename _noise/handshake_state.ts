// Copyright 2026 the aesm authors. MIT license.
/**
 * The Noise handshake (revision 34, section 5): `SymmetricState` and
 * `HandshakeState`, and the package's own way to create a handshake on a
 * given suite. `handshake.ts` re-exports the public names only. Private.
 *
 * @module
 */

import { assertBytes, concat, copy, EMPTY } from "../_crypto/bytes.ts";
import { parseProtocolName, type Pattern, type Token } from "./patterns.ts";
import {
  defaultSuite,
  type DhKeyPair,
  DHLEN,
  HASHLEN,
  type Suite,
  TAGLEN,
} from "../_crypto/primitives.ts";
import { type CipherState, createCipherState } from "./cipher_state.ts";

/**
 * `HandshakeState.create` with a given suite, which its ciphers inherit; set
 * by HandshakeState's static block. `handshake.ts` does not re-export it.
 */
export let createHandshakeState: (
  options: HandshakeStateOptions,
  suite: Suite,
) => Promise<HandshakeState>;

/**
 * The largest Noise message, handshake or transport, in bytes.
 *
 * @example A handshake message may not exceed it
 * ```ts
 * import assert from "node:assert/strict";
 * import { HandshakeState, MAX_MESSAGE_LENGTH } from "@aesm/aesm/handshake";
 *
 * const protocolName = "Noise_NN_25519_AESGCM_SHA256";
 * const initiator = await HandshakeState.create({ protocolName, initiator: true });
 * await assert.rejects(initiator.writeMessage(new Uint8Array(MAX_MESSAGE_LENGTH)), RangeError);
 * // The first NN message is a 32-byte ephemeral key and the payload in the clear.
 * const message = await initiator.writeMessage(new Uint8Array(MAX_MESSAGE_LENGTH - 32));
 * assert.equal(message.length, MAX_MESSAGE_LENGTH);
 * ```
 */
export const MAX_MESSAGE_LENGTH = 65535;

/**
 * Thrown when a handshake message is rejected: malformed, too short or too
 * long, or failing authentication. The underlying error is in `cause`.
 *
 * @example Telling a rejected message apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { HandshakeError, HandshakeState } from "@aesm/aesm/handshake";
 *
 * const responder = await HandshakeState.create({
 *   protocolName: "Noise_NN_25519_AESGCM_SHA256",
 *   initiator: false,
 * });
 * await assert.rejects(responder.readMessage(new Uint8Array(5)), HandshakeError);
 * ```
 */
export class HandshakeError extends Error {
  /**
   * Creates the error; `options.cause` holds what went wrong underneath.
   *
   * @param message A sentence for people.
   * @param options The `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandshakeError";
  }
}

let snapshotOf: (state: SymmetricState) => () => void;
let initializeSymmetric: (protocolName: string, suite: Suite) => Promise<SymmetricState>;

/**
 * A Noise `SymmetricState` (section 5.2): the chaining key `ck`, the
 * handshake hash `h`, and a `CipherState`.
 *
 * @example Hashing a prologue
 * ```ts
 * import assert from "node:assert/strict";
 * import { SymmetricState } from "@aesm/aesm/handshake";
 *
 * const state = await SymmetricState.initialize("Noise_NN_25519_AESGCM_SHA256");
 * await state.mixHash(new TextEncoder().encode("prologue"));
 * assert.equal(state.getHandshakeHash().length, 32);
 * ```
 */
export class SymmetricState {
  #suite: Suite;
  #ck: Uint8Array<ArrayBuffer>;
  #h: Uint8Array<ArrayBuffer>;
  #cipher: CipherState;

  static {
    initializeSymmetric = async (protocolName, suite) => {
      const name = new TextEncoder().encode(protocolName);
      const h = name.length <= HASHLEN
        ? concat(name, new Uint8Array(HASHLEN - name.length))
        : await suite.hash(name);
      return new SymmetricState(h, suite, await createCipherState(undefined, suite));
    };
    snapshotOf = (state) => {
      const { ck, h, cipher } = { ck: state.#ck, h: state.#h, cipher: state.#cipher };
      const nonce = cipher.nonce;
      return () => {
        state.#ck = ck;
        state.#h = h;
        state.#cipher = cipher;
        cipher.setNonce(nonce);
      };
    };
  }

  private constructor(h: Uint8Array<ArrayBuffer>, suite: Suite, cipher: CipherState) {
    this.#suite = suite;
    this.#h = h;
    this.#ck = copy(h);
    this.#cipher = cipher;
  }

  /**
   * Noise `InitializeSymmetric(protocol_name)`.
   *
   * @param protocolName The full protocol name.
   * @returns The state with `h` and `ck` set from the name.
   */
  static async initialize(protocolName: string): Promise<SymmetricState> {
    return await initializeSymmetric(protocolName, defaultSuite());
  }

  /**
   * Noise `MixKey(input_key_material)`.
   *
   * @param inputKeyMaterial Bytes to mix into the chaining key.
   */
  async mixKey(inputKeyMaterial: Uint8Array): Promise<void> {
    const ikm = copy(inputKeyMaterial);
    const [ck, tempK] = await this.#suite.hkdf(this.#ck, ikm, 2);
    ikm.fill(0);
    this.#ck = ck;
    this.#cipher = await this.#newCipher(tempK);
  }

  /**
   * Noise `MixHash(data)`.
   *
   * @param data Bytes to mix into the handshake hash.
   */
  async mixHash(data: Uint8Array): Promise<void> {
    this.#h = await this.#suite.hash(concat(this.#h, data));
  }

  /**
   * Noise `MixKeyAndHash(input_key_material)`, used for pre-shared keys.
   *
   * @param inputKeyMaterial Bytes to mix into the chaining key and the hash.
   */
  async mixKeyAndHash(inputKeyMaterial: Uint8Array): Promise<void> {
    const [ck, tempH, tempK] = await this.#suite.hkdf(this.#ck, copy(inputKeyMaterial), 3);
    this.#ck = ck;
    await this.mixHash(tempH);
    this.#cipher = await this.#newCipher(tempK);
  }

  /**
   * Noise `GetHandshakeHash()`.
   *
   * @returns A copy of `h`.
   */
  getHandshakeHash(): Uint8Array<ArrayBuffer> {
    return copy(this.#h);
  }

  /**
   * Noise `EncryptAndHash(plaintext)`.
   *
   * @param plaintext The bytes to encrypt with `h` as associated data.
   * @returns The ciphertext, or the plaintext while there is no key.
   */
  async encryptAndHash(plaintext: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    const ciphertext = await this.#cipher.encryptWithAd(this.#h, plaintext);
    await this.mixHash(ciphertext);
    return ciphertext;
  }

  /**
   * Noise `DecryptAndHash(ciphertext)`.
   *
   * @param ciphertext The bytes to decrypt with `h` as associated data.
   * @returns The plaintext.
   * @throws {DecryptionError} If authentication fails.
   */
  async decryptAndHash(ciphertext: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    const plaintext = await this.#cipher.decryptWithAd(this.#h, ciphertext);
    await this.mixHash(ciphertext);
    return plaintext;
  }

  /**
   * Noise `HasKey()` of the inner `CipherState`.
   *
   * @returns Whether it has a key.
   */
  hasKey(): boolean {
    return this.#cipher.hasKey();
  }

  /**
   * Noise `Split()`: the two transport `CipherState`s, initiator-to-responder
   * first. The chaining key is erased afterwards.
   *
   * @returns `[c1, c2]`.
   */
  async split(): Promise<[CipherState, CipherState]> {
    const [k1, k2] = await this.#suite.hkdf(this.#ck, EMPTY, 2);
    const pair: [CipherState, CipherState] = [await this.#newCipher(k1), await this.#newCipher(k2)];
    this.#ck.fill(0);
    this.#cipher = await this.#newCipher(undefined);
    return pair;
  }

  // A cipher on this state's suite; the raw key is zeroed once imported.
  async #newCipher(key: Uint8Array<ArrayBuffer> | undefined): Promise<CipherState> {
    try {
      return await createCipherState(key, this.#suite);
    } finally {
      key?.fill(0);
    }
  }
}

/** Options of {@linkcode HandshakeState.create}. */
export interface HandshakeStateOptions {
  /** The full protocol name, such as `Noise_XXpsk3_25519_AESGCM_SHA256`. */
  protocolName: string;
  /** Whether this side sends the first message. */
  initiator: boolean;
  /**
   * Bytes both sides must agree on, hashed in before the first message.
   *
   * @default {new Uint8Array(0)}
   */
  prologue?: Uint8Array;
  /** This side's static private key: a raw 32-byte X25519 scalar. */
  staticPrivateKey?: Uint8Array;
  /** A fixed ephemeral private key. For test vectors only: reusing one destroys security. */
  ephemeralPrivateKey?: Uint8Array;
  /** The peer's static public key, for patterns where it is known in advance. */
  remoteStaticPublicKey?: Uint8Array;
  /**
   * Pre-shared 32-byte keys, in the order the pattern's psk tokens use them.
   *
   * @default {[]}
   */
  psks?: Uint8Array[];
}

/** The two transport `CipherState`s of one side, named for that side. */
export interface TransportCiphers {
  /** Encrypts what this side sends. */
  send: CipherState;
  /** Decrypts what this side receives. */
  receive: CipherState;
}

/**
 * A Noise `HandshakeState` (section 5.3).
 *
 * `writeMessage` and `readMessage` are transactional: a call that throws
 * leaves the state exactly as it was before the call, so a rejected message
 * can be reported and the handshake abandoned (or, over a lossy transport,
 * continued with the next message).
 *
 * @example A psk handshake, then transport messages
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKeyPair, HandshakeState } from "@aesm/aesm/noise";
 *
 * const psk = crypto.getRandomValues(new Uint8Array(32));
 * const protocolName = "Noise_XXpsk3_25519_AESGCM_SHA256";
 * const client = await HandshakeState.create({
 *   protocolName,
 *   initiator: true,
 *   staticPrivateKey: (await generateKeyPair()).privateKey,
 *   psks: [psk],
 * });
 * const server = await HandshakeState.create({
 *   protocolName,
 *   initiator: false,
 *   staticPrivateKey: (await generateKeyPair()).privateKey,
 *   psks: [psk],
 * });
 * await server.readMessage(await client.writeMessage());
 * await client.readMessage(await server.writeMessage());
 * await server.readMessage(await client.writeMessage());
 * assert.ok(client.isComplete && server.isComplete);
 *
 * const c = await client.split();
 * const s = await server.split();
 * const ad = new Uint8Array(0);
 * const sealed = await c.send.encryptWithAd(ad, new TextEncoder().encode("hello"));
 * assert.equal(new TextDecoder().decode(await s.receive.decryptWithAd(ad, sealed)), "hello");
 * ```
 */
export class HandshakeState {
  #suite: Suite;
  #symmetric: SymmetricState;
  #pattern: Pattern;
  #initiator: boolean;
  #s: DhKeyPair | undefined;
  #e: DhKeyPair | undefined;
  #fixedEphemeral: Uint8Array | undefined;
  #rs: Uint8Array<ArrayBuffer> | undefined;
  #re: Uint8Array<ArrayBuffer> | undefined;
  #psks: Uint8Array<ArrayBuffer>[];
  #pskIndex = 0;
  #messageIndex = 0;
  #split = false;
  #busy = false;

  static {
    createHandshakeState = (options, suite) => HandshakeState.#create(options, suite);
  }

  private constructor(
    suite: Suite,
    symmetric: SymmetricState,
    pattern: Pattern,
    options: HandshakeStateOptions,
    s: DhKeyPair | undefined,
  ) {
    this.#suite = suite;
    this.#symmetric = symmetric;
    this.#pattern = pattern;
    this.#initiator = options.initiator;
    this.#s = s;
    this.#fixedEphemeral = options.ephemeralPrivateKey;
    this.#rs = options.remoteStaticPublicKey && copy(options.remoteStaticPublicKey);
    this.#psks = (options.psks ?? []).map(copy);
  }

  /**
   * Noise `Initialize()`: parses the protocol name, checks the keys the
   * pattern needs, and hashes the prologue and pre-message keys.
   *
   * @param options The protocol, role and keys.
   * @returns A state ready for the first message.
   * @throws {TypeError} If the protocol name is malformed or unsupported, or a key the pattern
   * needs is missing.
   * @throws {RangeError} If a key is not 32 bytes, or the psks do not match the pattern's psk
   * tokens.
   */
  static async create(options: HandshakeStateOptions): Promise<HandshakeState> {
    return await HandshakeState.#create(options, defaultSuite());
  }

  static async #create(options: HandshakeStateOptions, suite: Suite): Promise<HandshakeState> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("Cannot create handshake: expected an options object");
    }
    const { protocolName, initiator } = options;
    const { pattern } = parseProtocolName(protocolName);
    if (typeof initiator !== "boolean") {
      throw new TypeError("Cannot create handshake: initiator must be a boolean");
    }
    checkKeys(options, pattern);
    const s = options.staticPrivateKey && await suite.importDhKeyPair(options.staticPrivateKey);
    const symmetric = await initializeSymmetric(protocolName, suite);
    await symmetric.mixHash(options.prologue ?? EMPTY);
    const state = new HandshakeState(suite, symmetric, pattern, options, s);
    await state.#mixPreMessages();
    return state;
  }

  /** Whether every handshake message has been written or read. */
  get isComplete(): boolean {
    return this.#messageIndex === this.#pattern.messages.length;
  }

  /**
   * The handshake hash `h`, for channel binding.
   *
   * @throws {TypeError} If the handshake is not complete.
   */
  get handshakeHash(): Uint8Array<ArrayBuffer> {
    if (!this.isComplete) {
      throw new TypeError("Cannot read handshake hash: the handshake is not complete");
    }
    return this.#symmetric.getHandshakeHash();
  }

  /** The peer's static public key, once known. */
  get remoteStaticPublicKey(): Uint8Array<ArrayBuffer> | undefined {
    return this.#rs && copy(this.#rs);
  }

  /** This side's static public key, if it has one. */
  get localStaticPublicKey(): Uint8Array<ArrayBuffer> | undefined {
    return this.#s && copy(this.#s.publicKey);
  }

  /** Whether the next message is this side's to write. */
  get isMyTurn(): boolean {
    return !this.isComplete && this.#sender(this.#messageIndex) === this.#initiator;
  }

  /**
   * Noise `WriteMessage(payload, message_buffer)`.
   *
   * @param payload Bytes to send with the message; encrypted once a key is set.
   * @returns The handshake message.
   * @throws {TypeError} If the handshake is complete, a message from the peer is due, or another
   * call is in progress.
   * @throws {RangeError} If the message would exceed {@linkcode MAX_MESSAGE_LENGTH} bytes; the
   * state is unchanged.
   */
  async writeMessage(payload?: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    payload ??= EMPTY;
    assertBytes(payload, "payload");
    this.#checkTurn("write", true);
    return await this.#transaction(async () => {
      const parts: Uint8Array[] = [];
      for (const token of this.#pattern.messages[this.#messageIndex]) {
        await this.#writeToken(token, parts);
      }
      parts.push(await this.#symmetric.encryptAndHash(payload));
      const message = concat(...parts);
      if (message.length > MAX_MESSAGE_LENGTH) {
        throw new RangeError(
          `Cannot write message: ${message.length} bytes exceeds the Noise limit of ${MAX_MESSAGE_LENGTH}`,
        );
      }
      this.#messageIndex++;
      return message;
    });
  }

  /**
   * Noise `ReadMessage(message, payload_buffer)`.
   *
   * @param message The peer's handshake message.
   * @returns The decrypted payload.
   * @throws {TypeError} If the handshake is complete, it is this side's turn to write, or another
   * call is in progress.
   * @throws {HandshakeError} If the message is malformed, too long or fails authentication; the
   * state is unchanged.
   */
  async readMessage(message: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    assertBytes(message, "message");
    this.#checkTurn("read", false);
    if (message.length > MAX_MESSAGE_LENGTH) {
      throw new HandshakeError(
        `Cannot read message: ${message.length} bytes exceeds the Noise limit of ${MAX_MESSAGE_LENGTH}`,
      );
    }
    return await this.#transaction(async () => {
      const reader = { bytes: copy(message), offset: 0 };
      for (const token of this.#pattern.messages[this.#messageIndex]) {
        await this.#readToken(token, reader);
      }
      const payload = await this.#decrypt(reader.bytes.subarray(reader.offset), "payload");
      this.#messageIndex++;
      return payload;
    });
  }

  /**
   * Noise `Split()`, named for this side: `send` encrypts what it sends and
   * `receive` decrypts what it receives. Erases the handshake's secrets.
   *
   * @returns The transport cipher states.
   * @throws {TypeError} If the handshake is not complete, or was already split.
   */
  async split(): Promise<TransportCiphers> {
    if (!this.isComplete) throw new TypeError("Cannot split: the handshake is not complete");
    if (this.#split) throw new TypeError("Cannot split: the handshake was already split");
    this.#split = true;
    const [c1, c2] = await this.#symmetric.split();
    this.#e = undefined;
    this.#psks.forEach((psk) => psk.fill(0));
    return this.#initiator ? { send: c1, receive: c2 } : { send: c2, receive: c1 };
  }

  async #mixPreMessages(): Promise<void> {
    const { initiatorPreMessage, responderPreMessage } = this.#pattern;
    for (
      const [tokens, fromInitiator] of [[initiatorPreMessage, true], [
        responderPreMessage,
        false,
      ]] as const
    ) {
      const mine = fromInitiator === this.#initiator;
      for (const token of tokens) {
        if (token === "s") await this.#symmetric.mixHash(mine ? this.#s!.publicKey : this.#rs!);
        else throw new TypeError(`Cannot use pattern: unsupported pre-message token ${token}`);
      }
    }
  }

  async #writeToken(token: Token, parts: Uint8Array[]): Promise<void> {
    switch (token) {
      case "e": {
        this.#e = this.#fixedEphemeral
          ? await this.#suite.importDhKeyPair(this.#fixedEphemeral)
          : await this.#suite.generateDhKeyPair();
        parts.push(this.#e.publicKey);
        await this.#mixEphemeral(this.#e.publicKey);
        return;
      }
      case "s":
        parts.push(await this.#symmetric.encryptAndHash(this.#s!.publicKey));
        return;
      case "psk":
        return await this.#mixPsk();
      default:
        return await this.#mixDh(token);
    }
  }

  async #readToken(
    token: Token,
    reader: { bytes: Uint8Array<ArrayBuffer>; offset: number },
  ): Promise<void> {
    switch (token) {
      case "e": {
        this.#re = take(reader, DHLEN, "ephemeral key");
        await this.#mixEphemeral(this.#re);
        return;
      }
      case "s": {
        const length = this.#symmetric.hasKey() ? DHLEN + TAGLEN : DHLEN;
        this.#rs = await this.#decrypt(take(reader, length, "static key"), "static key");
        return;
      }
      case "psk":
        return await this.#mixPsk();
      default:
        return await this.#mixDh(token);
    }
  }

  async #mixEphemeral(publicKey: Uint8Array<ArrayBuffer>): Promise<void> {
    await this.#symmetric.mixHash(publicKey);
    if (this.#pattern.psk) await this.#symmetric.mixKey(publicKey);
  }

  async #mixPsk(): Promise<void> {
    await this.#symmetric.mixKeyAndHash(this.#psks[this.#pskIndex++]);
  }

  // A DH token names the initiator's key first and the responder's second.
  async #mixDh(token: Token): Promise<void> {
    const [initiatorKey, responderKey] = token as "ee" | "es" | "se" | "ss";
    const local = this.#initiator ? initiatorKey : responderKey;
    const remote = this.#initiator ? responderKey : initiatorKey;
    const pair = local === "e" ? this.#e : this.#s;
    const publicKey = remote === "e" ? this.#re : this.#rs;
    if (pair === undefined || publicKey === undefined) {
      throw new HandshakeError(`Cannot perform ${token}: a key is missing`);
    }
    try {
      const secret = await this.#suite.dh(pair, publicKey);
      await this.#symmetric.mixKey(secret);
      secret.fill(0);
    } catch (error) {
      throw new HandshakeError(`Cannot perform ${token}: the peer's key is invalid`, {
        cause: error,
      });
    }
  }

  async #decrypt(
    ciphertext: Uint8Array<ArrayBuffer>,
    what: string,
  ): Promise<Uint8Array<ArrayBuffer>> {
    try {
      return await this.#symmetric.decryptAndHash(ciphertext);
    } catch (error) {
      throw new HandshakeError(`Cannot read ${what}: authentication failed`, { cause: error });
    }
  }

  #sender(index: number): boolean {
    return index % 2 === 0;
  }

  #checkTurn(action: "write" | "read", writing: boolean): void {
    if (this.#busy) {
      throw new TypeError(
        `Cannot ${action} message: another call on this handshake is in progress`,
      );
    }
    if (this.#split || this.isComplete) {
      throw new TypeError(`Cannot ${action} message: the handshake is complete`);
    }
    if (this.isMyTurn !== writing) {
      const due = writing ? "a message from the peer" : "a message from this side";
      throw new TypeError(`Cannot ${action} message: ${due} is due`);
    }
  }

  async #transaction<T>(step: () => Promise<T>): Promise<T> {
    this.#busy = true;
    const restore = snapshotOf(this.#symmetric);
    const saved = { e: this.#e, re: this.#re, rs: this.#rs, pskIndex: this.#pskIndex };
    try {
      return await step();
    } catch (error) {
      restore();
      ({ e: this.#e, re: this.#re, rs: this.#rs, pskIndex: this.#pskIndex } = saved);
      throw error;
    } finally {
      this.#busy = false;
    }
  }
}

function take(
  reader: { bytes: Uint8Array<ArrayBuffer>; offset: number },
  length: number,
  what: string,
): Uint8Array<ArrayBuffer> {
  if (reader.bytes.length - reader.offset < length) {
    throw new HandshakeError(`Cannot read ${what}: the message is too short`);
  }
  const out = reader.bytes.slice(reader.offset, reader.offset + length);
  reader.offset += length;
  return out;
}

function checkKeys(options: HandshakeStateOptions, pattern: Pattern): void {
  const { initiator } = options;
  const sends = (fromInitiator: boolean) => fromInitiator === initiator;
  const needsLocalStatic = pattern.initiatorPreMessage.includes("s") && initiator ||
    pattern.responderPreMessage.includes("s") && !initiator ||
    pattern.messages.some((tokens, i) => sends(i % 2 === 0) && tokens.includes("s"));
  const needsRemoteStatic = pattern.initiatorPreMessage.includes("s") && !initiator ||
    pattern.responderPreMessage.includes("s") && initiator;
  for (const [name, value] of Object.entries(options)) {
    if (name.endsWith("Key") && value !== undefined) assertBytes(value, name, DHLEN);
  }
  if (options.prologue !== undefined) assertBytes(options.prologue, "prologue");
  if (needsLocalStatic && options.staticPrivateKey === undefined) {
    throw new TypeError(`Cannot create handshake: ${options.protocolName} needs staticPrivateKey`);
  }
  if (needsRemoteStatic && options.remoteStaticPublicKey === undefined) {
    throw new TypeError(
      `Cannot create handshake: ${options.protocolName} needs remoteStaticPublicKey`,
    );
  }
  const pskCount = pattern.messages.flat().filter((token) => token === "psk").length;
  const psks = options.psks ?? [];
  if (!Array.isArray(psks)) throw new TypeError("Cannot create handshake: psks must be an array");
  if (psks.length !== pskCount) {
    throw new RangeError(
      `Cannot create handshake: ${options.protocolName} needs ${pskCount} psks, got ${psks.length}`,
    );
  }
  psks.forEach((psk, i) => assertBytes(psk, `psks[${i}]`, 32));
}
