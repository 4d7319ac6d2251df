// Copyright 2026 the aesm authors. MIT license.
/**
 * aesm: asynchronous, encrypted, message-oriented sockets for Deno.
 *
 * @module
 */

export * from "./cipher.ts";
export * from "./handshake.ts";
