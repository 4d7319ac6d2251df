// Copyright 2026 the aesm authors. MIT license.
/**
 * The command line's arguments, parsed by hand (no dependencies): flags,
 * addresses, hex keys. Private to the CLI.
 *
 * @module
 */

/** A mistake on the command line: exit code 2, with the message and a pointer to `--help`. */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong, and what to do.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** What a flag takes: nothing, one value, or one value each time it is given. */
export type FlagKind = "boolean" | "string" | "list";

/** The flags a command knows, by name without the dashes. */
export type FlagSpec = Record<string, FlagKind>;

/** A command line, parsed. */
export interface ParsedArgs {
  /** The arguments that are not flags, in order. */
  readonly positionals: string[];
  /** Boolean flags given. */
  readonly booleans: Set<string>;
  /** The value of each string flag given (the last one if given twice). */
  readonly strings: Map<string, string>;
  /** The values of each list flag, in order. */
  readonly lists: Map<string, string[]>;
}

/**
 * Parses `args` against the flags `spec` allows: `--name value`,
 * `--name=value`, `-h` for `--help`, and `--` to end the flags.
 *
 * @throws {UsageError} On an unknown flag or a flag missing its value.
 */
export function parseArgs(command: string, args: readonly string[], spec: FlagSpec): ParsedArgs {
  const parsed: ParsedArgs = {
    positionals: [],
    booleans: new Set(),
    strings: new Map(),
    lists: new Map(),
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      parsed.positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg === "-h") {
      parsed.booleans.add("help");
      continue;
    }
    if (!arg.startsWith("--") || arg === "-") {
      if (arg.startsWith("-") && arg !== "-") throw unknownFlag(command, arg);
      parsed.positionals.push(arg);
      continue;
    }
    const equals = arg.indexOf("=");
    const name = arg.slice(2, equals === -1 ? undefined : equals);
    const kind = name === "help" ? "boolean" : spec[name];
    if (kind === undefined) throw unknownFlag(command, arg);
    if (kind === "boolean") {
      if (equals !== -1) throw new UsageError(`Cannot use --${name}=...: --${name} takes no value`);
      parsed.booleans.add(name);
      continue;
    }
    const value = equals === -1 ? args[++i] : arg.slice(equals + 1);
    if (value === undefined) {
      throw new UsageError(`Cannot use --${name}: it needs a value (see aesm ${command} --help)`);
    }
    if (kind === "string") parsed.strings.set(name, value);
    else parsed.lists.set(name, [...parsed.lists.get(name) ?? [], value]);
  }
  return parsed;
}

function unknownFlag(command: string, flag: string): UsageError {
  return new UsageError(`Cannot use ${flag}: aesm ${command} has no such option (see --help)`);
}

/**
 * Checks how many positional arguments a command got.
 *
 * @throws {UsageError} If there are fewer than `min` or more than `max`.
 */
export function expectPositionals(
  command: string,
  parsed: ParsedArgs,
  names: readonly string[],
  min = names.length,
): string[] {
  const got = parsed.positionals;
  if (got.length < min) {
    throw new UsageError(
      `Cannot start: missing ${names.slice(got.length).join(" ")} ` +
        `(see aesm ${command} --help)`,
    );
  }
  if (got.length > names.length) {
    throw new UsageError(
      `Cannot start: unexpected argument "${got[names.length]}" ` +
        `(see aesm ${command} --help)`,
    );
  }
  return got;
}

/** A host and a port. */
export interface Target {
  readonly hostname: string;
  readonly port: number;
}

/**
 * Reads `HOST:PORT`, `[IPV6]:PORT`, or (when `defaultHost` is given) a bare
 * `PORT`.
 *
 * @throws {UsageError} If it is none of these, or the port is not 0 to 65535.
 */
export function parseTarget(text: string, what: string, defaultHost?: string): Target {
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]*)):(\d+)$/.exec(text);
  if (match !== null && (match[1] ?? match[2]) !== "") {
    return { hostname: match[1] ?? match[2], port: parsePort(match[3], what) };
  }
  if (defaultHost !== undefined && /^\d+$/.test(text)) {
    return { hostname: defaultHost, port: parsePort(text, what) };
  }
  const forms = defaultHost === undefined ? "HOST:PORT" : "[HOST:]PORT";
  throw new UsageError(
    `Cannot use ${what} "${text}": expected ${forms}, such as 127.0.0.1:7000 or [::1]:7000`,
  );
}

/**
 * Reads a port number, 0 to 65535.
 *
 * @throws {UsageError} Otherwise.
 */
export function parsePort(text: string, what: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port <= 65535)) {
    throw new UsageError(`Cannot use ${what} "${text}": the port must be a number from 0 to 65535`);
  }
  return port;
}

/**
 * Reads a whole number of at least `min`.
 *
 * @throws {UsageError} Otherwise.
 */
export function parseCount(
  text: string,
  flag: string,
  min: number,
  options?: { integer?: boolean },
): number {
  const pattern = options?.integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
  const value = pattern.test(text) ? Number(text) : NaN;
  if (!(value >= min) || !Number.isSafeInteger(Math.floor(value))) {
    const kind = options?.integer ? "a whole number" : "a number";
    throw new UsageError(`Cannot use --${flag} "${text}": expected ${kind} of at least ${min}`);
  }
  return value;
}

/**
 * Reads a number flag if it was given.
 *
 * @throws {UsageError} If it is not a number of at least `min`.
 */
export function optionalNumber(
  parsed: ParsedArgs,
  flag: string,
  min: number,
  options?: { integer?: boolean },
): number | undefined {
  const text = parsed.strings.get(flag);
  return text === undefined ? undefined : parseCount(text, flag, min, options);
}

/** Formats a host and port the way addresses print: `host:port`, `[::1]:port`. */
export function formatTarget(target: Target): string {
  return target.hostname.includes(":")
    ? `[${target.hostname}]:${target.port}`
    : `${target.hostname}:${target.port}`;
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;

/**
 * Reads a public key given as 64 hex digits.
 *
 * @throws {UsageError} If it is anything else.
 */
export function parseKey(text: string, flag: string): Uint8Array<ArrayBuffer> {
  if (!HEX_KEY.test(text)) {
    throw new UsageError(
      `Cannot use --${flag} "${text.slice(0, 20)}": expected a public key of 64 hex digits ` +
        "(as aesm listen prints it, or aesm pubkey FILE)",
    );
  }
  return fromHex(text);
}

/** Lowercase hex of some bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Bytes from hex digits (already checked). */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(hex.match(/../g)?.map((byte) => parseInt(byte, 16)) ?? []);
}
