// Copyright 2026 the aesm authors. MIT license.
/**
 * Socket helpers that leave closing to their owner. Private.
 *
 * aesm does not use `conn.readable` and `conn.writable`: `conn.readable`
 * closes the whole socket when it reaches the peer's FIN, which would make
 * the close of `PROTOCOL.md` section 8 impossible.
 *
 * @module
 */

/** Writes all of `bytes` to `conn`. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Closes `conn`, ignoring an already closed socket. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * Sends `bytes` (a refusal), half-closes, and drains what the peer already
 * sent for up to `linger` ms before closing: closing with unread data makes
 * the kernel send a reset, which can destroy the refusal before the peer
 * reads it.
 */
export async function sendAndClose(
  conn: Deno.Conn,
  bytes: Uint8Array,
  linger = 500,
): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), linger);
  try {
    await writeAll(conn, bytes);
    await conn.closeWrite();
    const sink = new Uint8Array(4096);
    while (await conn.read(sink) !== null) { /* discard */ }
  } catch {
    // The peer is gone, or the linger ran out.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}
