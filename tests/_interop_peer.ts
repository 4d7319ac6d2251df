// Copyright 2026 the aesm authors. MIT license.
/**
 * Runs tests/interop/peer.mjs, the independent Node.js peer, for the interop tests. Private to
 * the tests.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";

const PEER = new URL("./interop/peer.mjs", import.meta.url).pathname;
/** How long a peer process may live by default; the peer gives up 5 s before. */
const PEER_LIMIT_MS = 30_000;

/** A message as the peer's script spells it; large ones are generated on both sides. */
export type Wire =
  | { text: string }
  | { base64: string }
  | { gen: "binary"; size: number; seed: number }
  | { gen: "text"; count: number; seed: number };

/** The message a script entry stands for: the same rule as `generate()` in peer.mjs. */
export function expand(m: Wire): string | Uint8Array {
  if ("text" in m) return m.text;
  if ("base64" in m) return new Uint8Array(Buffer.from(m.base64, "base64"));
  if (m.gen === "binary") {
    const bytes = new Uint8Array(m.size);
    for (let i = 0; i < m.size; i++) bytes[i] = (i * 31 + m.seed * 7 + (i >> 8)) & 255;
    return bytes;
  }
  return `é€😀 ${m.seed % 10}`.repeat(m.count); // 11 bytes a unit: records split inside characters
}

/**
 * The absolute path of Node.js's `node` on PATH. Searched here, not left to
 * `Deno.Command("node")`: without a `node` on PATH, Deno puts its own shim first on PATH
 * (`node_compat_bin/node`, Deno itself in Node compatibility), which is not Node.js.
 */
function nodePath(): string {
  const windows = Deno.build.os === "windows";
  const deno = Deno.realPathSync(Deno.execPath()); // Deno's own `node` shim is no Node.js
  for (const dir of (Deno.env.get("PATH") ?? "").split(windows ? ";" : ":")) {
    if (!dir) continue;
    const path = `${dir}/${windows ? "node.exe" : "node"}`;
    try {
      const info = Deno.statSync(path);
      const executable = info.isFile && (windows || ((info.mode ?? 0) & 0o111) !== 0);
      if (executable && Deno.realPathSync(path) !== deno) return path;
    } catch {
      // Not in this directory.
    }
  }
  throw new Error(
    "`node` is not on PATH: the interop tests need Node.js 20+ to run tests/interop/peer.mjs",
  );
}

let nodeMajor: number | undefined;
/**
 * The flags Node.js needs for the peer's WebSocket: its global `WebSocket` is behind
 * `--experimental-websocket` before Node 22.
 */
function webSocketFlags(node: string): string[] {
  if (nodeMajor === undefined) {
    const { stdout } = new Deno.Command(node, { args: ["--version"] }).outputSync();
    nodeMajor = Number(/^v(\d+)/.exec(new TextDecoder().decode(stdout))?.[1]);
  }
  return nodeMajor < 22 ? ["--experimental-websocket"] : [];
}

/** One `node tests/interop/peer.mjs` process, read line by line; killed on dispose. */
export class Peer implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  readonly #stderr: Promise<string>;

  /**
   * @param config The peer's JSON configuration (see the top of peer.mjs).
   * @param limitMs How long the process may live; the peer itself gives up 5 s before.
   */
  constructor(config: Record<string, unknown>, limitMs: number = PEER_LIMIT_MS) {
    const node = nodePath();
    const flags = config.url === undefined ? [] : webSocketFlags(node);
    this.#child = new Deno.Command(node, {
      args: [...flags, PEER, JSON.stringify({ timeoutMs: limitMs - 5_000, ...config })],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(limitMs),
    }).spawn();
    this.#stderr = new Response(this.#child.stderr).text();
    let rest = "";
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TransformStream<string, string>({
        transform(chunk, controller) {
          const parts = (rest + chunk).split("\n");
          rest = parts.pop()!;
          for (const line of parts) controller.enqueue(line);
        },
        flush(controller) {
          if (rest) controller.enqueue(rest);
        },
      }),
    ).getReader();
  }

  /** The next line, parsed; fails if the peer's output has ended. */
  async line(): Promise<unknown> {
    const { value, done } = await this.#lines.read();
    if (done) assert.fail(`the peer ended its output early; stderr: ${await this.#stderr}`);
    return JSON.parse(value);
  }

  /** Every line up to the end of the output, and the exit code. */
  async rest<Line>(): Promise<{ lines: Line[]; code: number; stderr: string }> {
    const lines: Line[] = [];
    for (;;) {
      const { value, done } = await this.#lines.read();
      if (done) break;
      lines.push(JSON.parse(value));
    }
    const { code } = await this.#child.status;
    return { lines, code, stderr: await this.#stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // It has exited already.
    }
    await this.#lines.cancel().catch(() => {});
    await this.#child.status;
    await this.#stderr.catch(() => {});
  }
}
