// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import {
  backoff,
  checkReconnect,
  DEFAULT_INITIAL_DELAY,
  DEFAULT_MAX_DELAY,
  MAX_DELAY,
  weigh,
  worthReconnecting,
} from "../_client/reconnect.ts";
import { encodeRefuse } from "../_connection/establish.ts";
import { AuthenticationError, ConnectError, RefusedError, TimeoutError } from "../errors.ts";
import { HOST, rejection } from "./_network.ts";

Deno.test("checkReconnect() fills in the documented defaults, and false turns reconnecting off", () => {
  const defaults = {
    initialDelay: DEFAULT_INITIAL_DELAY,
    maxDelay: DEFAULT_MAX_DELAY,
    maxAttempts: Infinity,
  };
  assert.deepEqual([DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY], [1000, 30_000]);
  assert.deepEqual(checkReconnect(undefined), defaults);
  assert.deepEqual(checkReconnect(true), defaults);
  assert.deepEqual(checkReconnect({}), defaults);
  assert.equal(checkReconnect(false), false);
  assert.deepEqual(checkReconnect({ initialDelay: 60_000 }), {
    initialDelay: 60_000,
    maxDelay: 60_000,
    maxAttempts: Infinity,
  });
});

Deno.test("ClientNetwork rejects bad reconnect and activityLimit options with a TypeError or RangeError at construction", () => {
  const wrongType: unknown[] = ["yes", 1, null, { initialDelay: "1s" }, { maxAttempts: "3" }];
  for (const reconnect of wrongType) {
    assert.throws(
      () => new ClientNetwork(HOST, 1, { reconnect: reconnect as false }),
      TypeError,
      `reconnect: ${JSON.stringify(reconnect)}`,
    );
  }
  const outOfRange: unknown[] = [
    { initialDelay: 0 },
    { initialDelay: -5 },
    { initialDelay: 1.5 },
    { initialDelay: NaN },
    { maxDelay: MAX_DELAY + 1 },
    { initialDelay: 500, maxDelay: 100 },
    { maxAttempts: 0 },
    { maxAttempts: 2.5 },
    { maxAttempts: -Infinity },
  ];
  for (const reconnect of outOfRange) {
    assert.throws(
      () => new ClientNetwork(HOST, 1, { reconnect: reconnect as false }),
      RangeError,
      `reconnect: ${JSON.stringify(reconnect)}`,
    );
  }
  assert.throws(() => new ClientNetwork(HOST, 1, { activityLimit: 0 }), RangeError);
  assert.throws(
    () => new ClientNetwork(HOST, 1, { reconnect: { initialDelay: 500, maxDelay: 100 } }),
    /Cannot use option reconnect\.maxDelay: expected at least initialDelay \(500\), got 100/,
  );
});

Deno.test("backoff() waits a random time up to initialDelay * 2^(attempt - 1), capped at maxDelay", () => {
  const policy = { initialDelay: 100, maxDelay: 1000, maxAttempts: Infinity };
  const ceilings = [100, 200, 400, 800, 1000, 1000];
  for (const [i, ceiling] of ceilings.entries()) {
    const delays = Array.from({ length: 2000 }, () => backoff(policy, i + 1));
    for (const delay of delays) {
      assert.ok(Number.isInteger(delay) && delay >= 0 && delay <= ceiling, `${delay}`);
    }
    // Full jitter spreads the delays over the whole range (2,000 draws: both ends are hit).
    assert.ok(Math.min(...delays) < ceiling / 4, `attempt ${i + 1} low end`);
    assert.ok(Math.max(...delays) > (ceiling * 3) / 4, `attempt ${i + 1} high end`);
  }
  assert.ok(backoff(policy, 10_000) <= 1000, "a huge attempt number stays capped");
});

Deno.test("worthReconnecting() is false for this side's close or abort and a server's normal close, true for every other end", () => {
  const remote = { by: "remote" as const, message: "" };
  const local = { by: "local" as const, message: "" };
  assert.equal(worthReconnecting({ ...remote, reason: "reset", clean: false }), true);
  assert.equal(worthReconnecting({ ...remote, reason: "truncated", clean: false }), true);
  assert.equal(worthReconnecting({ ...local, reason: "timeout", clean: false }), true);
  assert.equal(worthReconnecting({ ...local, reason: "idle-timeout", clean: false }), true);
  assert.equal(worthReconnecting({ ...remote, reason: "shutdown", clean: true }), true);
  // A server that closed this client for being silent or slow expects it back.
  assert.equal(worthReconnecting({ ...remote, reason: "idle-timeout", clean: true }), true);
  assert.equal(worthReconnecting({ ...remote, reason: "slow-consumer", clean: true }), true);
  assert.equal(worthReconnecting({ ...remote, reason: "normal", clean: true }), false);
  assert.equal(worthReconnecting({ ...local, reason: "normal", clean: true }), false);
  assert.equal(worthReconnecting({ ...local, reason: "shutdown", clean: true }), false);
  assert.equal(worthReconnecting({ ...local, reason: "aborted", clean: false }), false);
});

Deno.test("weigh() retries what can heal, slows down on a server's Refuse frame, and stops on this side's key check", async () => {
  assert.equal(weigh(new ConnectError("x", { code: "ECONNREFUSED", address: "a" })), "retry");
  assert.equal(weigh(new TimeoutError("x")), "retry");
  assert.equal(weigh(new RefusedError("x", { reason: "server-full" })), "retry");
  assert.equal(weigh(new RefusedError("x", { reason: "handshake-failed" })), "retry");
  // A refusal this side raised from its own check (the key the server proved is not pinned).
  assert.equal(weigh(new AuthenticationError("x", { reason: "key-rejected" })), "final");
  // Any other lasting reason found by this side could come of a frame garbled on the path.
  assert.equal(weigh(new AuthenticationError("x", { reason: "psk-mismatch" })), "lasting");
  // The same reasons read from a Refuse frame, which anyone on the path can forge.
  for (
    const reason of ["psk-mismatch", "application-mismatch", "version", "key-rejected"] as const
  ) {
    using listener = Deno.listen({ hostname: HOST, port: 0 });
    const answering = (async () => {
      using conn = await listener.accept();
      await conn.read(new Uint8Array(1024)); // The preamble and message 1.
      await conn.write(encodeRefuse(reason));
    })();
    const error = await rejection(
      ClientNetwork.connect({ hostname: HOST, port: listener.addr.port }),
      `a forged ${reason} refusal`,
    );
    await answering;
    assert.ok(error instanceof RefusedError && error.reason === reason, String(error));
    assert.equal(weigh(error), "lasting", reason);
  }
});
