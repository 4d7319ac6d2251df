// Copyright 2026 the aesm authors. MIT license.
// The CLI runs as a user runs it: `deno run -A cli.ts ...` in real processes, through pipes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readKeyFile } from "../key_file.ts";
import { Child, within } from "./_network.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command to its end, with `stdin` (bytes or text) piped in. */
async function aesm(
  args: string[],
  options: { stdin?: string | Uint8Array; env?: Record<string, string>; cwd?: string } = {},
): Promise<Output> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: options.env ?? {},
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    const bytes = typeof options.stdin === "string" ? encoder.encode(options.stdin) : options.stdin;
    await writer.write(bytes);
    await writer.close();
  }
  const output = await within(child.output(), `aesm ${args[0]} to finish`, 60_000);
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A long-running command (listen, receive): its stderr read line by line, killed at the end. */
class Running extends Child {
  readonly stderrLines: string[] = [];
  #piped: boolean;

  constructor(args: string[], options: { stdin?: boolean; stdout?: boolean } = {}) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, ...args],
      env: {},
      stdin: options.stdin ? "piped" : "null",
      stdout: options.stdout ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    super(child, child.stderr, "The command");
    this.#piped = options.stdout ?? false;
  }

  /** The next stderr line. */
  override async line(what: string): Promise<string> {
    try {
      const line = await super.line(what);
      this.stderrLines.push(line);
      return line;
    } catch (error) {
      throw new Error(`${(error as Error).message}: ${this.stderrLines.join("\n")}`);
    }
  }

  /** The stderr line that matches `pattern`, skipping others. */
  async lineMatching(pattern: RegExp, what: string): Promise<RegExpMatchArray> {
    while (true) {
      const match = (await this.line(what)).match(pattern);
      if (match !== null) return match;
    }
  }

  /** The address and public key of the banner: `... on 127.0.0.1:PORT, public key KEY`. */
  async banner(): Promise<{ address: string; port: string; key: string }> {
    const [, address, port, key] = await this.lineMatching(
      / on (127\.0\.0\.1:(\d+)), public key ([0-9a-f]{64})$/,
      "the banner",
    );
    return { address, port, key };
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await super[Symbol.asyncDispose]();
    if (this.#piped) await this.child.stdout.cancel().catch(() => {});
  }
}

async function tempDir(): Promise<string & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "aesm_cli_" });
  return Object.assign(path, {
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  }) as unknown as string & AsyncDisposable;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Writes `bytes` of random data to `path`, 1 MiB at a time. */
async function randomFile(path: string, bytes: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true });
  const chunk = new Uint8Array(1024 * 1024);
  for (let written = 0; written < bytes; written += chunk.length) {
    for (let i = 0; i < chunk.length; i += 65536) {
      crypto.getRandomValues(chunk.subarray(i, i + 65536));
    }
    const part = chunk.subarray(0, Math.min(chunk.length, bytes - written));
    for (let done = 0; done < part.length;) done += await file.write(part.subarray(done));
  }
}

/** Waits (bounded) until a partial file holds at least `bytes`. */
async function partialReaches(path: string, bytes: number): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    const size = await Deno.stat(path).then((info) => info.size, () => 0);
    if (size >= bytes) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail(`${path} never reached ${bytes} bytes`);
}

Deno.test("aesm keygen writes a 0600 key file that pubkey reads back, and never overwrites one", async () => {
  await using dir = await tempDir();
  const path = `${dir}/server.key`;
  const made = await aesm(["keygen", "--out", path]);
  assert.equal(made.code, 0, made.stderr);
  const printed = made.stdout.trim();
  assert.match(printed, /^[0-9a-f]{64}$/);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  const pair = await readKeyFile(path);
  assert.equal(
    printed,
    Array.from(pair.publicKey, (b) => b.toString(16).padStart(2, "0")).join(""),
  );
  assert.equal(JSON.parse(await Deno.readTextFile(path)).format, "aesm-key-file");

  const read = await aesm(["pubkey", path]);
  assert.deepEqual([read.code, read.stdout], [0, `${printed}\n`]);

  const again = await aesm(["keygen", "--out", path]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^aesm keygen: Cannot write key file .*never overwritten.*--out/);
  assert.equal(again.stderr.trim().split("\n").length, 1);
  assert.equal((await aesm(["pubkey", path])).stdout, `${printed}\n`);

  const inCwd = await aesm(["keygen"], { cwd: dir });
  assert.equal(inCwd.code, 0, inCwd.stderr);
  assert.equal((await aesm(["pubkey", `${dir}/aesm.key`])).stdout, inCwd.stdout);

  await Deno.chmod(path, 0o644);
  const exposed = await aesm(["pubkey", path]);
  assert.equal(exposed.code, 1);
  assert.match(exposed.stderr, /others may read it.*chmod 600/);
});

Deno.test("every command answers --help on stdout, and a wrong command line exits 2 with one line", async () => {
  for (const command of ["keygen", "pubkey", "listen", "connect", "send", "receive"]) {
    const help = await aesm([command, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^Usage: aesm ${command}`));
    assert.match(help.stdout, /Exit codes:/);
  }
  const general = await aesm(["--help"]);
  assert.match(general.stdout, /Commands:[\s\S]*receive --out DIR/);

  for (
    const args of [
      ["frobnicate"],
      ["connect"],
      ["connect", "127.0.0.1"],
      ["connect", "127.0.0.1:7000", "--bogus"],
      ["connect", "127.0.0.1:7000", "--pin", "abc"],
      ["listen", "70000"],
      ["listen", "0", "--raw", "--json"],
      ["receive"],
      ["send", "no-such-file", "127.0.0.1:1"],
    ]
  ) {
    const wrong = await aesm(args);
    assert.equal(wrong.code, 2, `${args.join(" ")}: ${wrong.stderr}`);
    assert.equal(wrong.stderr.trim().split("\n").length, 1, wrong.stderr);
    assert.match(wrong.stderr, /^aesm( \w+)?: Cannot /);
  }
});

Deno.test("aesm connect says nothing listens with exit code 4", async () => {
  using probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const refused = await aesm(["connect", `127.0.0.1:${port}`]);
  assert.equal(refused.code, 4);
  assert.match(refused.stderr, /connection refused \(is a server listening there\?\)/);
});

Deno.test("aesm listen --echo and aesm connect --pin carry stdin lines through pipes as text and JSON", async () => {
  await using dir = await tempDir();
  await using server = new Running(["listen", "0", "--echo", "--key", `${dir}/server.key`]);
  const { address, key } = await server.banner();
  assert.equal((await aesm(["pubkey", `${dir}/server.key`])).stdout.trim(), key);

  const text = await aesm(["connect", address, "--pin", key, "--count", "3"], {
    stdin: "hello\r\nwörld\n\nlast line without newline",
  });
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stdout, "hello\nwörld\n\n");
  assert.match(text.stderr, new RegExp(`connected to ${address}, server key ${key}`));

  const json = await aesm(["connect", address, "--pin", key, "--json", "--count", "1"], {
    stdin: "as json\n",
  });
  const line = JSON.parse(json.stdout);
  assert.deepEqual([line.address, line.text], [address, "as json"]);
  assert.ok(Math.abs(line.time - Date.now()) < 600_000);

  const sendOnly = await aesm(["connect", address, "--pin", key, "--quit-after", "0"], {
    stdin: "sent, then closed\n",
  });
  assert.equal(sendOnly.code, 0, sendOnly.stderr);

  // Activity lines go to stderr, one per event.
  await server.lineMatching(/^127\.0\.0\.1:\d+ connected, key [0-9a-f]{64}$/, "a connected line");
  await server.lineMatching(/^127\.0\.0\.1:\d+ disconnected \(normal\)$/, "a disconnected line");
});

Deno.test("aesm connect --raw sends stdin's bytes as they are and prints the echo byte for byte", async () => {
  await using server = new Running(["listen", "0", "--echo", "--raw"]);
  const { address, key } = await server.banner();
  const bytes = new Uint8Array(100_000);
  for (let i = 0; i < bytes.length; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, i + 65536));
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "connect", address, "--pin", key, "--raw"],
    env: {},
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(bytes);
  const received: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of child.stdout) {
    received.push(chunk);
    length += chunk.length;
    if (length >= bytes.length) break;
  }
  await writer.close();
  child.kill("SIGTERM");
  assert.equal((await within(child.status, "connect to exit on SIGTERM")).code, 0);
  const echoed = new Uint8Array(length);
  let offset = 0;
  for (const chunk of received) {
    echoed.set(chunk, offset);
    offset += chunk.length;
  }
  assert.deepEqual(echoed, bytes);
});

Deno.test("aesm listen prints a client's lines on stdout only, and sends its own stdin lines to the client", async () => {
  await using server = new Running(["listen", "0", "--once"], { stdin: true, stdout: true });
  const { address } = await server.banner();
  // Written before anyone connects: the line waits for the first client.
  const serverStdin = server.child.stdin.getWriter();
  await serverStdin.write(encoder.encode("welcome\n"));
  const client = await aesm(["connect", address, "--count", "1"], { stdin: "from the client\n" });
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, "welcome\n");
  const status = await within(server.child.status, "listen --once to exit");
  assert.equal(status.code, 0);
  const stdout = decoder.decode(
    new Uint8Array(await new Response(server.child.stdout).arrayBuffer()),
  );
  assert.equal(stdout, "from the client\n");
  await serverStdin.close().catch(() => {});
});

Deno.test("aesm connect with another psk is refused with exit code 3, and the same psk gets in", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(`${dir}/app.psk`, crypto.getRandomValues(new Uint8Array(32)));
  await Deno.writeFile(`${dir}/other.psk`, crypto.getRandomValues(new Uint8Array(32)));
  await using server = new Running(["listen", "0", "--echo", "--psk-file", `${dir}/app.psk`]);
  const { address } = await server.banner();

  const wrong = await aesm(["connect", address, "--psk-file", `${dir}/other.psk`]);
  assert.equal(wrong.code, 3);
  assert.match(wrong.stderr, /pre-shared keys differ: give both sides the same --psk-file/);
  assert.equal(wrong.stderr.trim().split("\n").length, 1);
  await server.lineMatching(/refused \(psk-mismatch\)/, "the server's refusal line");

  const none = await aesm(["connect", address]);
  assert.equal(none.code, 3);
  assert.match(none.stderr, /--psk-file/);

  const hex = Array.from(
    await Deno.readFile(`${dir}/app.psk`),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  await Deno.writeTextFile(`${dir}/app.hex`, `${hex}\n`);
  const right = await aesm(["connect", address, "--psk-file", `${dir}/app.hex`, "--count", "1"], {
    stdin: "in\n",
  });
  assert.deepEqual([right.code, right.stdout], [0, "in\n"], right.stderr);
});

Deno.test("aesm connect --tofu records a new server's key, then refuses a changed one naming the file and line", async () => {
  await using dir = await tempDir();
  const knownHosts = `${dir}/config/known_hosts`;
  const env = { AESM_KNOWN_HOSTS: knownHosts };
  await using server = new Running(["listen", "0", "--echo"]);
  const { address, key } = await server.banner();

  const first = await aesm(["connect", address, "--tofu", "--count", "1"], { env, stdin: "1\n" });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, new RegExp(`trusting ${address} on first use.*${knownHosts}:1`));
  assert.equal(await Deno.readTextFile(knownHosts), `${address} ${key}\n`);

  const second = await aesm(["connect", address, "--tofu", "--count", "1"], { env, stdin: "2\n" });
  assert.deepEqual([second.code, second.stdout], [0, "2\n"], second.stderr);
  assert.doesNotMatch(second.stderr, /trusting/);

  // The same address now answers with another key: a new server, or someone in the middle.
  const otherKey = key.replace(/^./, (digit) => digit === "0" ? "1" : "0");
  await Deno.writeTextFile(
    knownHosts,
    `# pinned by hand\n127.0.0.1:1 ${key}\n${address} ${otherKey}\n`,
  );
  const changed = await aesm(["connect", address, "--tofu"], { env, stdin: "3\n" });
  assert.equal(changed.code, 3);
  assert.match(
    changed.stderr,
    new RegExp(`its public key is not the one recorded in ${knownHosts}:3 .*delete that line`),
  );
  assert.equal(changed.stderr.trim().split("\n").length, 1);
  assert.equal(changed.stdout, "");
});

Deno.test("aesm send and receive move a 50 MB file, checked with SHA-256, and refuse to overwrite it", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir}/in`);
  const source = `${dir}/data.bin`;
  await randomFile(source, 50_000_000);
  await using receiver = new Running(["receive", "--out", `${dir}/in`, "--once"]);
  const { address, key } = await receiver.banner();

  const sent = await aesm(["send", source, address, "--pin", key]);
  assert.equal(sent.code, 0, sent.stderr);
  const digest = await sha256File(source);
  assert.match(
    sent.stderr,
    new RegExp(`sent data\\.bin: 47\\.7 MiB in [\\d.]+ s, [\\d.]+ MB/s, sha256 ${digest} verified`),
  );
  assert.equal((await within(receiver.child.status, "receive --once to exit")).code, 0);
  assert.equal(await sha256File(`${dir}/in/data.bin`), digest);
  await receiver.lineMatching(
    new RegExp(`received .*data\\.bin: .*sha256 ${digest} verified`),
    "the receiver's line",
  );

  await using again = new Running(["receive", "--out", `${dir}/in`]);
  const second = await again.banner();
  const refused = await aesm(["send", source, second.address, "--pin", second.key]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /the receiver refused: data\.bin already exists there/);
  assert.equal(await sha256File(`${dir}/in/data.bin`), digest);
});

Deno.test("a transfer cut by the receiver's death says how to resume, and the next send resumes after the bytes kept", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir}/in`);
  const source = `${dir}/data.bin`;
  await randomFile(source, 50_000_000);
  const part = `${dir}/in/data.bin.part`;

  {
    await using receiver = new Running(["receive", "--out", `${dir}/in`]);
    const { address, key } = await receiver.banner();
    const sending = aesm(["send", source, address, "--pin", key, "--retries", "0"]);
    await partialReaches(part, 4 * 1024 * 1024);
    receiver.child.kill("SIGKILL");
    const cut = await sending;
    assert.equal(cut.code, 1);
    assert.match(
      cut.stderr,
      /Cannot send .*data\.bin to 127\.0\.0\.1:\d+: the connection dropped after [\d.]+ MiB of 47\.7 MiB .*run the same command again to resume/,
    );
  }
  const kept = (await Deno.stat(part)).size;
  assert.ok(kept > 0 && kept < 50_000_000, `kept ${kept} bytes`);

  await using receiver = new Running(["receive", "--out", `${dir}/in`, "--once"]);
  const { address, key } = await receiver.banner();
  const resumed = await aesm(["send", source, address, "--pin", key]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming data\.bin after/);
  assert.match(resumed.stderr, /resumed at/);
  assert.equal(await sha256File(`${dir}/in/data.bin`), await sha256File(source));
  await assert.rejects(Deno.stat(part), Deno.errors.NotFound);
});

Deno.test("a partial file that differs from the sender's is sent again whole", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir}/in`);
  const source = `${dir}/small.bin`;
  await randomFile(source, 3_000_000);
  await randomFile(`${dir}/in/small.bin.part`, 1_000_000); // Same name, other bytes.
  await using receiver = new Running(["receive", "--out", `${dir}/in`, "--once"]);
  const { address, key } = await receiver.banner();
  const sent = await aesm(["send", source, address, "--pin", key]);
  assert.equal(sent.code, 0, sent.stderr);
  assert.match(sent.stderr, /partial file differs from this one: sending it whole/);
  assert.doesNotMatch(sent.stderr, /resumed at/);
  assert.equal(await sha256File(`${dir}/in/small.bin`), await sha256File(source));
});

Deno.test("aesm send reports the receiver's failure: a name the receiver does not allow", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir}/in`);
  await Deno.writeTextFile(`${dir}/sneaky.part`, "a name receive keeps for partial files");
  await using receiver = new Running(["receive", "--out", `${dir}/in`, "--once"]);
  const { address, key } = await receiver.banner();
  const sent = await aesm(["send", `${dir}/sneaky.part`, address, "--pin", key]);
  assert.equal(sent.code, 1);
  assert.match(
    sent.stderr,
    /Cannot send .*: the receiver failed: the name "sneaky\.part" is not allowed/,
  );
  assert.equal((await within(receiver.child.status, "receive --once to exit")).code, 1);
  assert.deepEqual([...Deno.readDirSync(`${dir}/in`)], []);
});

Deno.test("aesm send retries after a drop and resumes by itself once the receiver is back on its port", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir}/in`);
  const source = `${dir}/data.bin`;
  await randomFile(source, 50_000_000);
  const part = `${dir}/in/data.bin.part`;
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(probe.addr.port);
  probe.close();
  // The same key file, so the restarted receiver has the key the sender pinned.
  const args = ["receive", "--out", `${dir}/in`, "--port", port, "--key", `${dir}/r.key`];

  await using first = new Running(args);
  const { address, key } = await first.banner();
  const sending = aesm(["send", source, address, "--pin", key, "--retries", "5"]);
  await partialReaches(part, 4 * 1024 * 1024);
  first.child.kill("SIGKILL");
  await first.child.status;
  await using second = new Running([...args, "--once"]);
  assert.equal((await second.banner()).key, key);

  const sent = await sending;
  assert.equal(sent.code, 0, sent.stderr);
  assert.match(sent.stderr, /the connection dropped after .*; resuming in 1 s \(retry 1 of 5\)/);
  assert.match(sent.stderr, /resumed at/);
  assert.equal(await sha256File(`${dir}/in/data.bin`), await sha256File(source));
});

Deno.test("aesm listen --allow admits the client whose key file it names and refuses others with exit code 3", async () => {
  await using dir = await tempDir();
  const allowed = (await aesm(["keygen", "--out", `${dir}/client.key`])).stdout.trim();
  await using server = new Running(["listen", "0", "--echo", "--allow", allowed]);
  const { address } = await server.banner();
  const inside = await aesm(["connect", address, "--key", `${dir}/client.key`, "--count", "1"], {
    stdin: "let me in\n",
  });
  assert.deepEqual([inside.code, inside.stdout], [0, "let me in\n"], inside.stderr);
  const outside = await aesm(["connect", address, "--key", `${dir}/other.key`]);
  assert.equal(outside.code, 3);
  assert.match(outside.stderr, /does not allow this client's key.*--allow/);
  assert.equal((await Deno.stat(`${dir}/other.key`)).mode! & 0o777, 0o600); // Made on first use.
});

Deno.test("aesm connect exits 0 when the server closes cleanly on Ctrl-C, and 1 when it is cut off", async () => {
  for (const [signal, code] of [["SIGINT", 0], ["SIGKILL", 1]] as const) {
    await using server = new Running(["listen", "0"]);
    const { address } = await server.banner();
    const client = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "connect", address],
      env: {},
      stdin: "piped", // Held open: only the server's end ends the client.
      stdout: "null",
      stderr: "piped",
    }).spawn();
    await server.lineMatching(/ connected, key /, "the client to connect");
    server.child.kill(signal);
    const output = await within(client.output(), `connect to exit after the server's ${signal}`);
    await client.stdin.close().catch(() => {});
    const stderr = decoder.decode(output.stderr);
    assert.equal(output.code, code, stderr);
    if (code === 1) assert.match(stderr, /Cannot keep the connection to .*without a close/);
  }
});

Deno.test("aesm listen ends with code 0 when the reader of its stdout goes, as after | head -1", async () => {
  await using server = new Running(["listen", "0", "--echo"], { stdout: true });
  const { address } = await server.banner();
  const stdout = server.child.stdout.getReader();
  const first = await aesm(["connect", address, "--count", "1"], { stdin: "one\n" });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(decoder.decode((await within(stdout.read(), "listen's first line")).value), "one\n");
  await stdout.cancel(); // The reader goes away.
  const second = await aesm(["connect", address, "--count", "1"], { stdin: "two\n" });
  assert.equal(second.code, 0, second.stderr);
  assert.equal((await within(server.child.status, "listen to end")).code, 0);
});

Deno.test("Ctrl-C stops aesm send between messages with exit code 130, and the receiver keeps the partial file", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir}/in`);
  const source = `${dir}/data.bin`;
  await randomFile(source, 50_000_000);
  await using receiver = new Running(["receive", "--out", `${dir}/in`]);
  const { address, key } = await receiver.banner();
  const sender = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "send", source, address, "--pin", key],
    env: {},
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await partialReaches(`${dir}/in/data.bin.part`, 4 * 1024 * 1024);
  sender.kill("SIGINT");
  const output = await within(sender.output(), "send to stop after Ctrl-C");
  const stderr = decoder.decode(output.stderr);
  assert.equal(output.code, 130, stderr);
  assert.match(stderr, /interrupted after [\d.]+ MiB of 47\.7 MiB; run the same command again/);
  await receiver.lineMatching(
    /data\.bin cut: .*the partial file is kept/,
    "the receiver's cut line",
  );
});
