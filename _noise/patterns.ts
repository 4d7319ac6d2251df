// Copyright 2026 the aesm authors. MIT license.
/**
 * Noise handshake patterns as data (revision 34, sections 7.4, 7.5 and 18),
 * and the parser of protocol names. Private.
 *
 * @module
 */

/** A token of a handshake message. */
export type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

/** A handshake pattern: its pre-messages and its messages, initiator first. */
export interface Pattern {
  /** Keys the initiator's peer knows before the handshake. */
  readonly initiatorPreMessage: readonly Token[];
  /** Keys the responder's peer knows before the handshake. */
  readonly responderPreMessage: readonly Token[];
  /** Messages in order; even indexes are sent by the initiator. */
  readonly messages: readonly (readonly Token[])[];
  /** Whether any message carries a `psk` token. */
  readonly psk: boolean;
}

// Each entry: "pre-messages | messages", "->" and "<-" giving directions.
const PATTERNS: Record<string, string> = {
  N: "<- s | -> e, es",
  K: "-> s; <- s | -> e, es, ss",
  X: "<- s | -> e, es, s, ss",
  NN: "| -> e; <- e, ee",
  NK: "<- s | -> e, es; <- e, ee",
  NX: "| -> e; <- e, ee, s, es",
  XN: "| -> e; <- e, ee; -> s, se",
  XK: "<- s | -> e, es; <- e, ee; -> s, se",
  XX: "| -> e; <- e, ee, s, es; -> s, se",
  KN: "-> s | -> e; <- e, ee, se",
  KK: "-> s; <- s | -> e, es, ss; <- e, ee, se",
  KX: "-> s | -> e; <- e, ee, se, s, es",
  IN: "| -> e, s; <- e, ee, se",
  IK: "<- s | -> e, es, s, ss; <- e, ee, se",
  IX: "| -> e, s; <- e, ee, se, s, es",
  NK1: "<- s | -> e; <- e, ee, es",
  NX1: "| -> e; <- e, ee, s; -> es",
  X1N: "| -> e; <- e, ee; -> s; <- se",
  X1K: "<- s | -> e, es; <- e, ee; -> s; <- se",
  XK1: "<- s | -> e; <- e, ee, es; -> s, se",
  X1K1: "<- s | -> e; <- e, ee, es; -> s; <- se",
  X1X: "| -> e; <- e, ee, s, es; -> s; <- se",
  XX1: "| -> e; <- e, ee, s; -> es, s, se",
  X1X1: "| -> e; <- e, ee, s; -> es, s; <- se",
  K1N: "-> s | -> e; <- e, ee; -> se",
  K1K: "-> s; <- s | -> e, es; <- e, ee; -> se",
  KK1: "-> s; <- s | -> e; <- e, ee, se, es",
  K1K1: "-> s; <- s | -> e; <- e, ee, es; -> se",
  K1X: "-> s | -> e; <- e, ee, s, es; -> se",
  KX1: "-> s | -> e; <- e, ee, se, s; -> es",
  K1X1: "-> s | -> e; <- e, ee, s; -> se, es",
  I1N: "| -> e, s; <- e, ee; -> se",
  I1K: "<- s | -> e, es, s; <- e, ee; -> se",
  IK1: "<- s | -> e, s; <- e, ee, se, es",
  I1K1: "<- s | -> e, s; <- e, ee, es; -> se",
  I1X: "| -> e, s; <- e, ee, s, es; -> se",
  IX1: "| -> e, s; <- e, ee, se, s; -> es",
  I1X1: "| -> e, s; <- e, ee, s; -> se, es",
};

/** The names of every supported base pattern. */
export const PATTERN_NAMES: readonly string[] = Object.keys(PATTERNS);

/** A parsed protocol name. */
export interface Protocol {
  readonly name: string;
  readonly patternName: string;
  readonly pattern: Pattern;
}

const NAME = /^Noise_([A-Z0-9]+?)((?:psk\d)(?:\+psk\d)*)?_([^_]+)_([^_]+)_([^_]+)$/;

/**
 * Parses a protocol name such as `Noise_XXpsk0+psk3_25519_AESGCM_SHA256`.
 *
 * @throws {TypeError} If the name is malformed, the pattern or a modifier is
 * unknown, or the DH, cipher or hash is not 25519, AESGCM and SHA256.
 */
export function parseProtocolName(name: string): Protocol {
  if (typeof name !== "string") {
    throw new TypeError("Cannot parse protocol name: expected a string");
  }
  // A server parses the same one or two names for every handshake.
  let parsed = parsedNames.get(name);
  if (parsed === undefined) {
    if (parsedNames.size >= MAX_PARSED) parsedNames.clear();
    parsed = parse(name);
    const { pattern } = parsed;
    [pattern.initiatorPreMessage, pattern.responderPreMessage, ...pattern.messages]
      .forEach((tokens) => Object.freeze(tokens));
    parsedNames.set(name, Object.freeze(parsed));
  }
  return parsed;
}

const parsedNames = new Map<string, Protocol>();
const MAX_PARSED = 64;

function parse(name: string): Protocol {
  const match = NAME.exec(name);
  if (match === null) {
    throw new TypeError(
      `Cannot parse protocol name: "${name}" is not of the form Noise_PATTERN_DH_CIPHER_HASH`,
    );
  }
  const [, base, modifiers, dhName, cipherName, hashName] = match;
  const unsupported = [[dhName, "25519"], [cipherName, "AESGCM"], [hashName, "SHA256"]]
    .find(([got, want]) => got !== want);
  if (unsupported) {
    throw new TypeError(
      `Cannot use protocol "${name}": only 25519, AESGCM and SHA256 are supported, got ${
        unsupported[0]
      }`,
    );
  }
  const spec = PATTERNS[base];
  if (spec === undefined || !Object.hasOwn(PATTERNS, base)) {
    throw new TypeError(`Cannot use protocol "${name}": unknown pattern ${base}`);
  }
  const pattern = withPsks(parsePattern(spec), modifiers, name);
  return { name, patternName: base + (modifiers ?? ""), pattern };
}

function parsePattern(spec: string): Pattern {
  const [pre, body] = spec.split("|");
  let initiatorPreMessage: Token[] = [];
  let responderPreMessage: Token[] = [];
  for (const line of lines(pre)) {
    if (line.initiator) initiatorPreMessage = line.tokens;
    else responderPreMessage = line.tokens;
  }
  const messages = lines(body).map((line) => line.tokens);
  return { initiatorPreMessage, responderPreMessage, messages, psk: false };
}

function lines(text: string): { initiator: boolean; tokens: Token[] }[] {
  return text.split(";").map((line) => line.trim()).filter((line) => line !== "")
    .map((line) => ({
      initiator: line.startsWith("->"),
      tokens: line.slice(2).split(",").map((token) => token.trim() as Token),
    }));
}

function withPsks(pattern: Pattern, modifiers: string | undefined, name: string): Pattern {
  if (modifiers === undefined) return pattern;
  const messages = pattern.messages.map((message) => [...message]);
  const seen = new Set<number>();
  for (const modifier of modifiers.split("+")) {
    const position = Number(modifier.slice(3));
    if (seen.has(position) || position > messages.length) {
      throw new TypeError(`Cannot use protocol "${name}": invalid modifier ${modifier}`);
    }
    seen.add(position);
    if (position === 0) messages[0].unshift("psk");
    else messages[position - 1].push("psk");
  }
  return { ...pattern, messages, psk: true };
}
