// Copyright 2026 the aesm authors. MIT license.
// The examples run as a user runs them: real processes, real signals.
import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { bounded, Child, within } from "./_network.ts";

const EXAMPLES = new URL("../examples/", import.meta.url);

/** An example started with `deno run -A`, its stdout read line by line. */
class Example extends Child {
  constructor(file: string, args: string[], env: Record<string, string> = {}, stdin = false) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(file, EXAMPLES).pathname, ...args],
      env,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    super(child, child.stdout, "The example");
  }
}

async function run(file: string, args: string[], env: Record<string, string> = {}) {
  const output = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(file, EXAMPLES).pathname, ...args],
      env,
      stdin: "null",
    }).output(),
    `${file} to finish`,
    30_000,
  );
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("echo_client.ts pins the key echo_server.ts prints, and the server exits at once on SIGINT", async () => {
  await using server = new Example("echo_server.ts", ["0", "600"]);
  const banner = await server.line("the server's banner");
  const [, port, key] = banner.match(/on 127\.0\.0\.1:(\d+), public key ([0-9a-f]{64})$/)!;

  const echoed = await run("echo_client.ts", [port, key, "hello", "world"]);
  assert.equal(echoed.code, 0, echoed.stderr);
  assert.equal(echoed.stdout, "echo: hello\necho: world\n");

  const otherKey = key.replace(/^./, (digit) => digit === "0" ? "1" : "0");
  const refused = await run("echo_client.ts", [port, otherKey, "hello"]);
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    /AuthenticationError.*is not the pinned one: the server's key changed.*keyFile/s,
  );

  const missing = await run("echo_client.ts", [port]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /usage: echo_client\.ts PORT SERVER_PUBLIC_KEY/);

  // Its time limit is 600 s: exiting well inside the test's bound means Ctrl-C ended it.
  server.child.kill("SIGINT");
  const status = await within(server.child.status, "the server to exit after SIGINT", 15_000);
  assert.equal(status.code, 0);
});

Deno.test("chat.ts refuses to start without a psk, and relays lines between members sharing one", async () => {
  const none = await run("chat.ts", ["server", "0", "5"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /set AESM_CHAT_PSK_FILE to a file of 32 random bytes/);

  const pskFile = await Deno.makeTempFile();
  try {
    await Deno.writeFile(pskFile, crypto.getRandomValues(new Uint8Array(32)));
    const env = { AESM_CHAT_PSK_FILE: pskFile };
    await using server = new Example("chat.ts", ["server", "0", "600"], env);
    const [, port] = (await server.line("the chat server's banner")).match(/:(\d+) for/)!;
    await using ann = new Example("chat.ts", ["join", port, "ann"], env, true);
    await ann.line("ann to join");
    await using bob = new Example("chat.ts", ["join", port, "bob"], env, true);
    await bob.line("bob to join");
    const writer = ann.child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("hello bob\n"));
    assert.equal(await bob.line("ann's line at bob"), "ann: hello bob");
    await writer.close();
    assert.equal((await within(ann.child.status, "ann to leave")).code, 0);

    const wrong = await Deno.makeTempFile();
    await Deno.writeFile(wrong, new Uint8Array(32));
    const outsider = await run("chat.ts", ["join", port, "eve"], { AESM_CHAT_PSK_FILE: wrong });
    await Deno.remove(wrong);
    assert.notEqual(outsider.code, 0);
    assert.match(outsider.stderr, /psk-mismatch/);
  } finally {
    await Deno.remove(pskFile);
  }
});

Deno.test("cluster.ts runs workers on one port joined over NATS, relaying to every client", async () => {
  await using cluster = new Example("cluster.ts", ["2", "0", "600"]);
  const [, port] = (await cluster.line("the cluster's banner")).match(/on 127\.0\.0\.1:(\d+) /)!;
  const workers = [await cluster.line("a worker"), await cluster.line("another worker")];
  assert.deepEqual(workers.map((line) => line.split(" ")[0]).sort(), ["worker-0", "worker-1"]);
  const clients = [];
  try {
    for (let i = 0; i < 4; i++) {
      clients.push(await ClientNetwork.connect({ hostname: "127.0.0.1", port: Number(port) }));
    }
    for (const client of clients) {
      assert.match((await client.receive(bounded()))!.text(), /^welcome, you are on worker-[01]$/);
    }
    await clients[0].send("hello, cluster");
    for (const client of clients) {
      assert.equal((await client.receive(bounded()))?.text(), "hello, cluster");
    }
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
  cluster.child.kill("SIGINT");
  const status = await within(cluster.child.status, "the cluster to stop after SIGINT", 15_000);
  assert.equal(status.code, 0);
});
