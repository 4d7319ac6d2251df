// Copyright 2026 the aesm authors. MIT license.
/**
 * The control channel between the bench and its peer subprocesses: one JSON
 * object per line, commands on the peer's stdin, reports on its stdout.
 * Private.
 *
 * @module
 */

/** A report or command: `type` says which. */
export interface Message {
  readonly type: string;
  readonly [field: string]: unknown;
}

/** Milliseconds since the Unix epoch, with sub-millisecond precision, comparable across processes. */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/** Splits text into lines, without the line ends. */
export class LineStream extends TransformStream<string, string> {
  #rest = "";

  constructor() {
    super({
      transform: (chunk, controller) => {
        const lines = (this.#rest + chunk).split("\n");
        this.#rest = lines.pop()!;
        for (const line of lines) if (line !== "") controller.enqueue(line);
      },
      flush: (controller) => {
        if (this.#rest !== "") controller.enqueue(this.#rest);
      },
    });
  }
}

/** Reads JSON messages from a byte stream, one per line. */
export function messages(bytes: ReadableStream<Uint8Array>): ReadableStreamDefaultReader<Message> {
  return bytes
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new LineStream())
    .pipeThrough(
      new TransformStream<string, Message>({
        transform: (line, controller) => {
          try {
            controller.enqueue(JSON.parse(line));
          } catch {
            controller.enqueue({ type: "log", line });
          }
        },
      }),
    )
    .getReader();
}

const encoder = new TextEncoder();
const PEER = new URL("./_peer.ts", import.meta.url);
const STDERR_TAIL = 2000;

/**
 * A peer subprocess (`bench/_peer.ts`). The process raises its file
 * descriptor limit to the hard limit first, reads its role (which may hold
 * the TLS key, so it never goes on a command line) as the first line of its
 * stdin, and exits by itself after `capMs` or when its stdin closes.
 */
export class Peer implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #reports: ReadableStreamDefaultReader<Message>;
  #stderr = "";
  #exited = false;
  #status: Promise<Deno.CommandStatus>;

  /**
   * Starts a peer.
   *
   * @param role What the peer does, and its parameters.
   * @param capMs The peer's own hard time cap.
   */
  constructor(role: Message, capMs: number) {
    const command = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
        "sh",
        Deno.execPath(),
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        PEER.pathname,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    this.#child = command.spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#reports = messages(this.#child.stdout);
    this.#collectStderr();
    this.#status = this.#child.status.finally(() => void (this.#exited = true));
    this.send({ ...role, capMs }).catch(() => {});
  }

  /** The peer's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  async #collectStderr(): Promise<void> {
    try {
      for await (const text of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr = (this.#stderr + text).slice(-STDERR_TAIL);
      }
    } catch {
      // The process is gone.
    }
  }

  /** Sends a command. */
  async send(command: Message): Promise<void> {
    await this.#stdin.write(encoder.encode(JSON.stringify(command) + "\n"));
  }

  /**
   * Waits for the next report, which must be of `type`.
   *
   * @throws {Error} If the peer reports an error, exits, or sends another type.
   */
  async next<T extends Message>(type: string): Promise<T> {
    for (let skipped = 0; skipped < 1000; skipped++) {
      const { value, done } = await this.#reports.read();
      if (done) {
        const status = await this.#status;
        throw new Error(
          `Cannot read peer report: the peer exited (code ${status.code}) before "${type}"${this.#tail()}`,
        );
      }
      if (value.type === "log") continue;
      if (value.type === "error") {
        throw new Error(`Peer failed: ${value.message}${this.#tail()}`);
      }
      if (value.type !== type) {
        throw new Error(`Cannot read peer report: expected "${type}", got "${value.type}"`);
      }
      return value as T;
    }
    throw new Error(`Cannot read peer report: too many log lines before "${type}"`);
  }

  /** Sends a command and waits for its report. */
  async ask<T extends Message>(command: Message, reply: string): Promise<T> {
    await this.send(command);
    return await this.next<T>(reply);
  }

  #tail(): string {
    const tail = this.#stderr.trim();
    return tail === "" ? "" : `\n${tail.split("\n").slice(-8).join("\n")}`;
  }

  /** Kills the peer at once. Idempotent. */
  kill(): void {
    if (this.#exited) return;
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }

  /** Asks the peer to exit, and kills it if it has not within 3 s. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exited) {
      await this.send({ type: "exit" }).catch(() => {});
      const timer = setTimeout(() => this.kill(), 3000);
      await this.#status.catch(() => {});
      clearTimeout(timer);
    }
    await this.#stdin.close().catch(() => {});
    await this.#reports.cancel().catch(() => {});
  }
}
