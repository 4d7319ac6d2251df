// Copyright 2026 the aesm authors. MIT license.
// The package in Node.js (22, from the npm package `node`, pinned: the
// machine's own Node may be older) and in Bun (from npm, pinned), as client
// and as server against Deno over TCP: the `node:net` transport. The peer
// runs the package bundled into one ES module, as a Node user's bundler or
// JSR's npm build would give it.
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { ServerNetwork } from "../server.ts";
import { bounded, Child, HOST } from "./_network.ts";

const ROOT = new URL("../", import.meta.url);
const PEER = new URL("node/peer.mjs", import.meta.url).pathname;
const RUNTIMES = [
  { name: "Node 22", args: ["-y", "node@22.12.0"] },
  { name: "Bun", args: ["-y", "bun@1.4.4"] },
];

async function bundle(dir: string): Promise<string> {
  const output = `${dir}/aesm.mjs`;
  const { success, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform", "deno", "--format", "esm", "-o", output, "mod.ts"],
    cwd: ROOT.pathname,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(success, `deno bundle failed: ${new TextDecoder().decode(stderr)}`);
  return output;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A peer process; its stdout is JSON lines. */
class Peer extends Child {
  constructor(runtime: string[], args: string[]) {
    const child = new Deno.Command("npx", {
      args: [...runtime, PEER, ...args],
      stdout: "piped",
      stderr: "null",
      env: { NODE_NO_WARNINGS: "1" },
    }).spawn();
    super(child, child.stdout, "The peer");
  }

  async json(what: string): Promise<Record<string, unknown>> {
    // The first run of a runtime downloads it from npm.
    return JSON.parse(await this.line(what, 120_000));
  }
}

for (const runtime of RUNTIMES) {
  for (const transport of ["TCP", "WebSocket"]) {
    Deno.test(`${runtime.name} runs the package as a client against a Deno server over ${transport}`, async () => {
      const dir = await Deno.makeTempDir({ prefix: "aesm-node-" });
      try {
        const module = await bundle(dir);
        await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, webSocket: {} });
        const where = transport === "TCP"
          ? String(server.port)
          : `ws://${HOST}:${server.webSocketPort}/`;
        await using peer = new Peer(runtime.args, [module, "client", where, hex(server.publicKey)]);
        const connection = await server.accept({ signal: AbortSignal.timeout(120_000) });
        for await (const packet of connection) await connection.send(packet.data);
        const result = await peer.json("the client's results");
        assert.match(String(result.runtime), runtime.name === "Bun" ? /^bun / : /^node v22\./);
        assert.equal(result.text, `hello from ${result.runtime}`);
        assert.deepEqual([result.bytes, result.allNine], [100_000, true]);
        assert.deepEqual(result.close, ["normal", true]);
        assert.equal(
          result.keyFile,
          "TypeError: Cannot use keyFile: key files need Deno; pass a keyPair instead",
        );
        const info = await connection.closed;
        assert.deepEqual([info.reason, info.clean, info.by], ["normal", true, "remote"]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }

  Deno.test(`${runtime.name} runs the package as a server for a Deno client`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "aesm-node-" });
    try {
      const module = await bundle(dir);
      await using peer = new Peer(runtime.args, [module, "server"]);
      const started = await peer.json("the server's port and key");
      const serverPublicKey = new Uint8Array(
        String(started.key).match(/../g)!.map((b) => parseInt(b, 16)),
      );
      await using client = await ClientNetwork.connect({
        hostname: HOST,
        port: Number(started.port),
        serverPublicKey,
      });
      await client.send("hello from Deno");
      await client.send(new Uint8Array(100_000).fill(3));
      assert.equal((await client.receive(bounded()))?.data, "hello from Deno");
      assert.deepEqual((await client.receive(bounded()))?.data, new Uint8Array(100_000).fill(3));
      const info = await client.close();
      assert.deepEqual([info.reason, info.clean], ["normal", true]);
      const ended = await peer.json("the server's close");
      assert.deepEqual(ended.close, ["normal", true, "remote"]);
      assert.equal((await peer.child.status).code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
