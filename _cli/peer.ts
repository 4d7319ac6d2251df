// Copyright 2026 the aesm authors. MIT license.
/**
 * What the network commands share: their security flags, connecting a client
 * (pinned, trusted on first use, or neither), starting a server. Private to
 * the CLI.
 *
 * @module
 */

import {
  type FlagSpec,
  formatTarget,
  fromHex,
  type ParsedArgs,
  parseKey,
  type Target,
  toHex,
  UsageError,
} from "./args.ts";
import { CliError, connectFailure } from "./errors.ts";
import { EXIT } from "./help.ts";
import { type KnownHost, knownHostsPath, lookUp, remember } from "./known_hosts.ts";
import { ClientNetwork, type ClientOptions } from "../client.ts";
import { ServerNetwork, type ServerOptions } from "../server.ts";
import { AuthenticationError } from "../errors.ts";

/** The flags every network command takes. */
export const SECURITY_FLAGS: FlagSpec = { "psk-file": "string", app: "string", key: "string" };
/** The flags of commands that connect. */
export const CLIENT_FLAGS: FlagSpec = { ...SECURITY_FLAGS, pin: "string", tofu: "boolean" };
/** The flags of commands that listen. */
export const SERVER_FLAGS: FlagSpec = { ...SECURITY_FLAGS, allow: "list" };

/**
 * Reads a psk file: 32 bytes, or 64 hex digits (a trailing newline allowed).
 *
 * @throws {CliError} If it is neither.
 */
export async function readPsk(path: string): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = await Deno.readFile(path).catch((error) => {
    throw new CliError(`Cannot read --psk-file ${path}: ${error.message}`, EXIT.usage);
  });
  if (bytes.length === 32) return bytes;
  const text = new TextDecoder().decode(bytes).trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return fromHex(text);
  throw new CliError(
    `Cannot use --psk-file ${path}: expected 32 bytes or 64 hex digits, got ${bytes.length} ` +
      "bytes (make one with: head -c 32 /dev/urandom > FILE)",
    EXIT.usage,
  );
}

/** The options both sides take from `--psk-file`, `--app` and `--key`. */
async function securityOptions(
  parsed: ParsedArgs,
  defaultApp: string,
): Promise<{ psk?: Uint8Array; applicationName: string; keyFile?: string }> {
  const psk = parsed.strings.get("psk-file");
  const keyFile = parsed.strings.get("key");
  const applicationName = parsed.strings.get("app") ?? defaultApp;
  if (applicationName === "") throw new UsageError("Cannot use --app: give a non-empty name");
  return {
    applicationName,
    ...(psk === undefined ? {} : { psk: await readPsk(psk) }),
    ...(keyFile === undefined ? {} : { keyFile }),
  };
}

/**
 * Starts a server from the command's flags.
 *
 * @throws {CliError} If an option is wrong.
 */
export async function startServer(
  target: Target,
  parsed: ParsedArgs,
  defaultApp: string,
  options?: ServerOptions,
): Promise<ServerNetwork> {
  const allowed = parsed.lists.get("allow")?.map((key) => parseKey(key, "allow"));
  return await ServerNetwork.listen({
    ...options,
    ...await securityOptions(parsed, defaultApp),
    hostname: target.hostname,
    port: target.port,
    ...(allowed === undefined ? {} : { allowedPublicKeys: allowed }),
  });
}

/**
 * Connects from the command's flags: `--pin`, or `--tofu` (then a new
 * server's key is recorded, and a changed one refused naming the file and
 * line), or neither.
 *
 * @returns The connected client; its server key is on stderr.
 * @throws {CliError} Why connecting failed, in one line, with the exit code.
 */
export async function connectClient(
  target: Target,
  parsed: ParsedArgs,
  defaultApp: string,
  options?: Partial<ClientOptions>,
): Promise<ClientNetwork> {
  const address = formatTarget(target);
  const trust = await trustFrom(parsed, address);
  let client: ClientNetwork;
  try {
    client = await ClientNetwork.connect({
      // The commands decide themselves when to connect again (send resumes a transfer;
      // connect exits with the close's code): the client's own reconnecting stays off.
      reconnect: false,
      ...options,
      ...await securityOptions(parsed, defaultApp),
      ...target,
      ...(trust.serverPublicKey === undefined ? {} : { serverPublicKey: trust.serverPublicKey }),
    });
  } catch (error) {
    const rejected = error instanceof AuthenticationError && error.reason === "key-rejected";
    if (rejected && trust.known !== undefined) {
      throw keyChanged(address, trust.knownHosts!, trust.known.line);
    }
    throw connectFailure(error, address);
  }
  await announce(client, address, trust, parsed.strings.has("psk-file"));
  return client;
}

/** Which server key to expect: the pinned one, the one known hosts recorded, or any. */
interface Trust {
  readonly serverPublicKey?: Uint8Array<ArrayBuffer>;
  /** The known-hosts file, with `--tofu`. */
  readonly knownHosts?: string;
  /** What it records for this server, if anything. */
  readonly known?: KnownHost;
}

async function trustFrom(parsed: ParsedArgs, address: string): Promise<Trust> {
  const pin = parsed.strings.get("pin");
  const tofu = parsed.booleans.has("tofu");
  if (pin !== undefined && tofu) throw new UsageError("Cannot use --pin with --tofu: pick one");
  if (pin !== undefined) return { serverPublicKey: parseKey(pin, "pin") };
  if (!tofu) return {};
  const knownHosts = knownHostsPath();
  const known = await lookUp(knownHosts, address);
  return known === undefined
    ? { knownHosts }
    : { knownHosts, known, serverPublicKey: fromHex(known.key) };
}

/** Records a server trusted on first use, and says whom the client talks to. */
async function announce(
  client: ClientNetwork,
  address: string,
  trust: Trust,
  psk: boolean,
): Promise<void> {
  const key = toHex(client.remotePublicKey);
  if (trust.knownHosts !== undefined && trust.known === undefined) {
    const line = await remember(trust.knownHosts, address, key);
    console.error(
      `trusting ${address} on first use: key ${key} recorded in ${trust.knownHosts}:${line}`,
    );
  }
  const authenticated = trust.serverPublicKey !== undefined || trust.knownHosts !== undefined ||
    psk;
  console.error(
    `connected to ${address}, server key ${key}` +
      (authenticated ? "" : " (not authenticated: use --pin, --tofu or --psk-file)"),
  );
}

function keyChanged(address: string, file: string, line: number): CliError {
  return new CliError(
    `Cannot connect to ${address}: its public key is not the one recorded in ${file}:${line} ` +
      "(someone in the middle, or a new server key); if the key changed on purpose, " +
      "delete that line",
    EXIT.refused,
  );
}
