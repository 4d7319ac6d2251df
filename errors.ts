// Copyright 2026 the aesm authors. MIT license.
/**
 * The errors a network caller catches. Each sets `name`, and carries what
 * went wrong underneath in `cause`. A caller's own mistake throws a plain
 * `TypeError` or `RangeError` instead.
 *
 * @example Telling failures apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { AuthenticationError, HandshakeError } from "@aesm/aesm/errors";
 *
 * const error = new AuthenticationError("Cannot connect: the server key is not pinned", {
 *   reason: "key-rejected",
 * });
 * assert.ok(error instanceof HandshakeError);
 * assert.equal(error.reason, "key-rejected");
 * ```
 *
 * @module
 */

import { HandshakeError } from "./_noise/handshake_state.ts";

export { HandshakeError };

/** Why a connection was refused during its handshake. `PROTOCOL.md` gives each its code. */
export type RefuseReason =
  | "malformed"
  | "version"
  | "protocol-mismatch"
  | "application-mismatch"
  | "handshake-failed"
  | "psk-mismatch"
  | "unauthorized"
  | "key-rejected"
  | "server-full"
  | "timeout"
  | "server-busy"
  | "too-many-from-address"
  | "aborted";

/** Options of the errors that carry a reason. */
export interface ReasonOptions<R extends string> extends ErrorOptions {
  /** The machine-readable reason. */
  reason: R;
}

/**
 * The handshake was refused or broke off: a stray or tampered peer, another
 * application name or protocol, a full server, a failed authentication.
 * `reason` says which; `AuthenticationError` is the subclass for failed
 * authentication.
 *
 * @example A client with another application name is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, RefusedError, ServerNetwork } from "@aesm/aesm";
 *
 * const hostname = "127.0.0.1";
 * await using server = await ServerNetwork.listen({ hostname, port: 0, applicationName: "chat" });
 * const client = ClientNetwork.connect({ hostname, port: server.port, applicationName: "game" });
 * const error = await client.catch((error) => error);
 * assert.ok(error instanceof RefusedError);
 * assert.equal(error.reason, "application-mismatch");
 * assert.equal((await server.activity.receive())?.reason, "application-mismatch");
 * ```
 */
export class RefusedError extends HandshakeError {
  /** The reason, as in the activity log. */
  readonly reason: RefuseReason;

  /**
   * Creates the error with its reason.
   *
   * @param message A sentence for people.
   * @param options The reason, and the `cause`.
   */
  constructor(message: string, options: ReasonOptions<RefuseReason>) {
    super(message, options);
    this.name = "RefusedError";
    this.reason = options.reason;
  }
}

/**
 * The peer could not be authenticated, or refused to authenticate this side:
 * a wrong pre-shared key (`psk-mismatch`), an unpinned server key
 * (`key-rejected`), or a key or address the server's authorizer refused
 * (`unauthorized`).
 *
 * @example A client that pinned another server key
 * ```ts
 * import assert from "node:assert/strict";
 * import { AuthenticationError, ClientNetwork, generateKeyPair, ServerNetwork } from "@aesm/aesm";
 *
 * const hostname = "127.0.0.1";
 * await using server = await ServerNetwork.listen({ hostname, port: 0 });
 * const { publicKey: serverPublicKey } = await generateKeyPair(); // Not the server's key.
 * await assert.rejects(
 *   ClientNetwork.connect({ hostname, port: server.port, serverPublicKey }),
 *   (error) => error instanceof AuthenticationError && error.reason === "key-rejected",
 * );
 * ```
 */
export class AuthenticationError extends RefusedError {
  /**
   * Creates the error with its reason.
   *
   * @param message A sentence for people.
   * @param options The reason, and the `cause`.
   */
  constructor(message: string, options: ReasonOptions<RefuseReason>) {
    super(message, options);
    this.name = "AuthenticationError";
  }
}

/** Why an established connection ended. `PROTOCOL.md` gives each close code. */
export type CloseReason =
  | "normal"
  | "shutdown"
  | "protocol-error"
  | "message-too-large"
  | "timeout"
  | "internal-error"
  | "truncated"
  | "reset"
  | "aborted"
  | "idle-timeout"
  | "slow-consumer";

/**
 * The connection is closed: nothing more can be sent or will arrive.
 *
 * @example Sending after close
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ConnectionClosedError, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
 * await client.close();
 * await assert.rejects(
 *   client.send("too late"),
 *   (error) => error instanceof ConnectionClosedError && error.reason === "normal",
 * );
 * ```
 */
export class ConnectionClosedError extends Error {
  /** Why the connection ended. */
  readonly reason: CloseReason;

  /**
   * Creates the error with its reason.
   *
   * @param message A sentence for people.
   * @param options The reason, and the `cause`.
   */
  constructor(message: string, options: ReasonOptions<CloseReason>) {
    super(message, options);
    this.name = "ConnectionClosedError";
    this.reason = options.reason;
  }
}

/** Options of {@linkcode ProtocolError}. */
export interface ProtocolErrorOptions extends ErrorOptions {
  /**
   * Whether the input ended inside a frame (a cut connection, not a forgery).
   *
   * @default {false}
   */
  truncated?: boolean;
}

/**
 * The peer broke the wire protocol after the handshake: a bad frame, record or tag.
 *
 * @example An unknown frame type
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProtocolError } from "@aesm/aesm/errors";
 * import { FrameDecoderStream } from "@aesm/aesm/framing";
 *
 * const wire = ReadableStream.from([new Uint8Array([0x09, 0, 0])]);
 * await assert.rejects(
 *   Array.fromAsync(wire.pipeThrough(new FrameDecoderStream())),
 *   (error) => error instanceof ProtocolError && !error.truncated,
 * );
 * ```
 */
export class ProtocolError extends Error {
  /** Whether the input ended inside a frame. */
  readonly truncated: boolean;

  /**
   * Creates the error.
   *
   * @param message A sentence for people.
   * @param options Whether the input was truncated, and the `cause`.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
    this.truncated = options?.truncated ?? false;
  }
}

/**
 * An operation ran out of time: a connect, a handshake (`handshakeTimeout`),
 * a write the peer did not read (`writeTimeout`).
 *
 * Not to be confused with the `DOMException` named `"TimeoutError"` that an
 * `AbortSignal.timeout(ms)` you pass as `signal` rejects with: aesm passes
 * your signal's reason through unchanged. `error instanceof TimeoutError`
 * (this class) or `error.code === "ETIMEDOUT"` is true only for aesm's own
 * timeouts; `error.name === "TimeoutError"` is true for both.
 *
 * @example A server that never answers the handshake
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, TimeoutError } from "@aesm/aesm";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // Plain TCP: says nothing.
 * const { port } = listener.addr;
 * await assert.rejects(
 *   ClientNetwork.connect({ hostname: "127.0.0.1", port, handshakeTimeout: 200 }),
 *   (error) => error instanceof TimeoutError && error.code === "ETIMEDOUT",
 * );
 * // Your own signal's timeout is the signal's reason, not aesm's TimeoutError:
 * const error = await ClientNetwork.connect({
 *   hostname: "127.0.0.1",
 *   port,
 *   signal: AbortSignal.timeout(200),
 * }).catch((error) => error);
 * assert.ok(error instanceof DOMException && !(error instanceof TimeoutError));
 * assert.equal(error.name, "TimeoutError");
 * ```
 */
export class TimeoutError extends Error {
  /** Always `"ETIMEDOUT"`: tells aesm's timeouts apart from an aborted signal's reason. */
  readonly code = "ETIMEDOUT";

  /**
   * Creates the error.
   *
   * @param message A sentence for people.
   * @param options The `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TimeoutError";
  }
}

/**
 * Connecting failed before the handshake could start: nothing listens at the
 * address (`code` `"ECONNREFUSED"`), the host is unreachable, the name does
 * not resolve. `cause` holds the runtime's error; `address` the address
 * tried. Worth retrying later, unlike a {@linkcode RefusedError}.
 *
 * @example No server at the address
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, ConnectError } from "@aesm/aesm";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const { port } = listener.addr;
 * listener.close(); // Nothing listens there now.
 * const error = await ClientNetwork.connect({ hostname: "127.0.0.1", port })
 *   .catch((error) => error);
 * assert.ok(error instanceof ConnectError);
 * assert.equal(error.code, "ECONNREFUSED");
 * assert.equal(error.address, `127.0.0.1:${port}`);
 * assert.ok(error.cause instanceof Deno.errors.ConnectionRefused);
 * ```
 */
export class ConnectError extends Error {
  /** The system's error code, such as `"ECONNREFUSED"`, or the runtime error's name. */
  readonly code: string;
  /** The address connected to, `host:port`. */
  readonly address: string;

  /**
   * Creates the error.
   *
   * @param message A sentence for people.
   * @param options The code, the address, and the runtime's error as `cause`.
   */
  constructor(message: string, options: ErrorOptions & { code: string; address: string }) {
    super(message, options);
    this.name = "ConnectError";
    this.code = options.code;
    this.address = options.address;
  }
}

/**
 * A message is larger than the receiving side accepts: its `maxMessageSize`,
 * which it announced in the handshake. The receiver raises it with its own
 * `maxMessageSize` option; the sender cannot. A caller sees it as a
 * `RangeError`.
 *
 * @example Sending more than the server accepts
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientNetwork, MessageTooLargeError, ServerNetwork } from "@aesm/aesm";
 *
 * const hostname = "127.0.0.1";
 * const maxMessageSize = 65536; // The smallest limit there is.
 * await using server = await ServerNetwork.listen({ hostname, port: 0, maxMessageSize });
 * await using client = await ClientNetwork.connect({ hostname, port: server.port });
 * const error = await client.send("x".repeat(65537)).catch((error) => error);
 * assert.ok(error instanceof MessageTooLargeError && error instanceof RangeError);
 * assert.deepEqual([error.size, error.limit], [65537, 65536]);
 * await client.send("x".repeat(65536));
 * ```
 */
export class MessageTooLargeError extends RangeError {
  /** The message's size in bytes. */
  readonly size: number;
  /** The largest size accepted. */
  readonly limit: number;

  /**
   * Creates the error with the size and the limit.
   *
   * @param size The message's size in bytes.
   * @param limit The largest size accepted.
   */
  constructor(size: number, limit: number) {
    super(
      `Cannot send message: ${size} bytes exceeds the receiver's maxMessageSize of ${limit} bytes ` +
        "(the receiving side raises it with its maxMessageSize option; or split the message)",
    );
    this.name = "MessageTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

/**
 * A send was refused because the connection's write buffer already holds
 * `maxBufferedAmount` bytes: sends were not awaited and the peer reads slower
 * than they come. Await `send()` (or `flush()`) before sending more, or raise
 * `maxBufferedAmount`. Nothing of this message was queued; the connection
 * carries on.
 *
 * @example Sends that are not awaited meet the bound
 * ```ts
 * import assert from "node:assert/strict";
 * import { BufferFullError, ClientNetwork, ServerNetwork } from "@aesm/aesm";
 *
 * await using server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
 * await using client = await ClientNetwork.connect({
 *   hostname: "127.0.0.1",
 *   port: server.port,
 *   writeHighWaterMark: 1024,
 *   maxBufferedAmount: 1024,
 * });
 * const first = client.send(new Uint8Array(4096)); // Accepted: the buffer was empty.
 * const error = await client.send("more").catch((error) => error);
 * assert.ok(error instanceof BufferFullError);
 * assert.equal(error.limit, 1024);
 * await first;
 * await client.flush();
 * await client.send("after a flush");
 * ```
 */
export class BufferFullError extends Error {
  /** The bytes waiting to be written when the send was refused. */
  readonly bufferedAmount: number;
  /** The connection's `maxBufferedAmount`. */
  readonly limit: number;

  /**
   * Creates the error.
   *
   * @param bufferedAmount The bytes waiting to be written.
   * @param limit The connection's `maxBufferedAmount`.
   */
  constructor(bufferedAmount: number, limit: number) {
    super(
      `Cannot send message: ${bufferedAmount} bytes already wait to be written ` +
        `(maxBufferedAmount ${limit}); await send() or flush() before sending more`,
    );
    this.name = "BufferFullError";
    this.bufferedAmount = bufferedAmount;
    this.limit = limit;
  }
}
