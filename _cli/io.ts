// Copyright 2026 the aesm authors. MIT license.
/**
 * The CLI's standard streams: messages to stdout in one of three modes,
 * stdin to messages, lines on stderr. Private to the CLI.
 *
 * @module
 */

import { type ParsedArgs, UsageError } from "./args.ts";
import { CliError } from "./errors.ts";
import { EXIT } from "./help.ts";
import type { Packet } from "../queue.ts";

/** How messages print: a line of text each, their bytes as they are, or a JSON object each. */
export type OutputMode = "text" | "raw" | "json";

/** The longest stdin line sent as one message: the default `maxMessageSize`. */
const MAX_LINE = 16 * 1024 * 1024;
const encoder = new TextEncoder();

/**
 * The output mode the flags ask for.
 *
 * @throws {UsageError} If both `--raw` and `--json` are given.
 */
export function outputMode(parsed: ParsedArgs): OutputMode {
  const raw = parsed.booleans.has("raw");
  const json = parsed.booleans.has("json");
  if (raw && json) throw new UsageError("Cannot use --raw with --json: pick one");
  return raw ? "raw" : json ? "json" : "text";
}

/** Writes all of `bytes` to a Deno writer such as `Deno.stdout`. */
export async function writeAll(
  writer: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await writer.write(bytes.subarray(done));
}

/**
 * Prints received messages to stdout, one at a time in the order given, so
 * that a slow reader of stdout slows the peers (through TCP), never memory.
 */
export class Output {
  #mode: OutputMode;
  #last: Promise<void> = Promise.resolve();
  #ended = Promise.withResolvers<void>();
  #broken = false;

  /** Prints in `mode`. */
  constructor(mode: OutputMode) {
    this.#mode = mode;
    this.#ended.promise.catch(() => {}); // Whoever races it sees the error.
  }

  /**
   * Resolves when stdout's reader has gone (a broken pipe, as after `| head -1`): the
   * command is done. Rejects on any other write error. Later writes print nothing.
   */
  get ended(): Promise<void> {
    return this.#ended.promise;
  }

  /** Prints one packet once those before it are printed. */
  write(packet: Packet): Promise<void> {
    if (this.#broken) return this.#last;
    const bytes = this.#format(packet);
    this.#last = this.#last.then(() => bytes && writeAll(Deno.stdout, bytes)).catch((error) => {
      this.#broken = true;
      if (error instanceof Deno.errors.BrokenPipe) this.#ended.resolve();
      else this.#ended.reject(error);
    });
    return this.#last;
  }

  #format(packet: Packet): Uint8Array | undefined {
    if (this.#mode === "raw") return packet.bytes();
    if (this.#mode === "json") return encoder.encode(JSON.stringify(toJson(packet)) + "\n");
    try {
      return encoder.encode(packet.text() + "\n");
    } catch {
      console.error(
        `${packet.address}: a binary message of ${packet.bytes().length} bytes ` +
          "(not printed: use --raw or --json)",
      );
      return undefined;
    }
  }
}

function toJson(packet: Packet): Record<string, unknown> {
  const head = { time: packet.time, address: packet.address };
  if (packet.isText) return { ...head, text: packet.data };
  const bytes = packet.bytes();
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return { ...head, base64: btoa(binary) };
}

/**
 * Stdin as messages: each line as text (without its `\n` or `\r\n`), or
 * with `raw`, each chunk as bytes.
 *
 * @throws {CliError} If a line is longer than 16 MiB.
 */
export async function* stdinMessages(mode: OutputMode): AsyncGenerator<string | Uint8Array> {
  if (mode === "raw") {
    for await (const chunk of Deno.stdin.readable) yield chunk;
    return;
  }
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    const lines = chunk.split("\n");
    lines[0] = pending + lines[0];
    pending = lines.pop()!;
    if (pending.length > MAX_LINE) {
      throw new CliError(
        "Cannot send a stdin line over 16 MiB as one message: use --raw for such data",
        EXIT.failure,
      );
    }
    for (const line of lines) yield line.endsWith("\r") ? line.slice(0, -1) : line;
  }
  if (pending !== "") yield pending;
}

/**
 * A signal that aborts on Ctrl-C or SIGTERM (just Ctrl-C where SIGTERM cannot
 * be listened to), so that the command closes cleanly; a second one exits at
 * once with code 130. `dispose` removes the listeners.
 */
export function interrupted(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const stop = () => {
    if (controller.signal.aborted) Deno.exit(EXIT.interrupted);
    controller.abort(new DOMException("Interrupted", "AbortError"));
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const name of signals) Deno.addSignalListener(name, stop);
  return {
    signal: controller.signal,
    dispose: () => signals.forEach((name) => Deno.removeSignalListener(name, stop)),
  };
}

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

/** Resolves after `seconds`, or at once when `signal` aborts; leaves no timer behind. */
export function delay(seconds: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, seconds * 1000);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
