// Copyright 2026 the aesm authors. MIT license.
/**
 * `aesm listen` and `aesm connect`: an encrypted netcat. Private to the CLI.
 *
 * @module
 */

import {
  expectPositionals,
  formatTarget,
  optionalNumber,
  parseArgs,
  type ParsedArgs,
  parseTarget,
  toHex,
} from "./args.ts";
import { CliError } from "./errors.ts";
import { EXIT, help } from "./help.ts";
import {
  aborted,
  delay,
  interrupted,
  Output,
  type OutputMode,
  outputMode,
  stdinMessages,
} from "./io.ts";
import { CLIENT_FLAGS, connectClient, SERVER_FLAGS, startServer } from "./peer.ts";
import type { ActivityRecord } from "../activity.ts";
import type { ClientNetwork } from "../client.ts";
import type { Connection } from "../connection.ts";
import { ConnectionClosedError } from "../errors.ts";
import type { ServerNetwork } from "../server.ts";

const MODES = { raw: "boolean", json: "boolean" } as const;

/**
 * Runs `aesm listen`.
 *
 * @returns The exit code.
 */
export async function listen(args: readonly string[]): Promise<number> {
  const parsed = parseArgs("listen", args, {
    ...SERVER_FLAGS,
    ...MODES,
    echo: "boolean",
    once: "boolean",
  });
  if (parsed.booleans.has("help")) return help("listen");
  const [where] = expectPositionals("listen", parsed, ["[HOST:]PORT"]);
  const target = parseTarget(where, "address", "127.0.0.1");
  const mode = outputMode(parsed);
  const interrupt = interrupted();
  try {
    await using server = await startServer(target, parsed, "aesm");
    console.error(`listening on ${server.address}, public key ${toHex(server.publicKey)}`);
    const arrivals = new Arrivals();
    const logging = logActivity(server, arrivals);
    const output = new Output(mode);
    const serving = serve(server, output, parsed);
    const reading = parsed.booleans.has("echo")
      ? new Promise<void>(() => {})
      : broadcastStdin(server, mode, arrivals).then(() => new Promise<void>(() => {}));
    await Promise.race([aborted(interrupt.signal), serving, reading, output.ended]);
    await server.stop();
    await serving;
    await logging;
    return EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}

/** Serves every client (or, with `--once`, the first) until the server stops. */
async function serve(server: ServerNetwork, output: Output, parsed: ParsedArgs): Promise<void> {
  const echo = parsed.booleans.has("echo");
  const handlers = new Set<Promise<void>>();
  try {
    while (true) {
      let connection: Connection;
      try {
        connection = await server.accept();
      } catch {
        break; // Stopped.
      }
      const handler = relay(connection, output, echo);
      if (parsed.booleans.has("once")) return await handler;
      handlers.add(handler);
      handler.finally(() => handlers.delete(handler)).catch(() => {});
    }
  } finally {
    await Promise.all(handlers);
  }
}

/** Prints one connection's messages, echoing each back if asked. */
async function relay(connection: Connection, output: Output, echo: boolean): Promise<void> {
  for await (const packet of connection) {
    await output.write(packet);
    // An echo to a peer that stopped reading waits for that peer alone.
    if (echo) await connection.send(packet.data).catch(() => {});
  }
}

/** Tells stdin when a client is there to send to. */
class Arrivals {
  #next = Promise.withResolvers<void>();

  /** Called on each connection. */
  arrived(): void {
    this.#next.resolve();
    this.#next = Promise.withResolvers<void>();
  }

  /** Resolves once some connection of `server` is open. */
  async someone(server: ServerNetwork): Promise<void> {
    while (![...server.connections].some((connection) => !connection.isClosed)) {
      await this.#next.promise;
    }
  }
}

/** Prints the activity log on stderr, one line a record. */
async function logActivity(server: ServerNetwork, arrivals: Arrivals): Promise<void> {
  for await (const record of server.activity) {
    console.error(describeActivity(record));
    if (record.event === "connected") arrivals.arrived();
  }
}

function describeActivity(record: ActivityRecord): string {
  if (record.event === "connected") {
    return `${record.address} connected, key ${toHex(record.publicKey!)}`;
  }
  if (record.event === "refused") {
    return `${record.address} refused (${record.reason}): ${record.message}`;
  }
  return `${record.address} disconnected (${record.reason}${record.clean ? "" : ", not clean"})`;
}

/** Sends each stdin message to every client, waiting for a first one if none is there. */
async function broadcastStdin(
  server: ServerNetwork,
  mode: OutputMode,
  arrivals: Arrivals,
): Promise<void> {
  for await (const message of stdinMessages(mode)) {
    await arrivals.someone(server);
    await server.sendAll(message);
  }
}

/**
 * Runs `aesm connect`.
 *
 * @returns The exit code.
 */
export async function connect(args: readonly string[]): Promise<number> {
  const parsed = parseArgs("connect", args, {
    ...CLIENT_FLAGS,
    ...MODES,
    "quit-after": "string",
    count: "string",
  });
  if (parsed.booleans.has("help")) return help("connect");
  const [where] = expectPositionals("connect", parsed, ["HOST:PORT"]);
  const target = parseTarget(where, "address");
  const mode = outputMode(parsed);
  const count = optionalNumber(parsed, "count", 1, { integer: true });
  const quitAfter = optionalNumber(parsed, "quit-after", 0);
  const interrupt = interrupted();
  try {
    const client = await connectClient(target, parsed, "aesm", { signal: interrupt.signal });
    const output = new Output(mode);
    const printing = print(client, output, count ?? Infinity);
    const sending = sendStdin(client, mode).then(() =>
      quitAfter === undefined ? new Promise<void>(() => {}) : delay(quitAfter, interrupt.signal)
    );
    await Promise.race([aborted(interrupt.signal), printing, sending, output.ended]);
    const info = await client.close();
    await printing;
    if (info.clean) return EXIT.ok;
    throw new CliError(
      `Cannot keep the connection to ${formatTarget(target)}: ${info.message} ` +
        `(${info.reason}); connect again once the server is back`,
      EXIT.failure,
    );
  } finally {
    interrupt.dispose();
  }
}

/** Prints the client's messages until the connection ends or `count` have come. */
async function print(client: ClientNetwork, output: Output, count: number): Promise<void> {
  if (count === 0) return;
  let printed = 0;
  for await (const packet of client) {
    await output.write(packet);
    if (++printed >= count) return;
  }
}

/** Sends stdin as messages; stops quietly if the server has closed. */
async function sendStdin(client: ClientNetwork, mode: OutputMode): Promise<void> {
  try {
    for await (const message of stdinMessages(mode)) await client.send(message);
    await client.flush();
  } catch (error) {
    if (!(error instanceof ConnectionClosedError)) throw error;
    await new Promise<void>(() => {}); // The close decides how this ends.
  }
}
