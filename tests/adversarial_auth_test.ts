// Copyright 2026 the aesm authors. MIT license.
// Authentication: a wrong psk, a wrong application name, a wrong pinned
// key, a client the server refuses, and a man in the middle. Each fails
// with a distinct typed error on the side that can know, and a refused
// record on the server; a retry loop makes exactly one attempt per try.

import assert from "node:assert/strict";
import { ClientNetwork, type ClientOptions } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import { AuthenticationError, HandshakeError, RefusedError } from "../errors.ts";
import { ServerNetwork, type ServerOptions } from "../server.ts";
import {
  hex,
  RecordingProxy,
  Sentinel,
  ServerWatch,
  within,
  withServer as withServerFixture,
} from "./_adversary.ts";

const PSK = new Uint8Array(32).fill(1);
const OTHER_PSK = new Uint8Array(32).fill(2);

function withServer(
  options: ServerOptions,
  run: (server: ServerNetwork, watch: ServerWatch) => Promise<void>,
): Promise<void> {
  return withServerFixture({ handshakeTimeout: 5000, ...options }, run, { sentinel: false });
}

/** Connects, expecting a failure; returns the error and the server's record of it. */
async function failedConnect(
  server: ServerNetwork,
  watch: ServerWatch,
  options: Partial<ClientOptions>,
): Promise<{ error: unknown; record: { event: string; reason?: string } }> {
  const before = watch.records.length;
  const error = await ClientNetwork.connect({
    hostname: "127.0.0.1",
    port: server.port,
    ...options,
  }).then(async (client) => (await client.close(), undefined), (e) => e);
  const record = await watch.until(
    () => watch.records.slice(before).find((r) => r.event !== "connected"),
    5000,
    "the server's record",
  );
  return { error, record };
}

function assertError(
  error: unknown,
  type: typeof AuthenticationError | typeof RefusedError,
  reason: string,
): void {
  assert.ok(error instanceof type, `expected a ${type.name} (${reason}), got ${error}`);
  assert.ok(error instanceof HandshakeError);
  assert.equal((error as AuthenticationError).reason, reason);
}

Deno.test("A wrong psk fails with AuthenticationError psk-mismatch and a refused record", async () => {
  await withServer({ psk: PSK }, async (server, watch) => {
    const { error, record } = await failedConnect(server, watch, { psk: OTHER_PSK });
    assertError(error, AuthenticationError, "psk-mismatch");
    assert.deepEqual(record, { ...record, event: "refused", reason: "psk-mismatch" });
    // The right psk still works.
    await using client = await ClientNetwork.connect({
      hostname: "127.0.0.1",
      port: server.port,
      psk: PSK,
    });
    await client.send("in");
    assert.equal((await (await watch.connection(client.localAddress)).receive())?.data, "in");
  });
});

Deno.test("A psk on one side only fails with RefusedError protocol-mismatch", async () => {
  await withServer({ psk: PSK }, async (server, watch) => {
    const { error, record } = await failedConnect(server, watch, {});
    assertError(error, RefusedError, "protocol-mismatch");
    assert.equal(record.reason, "protocol-mismatch");
  });
  await withServer({}, async (server, watch) => {
    const { error, record } = await failedConnect(server, watch, { psk: PSK });
    assertError(error, RefusedError, "protocol-mismatch");
    assert.equal(record.reason, "protocol-mismatch");
  });
});

Deno.test("A wrong application name fails with RefusedError application-mismatch", async () => {
  await withServer({ applicationName: "chat" }, async (server, watch) => {
    const { error, record } = await failedConnect(server, watch, { applicationName: "chess" });
    assertError(error, RefusedError, "application-mismatch");
    assert.equal(record.reason, "application-mismatch");
  });
});

Deno.test("A wrong pinned server key fails with AuthenticationError key-rejected", async () => {
  await withServer({}, async (server, watch) => {
    const wrong = (await generateKeyPair()).publicKey;
    const { error, record } = await failedConnect(server, watch, { serverPublicKey: wrong });
    assertError(error, AuthenticationError, "key-rejected");
    assert.equal(record.reason, "key-rejected", "the client's Refuse reached the server");
  });
});

Deno.test("A client the server does not authorize fails with AuthenticationError unauthorized", async () => {
  const allowed = await generateKeyPair();
  const seen: string[] = [];
  await withServer({
    allowedPublicKeys: [allowed.publicKey],
    authorize: ({ publicKey }) => {
      seen.push(hex(publicKey));
      return false; // Refuses even the allowed key: the authorizer runs after the list.
    },
  }, async (server, watch) => {
    const stranger = await failedConnect(server, watch, {});
    assertError(stranger.error, AuthenticationError, "unauthorized");
    assert.equal(stranger.record.reason, "unauthorized");
    const refusedByApp = await failedConnect(server, watch, { keyPair: allowed });
    assertError(refusedByApp.error, AuthenticationError, "unauthorized");
    assert.deepEqual(seen, [hex(allowed.publicKey)], "the authorizer saw only the listed key");
  });
  await withServer({ allowedHostnames: ["192.0.2.1"] }, async (server, watch) => {
    const { error, record } = await failedConnect(server, watch, {});
    assertError(error, AuthenticationError, "unauthorized");
    assert.equal(record.reason, "unauthorized");
  });
});

Deno.test("An authorizer that throws or never answers refuses the client without harming the server", async () => {
  let mode: "throw" | "hang" | "allow" = "throw";
  const never = Promise.withResolvers<boolean>();
  await withServer({
    handshakeTimeout: 1000,
    authorize: () => {
      if (mode === "throw") throw new Error("the authorizer broke");
      if (mode === "hang") return never.promise;
      return true;
    },
  }, async (server, watch) => {
    const broken = await failedConnect(server, watch, {});
    assert.ok(broken.error instanceof HandshakeError, `typed, got ${broken.error}`);
    assert.equal(broken.record.event, "refused");
    mode = "hang";
    const hung = await failedConnect(server, watch, { handshakeTimeout: 5000 });
    assert.ok(hung.error instanceof HandshakeError, `typed, got ${hung.error}`);
    assert.equal(hung.record.reason, "timeout");
    mode = "allow";
    await using client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
    const sentinel = await Sentinel.connect(server, watch);
    await sentinel.roundTrip();
    await sentinel.close();
    await client.close();
  });
  never.resolve(false);
});

/**
 * A man in the middle: its own server (its own keys) for the victim, and for
 * each victim its own client to the real server, relaying messages both ways.
 */
async function withMitm(
  realPort: number,
  options: { psk?: Uint8Array },
  run: (mitm: ServerNetwork, mitmWatch: ServerWatch) => Promise<void>,
): Promise<void> {
  const mitm = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    handshakeTimeout: 5000,
    closeTimeout: 500,
    ...options,
  });
  const mitmWatch = new ServerWatch(mitm);
  const relays: Promise<void>[] = [];
  mitmWatch.onConnection = (victimSide) => {
    relays.push((async () => {
      const upstream = await ClientNetwork.connect({
        hostname: "127.0.0.1",
        port: realPort,
        closeTimeout: 500,
        ...options,
      });
      const forward = async (
        from: AsyncIterable<{ data: string | Uint8Array }>,
        to: { send(data: string | Uint8Array): Promise<void> },
      ) => {
        try {
          for await (const packet of from) await to.send(packet.data);
        } catch {
          // One side closed.
        }
      };
      await Promise.all([
        forward(victimSide, upstream).then(() => upstream.close()),
        forward(upstream, victimSide).then(() => victimSide.close()),
      ]);
    })());
  };
  try {
    await run(mitm, mitmWatch);
  } finally {
    await mitm.stop();
    await mitmWatch.done();
    await Promise.all(relays);
  }
}

Deno.test("A man in the middle is detected as key-rejected by a client that pins the server's key", async () => {
  await withServer({}, async (server, watch) => {
    await withMitm(server.port, {}, async (mitm, mitmWatch) => {
      const before = watch.records.length;
      const error = await ClientNetwork.connect({
        hostname: "127.0.0.1",
        port: mitm.port,
        serverPublicKey: server.publicKey,
      }).then(async (c) => (await c.close(), undefined), (e) => e);
      assertError(error, AuthenticationError, "key-rejected");
      const record = await mitmWatch.until(
        () => mitmWatch.records.find((r) => r.event !== "connected"),
        5000,
        "the MITM's record",
      );
      assert.equal(record.reason, "key-rejected");
      assert.equal(watch.records.length, before, "the real server saw nothing of the victim");
    });
  });
});

Deno.test("A man in the middle without pinning is exposed by the handshake hash, and fails with a psk", async () => {
  await withServer({}, async (server, watch) => {
    await withMitm(server.port, {}, async (mitm) => {
      await using victim = await ClientNetwork.connect({ hostname: "127.0.0.1", port: mitm.port });
      await victim.send("secret");
      // The real server's only connection is the MITM's own client.
      const atServer = await watch.until(
        () => [...watch.connections.values()][0],
        5000,
        "the MITM's connection to the real server",
      );
      assert.equal(
        (await within(atServer.receive(), 5000, "the relayed message"))?.data,
        "secret",
        "an unpinned client can be relayed",
      );
      await atServer.send("reply");
      assert.equal((await victim.receive())?.data, "reply");
      // ...but the two ends do not share a handshake hash, nor a key.
      assert.notDeepEqual(victim.handshakeHash, atServer.handshakeHash);
      assert.notDeepEqual(victim.remotePublicKey, server.publicKey);
    });
  });
  await withServer({ psk: PSK }, async (server) => {
    // A MITM that does not know the psk: with one it guesses, and without one.
    await withMitm(server.port, { psk: OTHER_PSK }, async (mitm, mitmWatch) => {
      const error = await ClientNetwork.connect({
        hostname: "127.0.0.1",
        port: mitm.port,
        psk: PSK,
      })
        .then(async (c) => (await c.close(), undefined), (e) => e);
      assertError(error, AuthenticationError, "psk-mismatch");
      const record = await mitmWatch.until(
        () => mitmWatch.records.find((r) => r.event !== "connected"),
        5000,
        "the MITM's record",
      );
      assert.equal(record.reason, "psk-mismatch");
    });
    await withMitm(server.port, {}, async (mitm) => {
      const error = await ClientNetwork.connect({
        hostname: "127.0.0.1",
        port: mitm.port,
        psk: PSK,
      })
        .then(async (c) => (await c.close(), undefined), (e) => e);
      assertError(error, RefusedError, "protocol-mismatch");
    });
  });
});

Deno.test("A retry loop of N failing attempts makes exactly N connections and N refused records", async () => {
  const N = 12;
  await withServer({ psk: PSK }, async (server, watch) => {
    await using proxy = RecordingProxy.start({ targetPort: server.port });
    const errors: unknown[] = [];
    for (let attempt = 0; attempt < N; attempt++) {
      errors.push(
        await ClientNetwork.connect({ hostname: "127.0.0.1", port: proxy.port, psk: OTHER_PSK })
          .then(async (c) => (await c.close(), undefined), (e) => e),
      );
    }
    for (const error of errors) assertError(error, AuthenticationError, "psk-mismatch");
    await watch.until(() => watch.records.length >= N ? true : undefined, 5000, "N records");
    // A good client's round trip lets anything the library might still retry show up.
    const sentinel = await Sentinel.connect(server, watch, { psk: PSK });
    await sentinel.roundTrip();
    const refused = watch.records.filter((r) => r.event === "refused");
    assert.equal(refused.length, N);
    assert.ok(refused.every((r) => r.reason === "psk-mismatch"));
    assert.equal(proxy.sessions.length, N, "one TCP connection per attempt");
    console.log(
      `retries: ${N} attempts, ${proxy.sessions.length} connections, ${refused.length} refused records`,
    );
    await sentinel.close();
  });
});
