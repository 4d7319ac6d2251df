// Copyright 2026 the aesm authors. MIT license.
/**
 * Escapes text a peer may have chosen before it reaches a log. Private.
 *
 * @module
 */

// C0 and C1 controls, DEL, line and paragraph separators, and the
// bidirectional marks, embeddings, overrides and isolates: what can forge a
// log line, drive a terminal, or reorder what a reader sees.
// deno-lint-ignore no-control-regex -- matching control characters is the point.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/** `text` with every unsafe character written as `\uXXXX`. */
export function escapeText(text: string): string {
  return text.replace(
    UNSAFE,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
