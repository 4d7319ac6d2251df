// Copyright 2026 the aesm authors. MIT license.
// Admission under attack: floods of connections from one address (silent
// sockets, silent sockets re-opened as the server closes them, and peers
// that send a preamble and 32 random bytes and reset once the server has
// done its DH work), a process out of file descriptors, and refusals that
// would push connection records out of the activity log. A legitimate
// client from another address must connect during every flood; its connect
// times are printed (never asserted: speed lives in bench/).

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import { RefusedError } from "../errors.ts";
import { ServerNetwork, type ServerOptions } from "../server.ts";
import {
  closeRecord,
  concat,
  frame,
  FrameType,
  preamble,
  RawClient,
  readRefusal,
  RejectionTrap,
  within,
  withServer,
  writeAll,
} from "./_adversary.ts";
import { spawnLimited } from "./_descriptors.ts";
import { ATTACKER, describe, dhBait, type Flood, flood, timeConnects } from "./_flood.ts";

const CONNECTS = 30;
const FLOOD_SOCKETS = 1024;

/** Waits until `check` holds, polling every 10 ms, at most `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Runs `start`'s flood against a fresh server and times a legitimate client's connects during it. */
async function duringFlood(
  name: string,
  options: ServerOptions,
  start: (port: number) => Promise<Flood>,
): Promise<void> {
  await withServer(options, async (server) => {
    const baseline = await timeConnects(server.port, 10);
    const attack = await start(server.port);
    try {
      await until(() => attack.opened >= FLOOD_SOCKETS, 30_000, "the flood to open its sockets");
      const during = await timeConnects(server.port, CONNECTS);
      console.log(
        `${name}: legitimate connects before ${describe(baseline)}; during ${describe(during)}; ` +
          `attacker opened ${attack.opened} sockets, ${attack.replies} answered`,
      );
      assert.deepEqual(during.errors, [], "every legitimate connect succeeds during the flood");
    } finally {
      await attack.stop();
    }
  });
}

Deno.test(`A legitimate client connects while ${FLOOD_SOCKETS} silent sockets from another address are open`, async () => {
  await duringFlood(
    "silent sockets",
    {},
    (port) => Promise.resolve(flood({ port, sockets: FLOOD_SOCKETS, reopen: 0 })),
  );
});

Deno.test(`A legitimate client connects while ${FLOOD_SOCKETS} silent sockets from another address are re-opened (91/s) as they close`, async () => {
  await duringFlood(
    "re-opened silent sockets",
    {},
    (port) => Promise.resolve(flood({ port, sockets: FLOOD_SOCKETS, reopen: 91 })),
  );
});

Deno.test(`A legitimate client connects while ${FLOOD_SOCKETS} peers from another address send a preamble and 32 random bytes and reset after message 2`, async () => {
  await duringFlood("DH bait", {}, async (port) =>
    flood({
      port,
      sockets: FLOOD_SOCKETS,
      reopen: Infinity,
      send: await dhBait(),
      resetOnReply: true,
    }));
});

Deno.test("Refusals for one address are typed too-many-from-address, and its connections are bounded", async () => {
  await withServer({ maxConnectionsPerAddress: 3 }, async (server, watch) => {
    // The sentinel holds one of 127.0.0.1's three.
    const clients = [
      await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port }),
      await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port }),
    ];
    try {
      const error = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port })
        .then((c) => (c.close(), undefined), (e) => e);
      assert.ok(error instanceof RefusedError, `refused, got ${error}`);
      assert.equal(error.reason, "too-many-from-address");
      const attack = flood({ port: server.port, sockets: 50, reopen: 0 });
      try {
        // 127.0.0.2 has its own bound on handshakes: the rest are refused at once.
        await until(() => attack.opened === 50 && attack.open <= 32, 10_000, "the refusals");
      } finally {
        await attack.stop();
      }
      // One refusal from 127.0.0.1 and 18 from 127.0.0.2: one record, then a sum.
      const counted = () => {
        const records = watch.records.filter((r) => r.reason === "too-many-from-address");
        return records.reduce((sum, r) => sum + (r.count ?? 1), 0);
      };
      await watch.until(() => counted() === 19 ? true : undefined, 5000, "the burst's sum");
      const records = watch.records.filter((r) => r.reason === "too-many-from-address");
      assert.equal(records.length, 2);
      assert.ok(records[1].address.startsWith(`${ATTACKER}:`));
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

Deno.test("The accept loop survives running out of file descriptors, logs it, and serves once the flood ends", async () => {
  await using server = new LimitedServer(1024, ["exhaust", "8"]);
  const port = Number(await server.line());
  assert.equal(await server.line(), "ready");
  // 200 silent sockets against 8 free descriptors: accept() fails with EMFILE.
  const silent: Deno.TcpConn[] = [];
  for (let i = 0; i < 200; i++) silent.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  const failed = await within(
    server.record((r) => r.message.startsWith("Cannot accept a connection")),
    10_000,
    "the failed accept in the activity log",
  );
  for (const conn of silent) conn.close();
  const client = await within(
    ClientNetwork.connect({ hostname: "127.0.0.1", port, handshakeTimeout: 10_000 }),
    15_000,
    "a client after the flood",
  );
  await client.send("served");
  await client.close();
  console.log(`descriptors: "${failed.message}"; a client connected after the flood`);
  assert.equal(failed.reason, "server-busy");
});

Deno.test("maxConnections is checked against the open-file limit: the default is lowered, a value given refused", async () => {
  await using server = new LimitedServer(1024, ["limits"]);
  const { chosen, error } = JSON.parse(await server.line());
  console.log(`open-file limit 1024: default maxConnections ${chosen}; 1024 given: ${error}`);
  assert.equal(chosen, 1024 - 64 - 2 * 128);
  assert.match(error, /^RangeError: Cannot listen: maxConnections 1024 .* open-file limit is 1024/);
});

Deno.test("Refusals never push connection records out of the activity log", async () => {
  using trap = new RejectionTrap();
  const server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0, activityLimit: 20 });
  let failure: unknown;
  try {
    const client = await ClientNetwork.connect({ hostname: "127.0.0.1", port: server.port });
    // 200 bad-version refusals, far more than the log holds.
    const bad = concat(await preamble(), frame(FrameType.Handshake, new Uint8Array(32)));
    bad[4] = 9;
    for (let i = 0; i < 200; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await writeAll(conn, bad);
      assert.equal(await readRefusal(conn), "version");
      conn.close();
    }
    const first = server.activity.take();
    assert.deepEqual([first?.event, first?.address], ["connected", client.localAddress]);
    assert.ok(server.activity.dropped >= 180, `${server.activity.dropped} dropped`);
    await client.close();
  } catch (error) {
    failure = error;
  } finally {
    await server.stop();
  }
  trap.check(failure);
});

Deno.test("A peer's close message reaches the activity log with control and bidirectional characters escaped", async () => {
  await withServer({}, async (server, watch) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      await raw.sendPlaintext(closeRecord("normal", "bye\nFAKE connected\u001b[31m\u202eevil"));
      await raw.conn.closeWrite();
      const end = await watch.end(raw.localAddress);
      assert.equal(end.message, "bye\\u000aFAKE connected\\u001b[31m\\u202eevil");
    } finally {
      raw.close();
    }
  });
});

/** A server in a child process under `ulimit -n limit` (tests/_descriptors.ts). */
class LimitedServer implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(limit: number, args: string[]) {
    this.#child = spawnLimited(limit, args);
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  async line(): Promise<string> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await within(this.#reader.read(), 20_000, "the server process");
      if (done) {
        const stderr = await new Response(this.#child.stderr).text();
        throw new Error(`The server process ended: ${stderr}`);
      }
      this.#buffer += value;
    }
    const end = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 1);
    return line;
  }

  /** The first activity record (a JSON line) that matches. */
  async record(
    matches: (record: { message: string; reason?: string }) => boolean,
  ): Promise<{ message: string; reason?: string }> {
    while (true) {
      const record = JSON.parse(await this.line());
      if (matches(record)) return record;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await this.#child.status;
    await this.#reader.cancel().catch(() => {});
    await this.#child.stderr.cancel().catch(() => {});
  }
}
