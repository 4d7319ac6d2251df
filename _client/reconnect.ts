// Copyright 2026 the aesm authors. MIT license.
/**
 * The client's reconnect policy: checking its options, the backoff delays,
 * and how a failed attempt weighs. Private.
 *
 * @module
 */

import { describe } from "../_connection/config.ts";
import { isReceivedRefusal } from "../_connection/establish.ts";
import type { CloseInfo } from "../_connection/options.ts";
import { type CloseReason, RefusedError, type RefuseReason } from "../errors.ts";

/** The longest delay a timer takes (2^31 − 1 ms, about 24.8 days). */
export const MAX_DELAY = 2 ** 31 - 1;
/** Default first backoff bound, in milliseconds. */
export const DEFAULT_INITIAL_DELAY = 1000;
/** Default largest backoff, in milliseconds. */
export const DEFAULT_MAX_DELAY = 30_000;
/**
 * How many attempts in a row a server's Refuse frame that cannot heal must
 * end before the client gives up: Refuse frames are not authenticated, so one
 * forged frame must not end a client for good.
 */
export const REFUSALS_BEFORE_GIVING_UP = 3;

/** Refusals that another attempt does not fix: a person must change a configuration. */
const LASTING: ReadonlySet<RefuseReason> = new Set([
  "key-rejected",
  "psk-mismatch",
  "application-mismatch",
  "protocol-mismatch",
  "version",
  "unauthorized",
]);

/** A checked reconnect policy. */
export interface ReconnectPolicy {
  readonly initialDelay: number;
  readonly maxDelay: number;
  readonly maxAttempts: number;
}

/** Checks the `reconnect` option: `false` turns reconnecting off. */
export function checkReconnect(value: unknown): ReconnectPolicy | false {
  if (value === false) return false;
  if (value === undefined || value === true) value = {};
  if (typeof value !== "object" || value === null) {
    const expected = "expected false or { initialDelay, maxDelay, maxAttempts }";
    throw new TypeError(`Cannot use option reconnect: ${expected}, got ${describe(value)}`);
  }
  const { initialDelay, maxDelay, maxAttempts } = value as Record<string, unknown>;
  const initial = delay(initialDelay, "reconnect.initialDelay", DEFAULT_INITIAL_DELAY);
  const max = delay(maxDelay, "reconnect.maxDelay", Math.max(DEFAULT_MAX_DELAY, initial));
  if (max < initial) {
    const expected = `expected at least initialDelay (${initial})`;
    throw new RangeError(`Cannot use option reconnect.maxDelay: ${expected}, got ${max}`);
  }
  return { initialDelay: initial, maxDelay: max, maxAttempts: attempts(maxAttempts) };
}

function delay(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const expected = `expected an integer from 1 to ${MAX_DELAY} (milliseconds)`;
  if (typeof value !== "number") {
    throw new TypeError(`Cannot use option ${name}: ${expected}, got ${describe(value)}`);
  }
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_DELAY) {
    throw new RangeError(`Cannot use option ${name}: ${expected}, got ${value}`);
  }
  return value;
}

function attempts(value: unknown): number {
  if (value === undefined || value === Infinity) return Infinity;
  const expected = "expected a positive integer or Infinity";
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot use option reconnect.maxAttempts: ${expected}, got ${describe(value)}`,
    );
  }
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Cannot use option reconnect.maxAttempts: ${expected}, got ${value}`);
  }
  return value;
}

/**
 * The wait before attempt `attempt` (from 1): exponential backoff with full
 * jitter, a random time up to `initialDelay * 2^(attempt - 1)`, capped at
 * `maxDelay`, so that clients cut off together do not return together.
 */
export function backoff(policy: ReconnectPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelay, policy.initialDelay * 2 ** Math.min(attempt - 1, 31));
  return Math.floor(Math.random() * (ceiling + 1));
}

/**
 * Whether a connection that ended so is worth connecting again: every end
 * but this side's own close or abort and a server's `normal` close, which
 * it meant for this client. A server that stops says `shutdown` (most often
 * a restart); a server that ends a silent or slow client (`idle-timeout`,
 * `slow-consumer`) expects it back once the network lets it.
 */
export function worthReconnecting(info: CloseInfo): boolean {
  if (info.by === "local") return !DELIBERATE.has(info.reason);
  return info.reason !== "normal";
}

/** What this side's close() and abort() end a connection with. */
const DELIBERATE: ReadonlySet<CloseReason> = new Set(["normal", "shutdown", "aborted"]);

/**
 * How a failed attempt weighs: `"retry"` (backoff as usual), `"lasting"` (a
 * refusal that cannot heal but that someone on the path could have caused:
 * wait `maxDelay`, and give up when it repeats), or `"final"` (`key-rejected`
 * found by this side: the server proved in the handshake that it holds a key
 * other than the pinned one, which no forged frame can make happen).
 */
export function weigh(error: unknown): "retry" | "lasting" | "final" {
  if (!(error instanceof RefusedError) || !LASTING.has(error.reason)) return "retry";
  if (error.reason === "key-rejected" && !isReceivedRefusal(error)) return "final";
  return "lasting";
}

/** The reason of a failed attempt, for the activity log: a refusal's or a timeout's. */
export function failureReason(error: unknown): RefuseReason | undefined {
  if (error instanceof RefusedError) return error.reason;
  return (error as { code?: unknown })?.code === "ETIMEDOUT" ? "timeout" : undefined;
}

/** Sleeps `ms`; resolves `false` at once if `signal` aborts. Leaves no timer behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
