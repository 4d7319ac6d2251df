// Copyright 2026 the aesm authors. MIT license.
/**
 * Checks of the options servers and clients share. Private.
 *
 * @module
 */

import { assertBytes, type Bytes, copy } from "../_crypto/bytes.ts";
import { generateKeyPair, type KeyPair, keyPairFromPrivateKey } from "../_noise/cipher_state.ts";
import {
  type ConnectionOptions,
  DEFAULT_HEARTBEAT_INTERVAL,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_MESSAGE_SIZE,
} from "./options.ts";
import { MIN_MAX_MESSAGE_SIZE } from "./establish.ts";
import { MIN_REKEY_INTERVAL } from "../_wire/frame_limits.ts";
import { type CryptoChoice, DEFAULT_CHOICE } from "../_crypto/primitives.ts";

/** The application name both sides use when none is given. */
export const DEFAULT_APPLICATION_NAME = "aesm";
/** Default handshake timeout, in milliseconds. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/** Checks a positive integer option, returning it or its default. */
export function positive(
  value: number | undefined,
  name: string,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot use option ${name}: expected an integer from 1 to ${max}, got ${describe(value)}`,
    );
  }
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new RangeError(
      `Cannot use option ${name}: expected an integer from 1 to ${max}, got ${value}`,
    );
  }
  return value;
}

/** Checks a port number. */
export function checkPort(port: unknown): number {
  if (typeof port !== "number") {
    throw new TypeError(
      `Cannot use port: expected an integer from 0 to 65535, got ${describe(port)}` +
        (typeof port === "string" ? " (convert it with Number())" : ""),
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot use port: expected an integer from 0 to 65535, got ${port}`);
  }
  return port;
}

/** Names a wrong value for an error message: its type, and its text if short. */
export function describe(value: unknown): string {
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (value === null || value === undefined) return String(value);
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return `${typeof value} ${String(value)}`;
}

/** Checks a hostname. */
export function checkHostname(hostname: unknown): string {
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError(
      `Cannot use hostname: expected a non-empty string, got ${describe(hostname)}`,
    );
  }
  return hostname;
}

/** Checks the application name. */
export function checkApplicationName(name: unknown): string {
  if (name === undefined) return DEFAULT_APPLICATION_NAME;
  if (typeof name !== "string" || name === "") {
    throw new TypeError("Cannot use applicationName: expected a non-empty string");
  }
  return name;
}

/** Checks a pre-shared key. */
export function checkPsk(psk: unknown): Bytes | undefined {
  if (psk === undefined) return undefined;
  assertBytes(psk, "psk", 32);
  return copy(psk);
}

/** Checks the largest message size: a peer refuses one below the protocol's floor. */
export function checkMaxMessageSize(value: number | undefined): number {
  return atLeast(
    value,
    "maxMessageSize",
    MIN_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    0xffff_ffff,
  );
}

/** Checks an integer option with a floor the protocol sets, returning it or its default. */
function atLeast(
  value: number | undefined,
  name: string,
  min: number,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot use option ${name}: expected an integer from ${min} to ${max}, got ${value}`,
    );
  }
  return value;
}

/**
 * Loads the given key pair (checking that its halves match), or the key file
 * (made on first use), or makes a fresh pair.
 */
export async function loadKeyPair(
  keyPair: KeyPair | undefined,
  keyFile?: string | URL,
): Promise<KeyPair> {
  if (keyFile !== undefined) {
    if (keyPair !== undefined) {
      throw new TypeError("Cannot use keyPair and keyFile together: give one of them");
    }
    if (typeof keyFile !== "string" && !(keyFile instanceof URL)) {
      throw new TypeError(`Cannot use keyFile: expected a path, got ${describe(keyFile)}`);
    }
    if (typeof Deno === "undefined") {
      throw new TypeError("Cannot use keyFile: key files need Deno; pass a keyPair instead");
    }
    // Loaded on demand: a browser build never reaches the file system code.
    const { loadKeyFile } = await import("../key_file.ts");
    return await loadKeyFile(keyFile);
  }
  if (keyPair === undefined) return await generateKeyPair();
  if (typeof keyPair !== "object" || keyPair === null) {
    throw new TypeError("Cannot use keyPair: expected { publicKey, privateKey }");
  }
  const loaded = await keyPairFromPrivateKey(keyPair.privateKey);
  if (keyPair.publicKey !== undefined) {
    assertBytes(keyPair.publicKey, "keyPair.publicKey", 32);
    if (!loaded.publicKey.every((byte, i) => byte === keyPair.publicKey[i])) {
      throw new TypeError("Cannot use keyPair: the public key does not match the private key");
    }
  }
  return loaded;
}

/** Checks the heartbeat interval and the idle timeout, and that the second exceeds the first. */
function checkHeartbeat(options: ConnectionOptions): void {
  const interval = nonNegative(options.heartbeatInterval, "heartbeatInterval");
  const idle = nonNegative(options.idleTimeout, "idleTimeout");
  const effectiveInterval = interval ?? DEFAULT_HEARTBEAT_INTERVAL;
  const effectiveIdle = idle ?? DEFAULT_IDLE_TIMEOUT;
  if (effectiveIdle !== 0 && effectiveInterval !== 0 && effectiveIdle <= effectiveInterval) {
    throw new RangeError(
      `Cannot use option idleTimeout: it must exceed heartbeatInterval (${effectiveInterval} ms), ` +
        `got ${effectiveIdle} ms`,
    );
  }
  const buffered = options.maxBufferedAmount;
  const mark = options.writeHighWaterMark ?? 1024 * 1024;
  if (buffered !== undefined && buffered < mark) {
    throw new RangeError(
      `Cannot use option maxBufferedAmount: it must be at least writeHighWaterMark (${mark}), ` +
        `got ${buffered}`,
    );
  }
}

function nonNegative(value: number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number") {
    throw new TypeError(`Cannot use option ${name}: expected milliseconds, got ${describe(value)}`);
  }
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot use option ${name}: expected an integer of milliseconds, 0 or more, got ${value}`,
    );
  }
  return value;
}

/** Checks the crypto backend choice. */
export function checkCrypto(value: unknown): CryptoChoice {
  if (value === undefined) return DEFAULT_CHOICE;
  if (value !== "auto" && value !== "webcrypto") {
    throw new TypeError(
      `Cannot use option crypto: expected "auto" or "webcrypto", got ${describe(value)}`,
    );
  }
  return value;
}

/** What servers and clients configure alike, checked. */
export interface CommonConfig {
  readonly applicationName: string;
  readonly psk: Bytes | undefined;
  readonly maxMessageSize: number;
  readonly handshakeTimeout: number;
  readonly crypto: CryptoChoice;
}

/** Checks the options servers and clients share. */
export function commonConfig(
  options: ConnectionOptions & {
    applicationName?: string;
    psk?: Uint8Array;
    handshakeTimeout?: number;
  },
): CommonConfig {
  // The connection's own limits take their defaults later; a bad one is the
  // caller's mistake, told at construction rather than on first use.
  for (
    const name of [
      "writeHighWaterMark",
      "closeTimeout",
      "writeTimeout",
      "maxBufferedAmount",
    ] as const
  ) {
    positive(options[name], name, 1);
  }
  // A peer refuses rekeys closer together than this (PROTOCOL.md section 6).
  atLeast(options.rekeyAfterBytes, "rekeyAfterBytes", MIN_REKEY_INTERVAL, MIN_REKEY_INTERVAL);
  checkHeartbeat(options);
  return {
    applicationName: checkApplicationName(options.applicationName),
    psk: checkPsk(options.psk),
    maxMessageSize: checkMaxMessageSize(options.maxMessageSize),
    handshakeTimeout: positive(
      options.handshakeTimeout,
      "handshakeTimeout",
      DEFAULT_HANDSHAKE_TIMEOUT,
    ),
    crypto: checkCrypto(options.crypto),
  };
}
