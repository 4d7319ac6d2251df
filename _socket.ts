// Copyright 2026 the aesm authors. MIT license.
/**
 * Byte streams over a `Deno.Conn` that leave closing to their owner. Private.
 *
 * `conn.readable` closes the whole socket when it reaches the peer's FIN,
 * which would make the close reply of `PROTOCOL.md` section 8 impossible;
 * these do not.
 *
 * @module
 */

const MIN_READ = 4 * 1024;
const MAX_READ = 256 * 1024;

/**
 * A readable stream of what arrives on `conn`, read only when pulled (so a
 * stalled consumer stops reading the socket, and TCP slows the sender). Each
 * chunk is a fresh buffer: consumers may keep views of it. The read size
 * adapts, from 4 KiB for an idle or chatty connection to 256 KiB for bulk.
 * Ends at the peer's FIN without closing the socket; errors if a read fails.
 */
export function readableFrom(conn: Deno.Conn): ReadableStream<Uint8Array<ArrayBuffer>> {
  let size = MIN_READ;
  return new ReadableStream<Uint8Array<ArrayBuffer>>({
    async pull(controller) {
      const buffer = new Uint8Array(size);
      const n = await conn.read(buffer);
      if (n === null) return controller.close();
      if (n === size) size = Math.min(MAX_READ, size * 4);
      else if (n < size / 4) size = Math.max(MIN_READ, size / 2);
      controller.enqueue(buffer.subarray(0, n));
    },
  }, { highWaterMark: 0 });
}

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
