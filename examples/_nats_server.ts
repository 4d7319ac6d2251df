// Copyright 2026 the aesm authors. MIT license.
// A nats-server on loopback, started and stopped by the program that needs
// one: the cluster example, the scaling bench and the NATS tests.

const HOST = "127.0.0.1";
const POLL_MS = 25;

/** A free TCP port on loopback, as the kernel hands it out. */
export function freePort(): number {
  using listener = Deno.listen({ hostname: HOST, port: 0 });
  return listener.addr.port;
}

/** `nats-server` on the PATH, or in /usr/sbin (Debian's place, not on every user's PATH). */
function natsServerPath(): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (dir !== "" && Deno.statSync(`${dir}/nats-server`).isFile) return `${dir}/nats-server`;
    } catch {
      // Not in this one.
    }
  }
  return "/usr/sbin/nats-server";
}

/** A nats-server process on `127.0.0.1:port`; `start()` again after `stop()` restarts it. */
export class NatsServer {
  readonly port: number;
  #args: readonly string[];
  #child: Deno.ChildProcess | undefined;

  constructor(port: number = freePort(), args: readonly string[] = []) {
    this.port = port;
    this.#args = args;
  }

  /** `host:port`, as NATS clients take it. */
  get address(): string {
    return `${HOST}:${this.port}`;
  }

  /** Starts the server and resolves once it accepts connections (within 10 s). */
  async start(): Promise<void> {
    try {
      this.#child = new Deno.Command(natsServerPath(), {
        args: ["-a", HOST, "-p", String(this.port), ...this.#args],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
    } catch (error) {
      throw new Error("Cannot start nats-server: install it (apt-get install nats-server)", {
        cause: error,
      });
    }
    const deadline = Date.now() + 10_000;
    while (true) {
      try {
        (await Deno.connect({ hostname: HOST, port: this.port })).close();
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(`Cannot reach nats-server on ${this.address}`, { cause: error });
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    }
  }

  /** Stops the server with `signal` and waits for it to exit. Idempotent. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined) return;
    try {
      child.kill(signal);
    } catch {
      // Gone already.
    }
    await child.status;
  }
}
