// Copyright 2026 the aesm authors. MIT license.
/**
 * The seam between the connection core and the network: a duplex byte
 * transport. The handshake driver, the read loop, the write pump and the
 * close run over this interface only; TCP on `Deno.Conn` (`_transport/tcp.ts`),
 * WebSocket (`_transport/websocket.ts`) and `node:net` (`_transport/node_net.ts`) implement it.
 * Private.
 *
 * @module
 */

/**
 * A reliable, ordered, duplex byte stream with a half-close. One read and
 * one write may be pending at a time.
 */
export interface Transport {
  /**
   * Reads into `buffer`: how many bytes, or `null` once the peer has ended
   * its side (or the transport was closed). Rejects if the connection broke.
   * Reads only when asked: a transport that is not read stops its peer
   * (TCP's flow control) or bounds what it holds.
   */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes all of `bytes`; resolves once they are handed on, so writes pace to the peer. */
  write(bytes: Uint8Array): Promise<void>;
  /** Ends this side's output (TCP's FIN); reading goes on. */
  closeWrite(): Promise<void>;
  /** Releases the transport at once. Idempotent and quiet: never throws. */
  close(): void;
  /** The peer's address, `host:port` (`[::1]:port` for IPv6). */
  readonly remoteAddress: string;
  /** The peer's host alone, for the per-address bounds. */
  readonly remoteHostname: string;
  /** This side's address, `host:port`. */
  readonly localAddress: string;
}

/** Formats `hostname` and `port` as `host:port`, bracketing IPv6 hosts. */
export function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * Formats a network address as `host:port`, bracketing IPv6 hosts: the form
 * of every `address` in this library.
 *
 * @param addr A TCP or UDP address such as `Deno.NetAddr` (a Unix socket address gives its path).
 * @returns The address as `host:port`.
 *
 * @example Formatting IPv4 and IPv6 addresses
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAddress } from "@aesm/aesm/connection";
 *
 * const ipv4 = formatAddress({ transport: "tcp", hostname: "127.0.0.1", port: 80 });
 * assert.equal(ipv4, "127.0.0.1:80");
 * const ipv6 = formatAddress({ transport: "tcp", hostname: "::1", port: 8080 });
 * assert.equal(ipv6, "[::1]:8080");
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * assert.equal(formatAddress(listener.addr), `127.0.0.1:${listener.addr.port}`);
 * ```
 */
export function formatAddress(addr: {
  readonly transport: string;
  readonly hostname?: string;
  readonly port?: number;
  readonly path?: string;
}): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return String(addr.path);
  return hostPort(addr.hostname!, addr.port!);
}

/**
 * Sends `bytes` (a refusal), half-closes, and drains what the peer already
 * sent for up to `linger` ms before closing: closing with unread data makes
 * the kernel send a reset, which can destroy the refusal before the peer
 * reads it.
 */
export async function sendAndClose(
  transport: Transport,
  bytes: Uint8Array,
  linger = 500,
): Promise<void> {
  const timer = setTimeout(() => transport.close(), linger);
  try {
    await transport.write(bytes);
    await transport.closeWrite();
    const sink = new Uint8Array(4096);
    while (await transport.read(sink) !== null) { /* discard */ }
  } catch {
    // The peer is gone, or the linger ran out.
  } finally {
    clearTimeout(timer);
    transport.close();
  }
}
