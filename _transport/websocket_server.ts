// Copyright 2026 the aesm authors. MIT license.
/**
 * The server side of the WebSocket transport on Deno: upgrading a `Request`
 * (from `Deno.serve` or any framework that gives one) and a small HTTP
 * server that does only that. Private.
 *
 * @module
 */

import { hostPort } from "./transport.ts";
import { SUBPROTOCOLS, type WebSocketTransport, whenOpen } from "./websocket.ts";

/** The peer as an HTTP server names it (`Deno.ServeHandlerInfo` has this shape). */
export interface RequestInfo {
  readonly remoteAddr: { readonly hostname: string; readonly port: number };
}

/** What upgrading a request gives: the response to return, and the transport once open. */
export interface Upgrade {
  readonly response: Response;
  /** Resolves once the WebSocket is open; rejects if it is not an aesm upgrade or never opens. */
  readonly opened: Promise<WebSocketTransport>;
}

/**
 * Upgrades `request` to an aesm WebSocket, or answers it with an HTTP error
 * saying why not. The socket must open within `timeout` ms and before
 * `signal` aborts.
 */
export function upgradeRequest(
  request: Request,
  info: RequestInfo | undefined,
  localAddress: string,
  timeout: number,
  signal: AbortSignal,
): Upgrade {
  if (typeof Deno === "undefined") {
    throw new TypeError("Cannot upgrade to WebSocket: a WebSocket server needs Deno");
  }
  const subprotocol = chooseSubprotocol(request);
  if (subprotocol instanceof Response) {
    const opened = Promise.reject(new Error(subprotocol.statusText));
    opened.catch(() => {});
    return { response: subprotocol, opened };
  }
  // The address is gone from the request once it is upgraded.
  const hostname = info?.remoteAddr.hostname ?? "";
  const remoteAddress = info ? hostPort(hostname, info.remoteAddr.port) : "";
  const { socket, response } = Deno.upgradeWebSocket(request, { protocol: subprotocol });
  const ends = () => ({ remoteAddress, remoteHostname: hostname, localAddress, subprotocol });
  const controller = new AbortController();
  const stop = () => controller.abort(signal.reason);
  const timer = setTimeout(
    () => controller.abort(new Error(`Cannot open WebSocket: not open within ${timeout} ms`)),
    timeout,
  );
  signal.addEventListener("abort", stop, { once: true });
  const opened = whenOpen(socket, ends, controller.signal).finally(() => {
    clearTimeout(timer);
    signal.removeEventListener("abort", stop);
  });
  return { response, opened };
}

/** The subprotocol to answer with (the first of ours the client offers), or the refusal. */
function chooseSubprotocol(request: Request): string | Response {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return refuse(426, "Cannot serve this request: aesm expects a WebSocket upgrade");
  }
  const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((protocol) =>
    protocol.trim()
  );
  const chosen = SUBPROTOCOLS.find((protocol) => offered.includes(protocol));
  if (chosen !== undefined) return chosen;
  return refuse(
    400,
    `Cannot upgrade: the client offers neither the ${SUBPROTOCOLS.join(" nor the ")} subprotocol`,
  );
}

function refuse(status: number, message: string): Response {
  return new Response(message, { status, statusText: message });
}

/** An HTTP server that upgrades requests to `path` and answers 404 to others. */
export class WebSocketListener {
  readonly hostname: string;
  readonly port: number;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #closed: Promise<void> | undefined;

  constructor(
    options: { hostname: string; port: number; path: string },
    upgrade: (request: Request, info: RequestInfo) => Response,
  ) {
    if (typeof Deno === "undefined") {
      throw new TypeError("Cannot listen on WebSocket: a WebSocket server needs Deno");
    }
    this.#server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      onListen: () => {},
    }, (request, info) => {
      if (new URL(request.url).pathname !== options.path) {
        return new Response("Not found", { status: 404 });
      }
      return upgrade(request, info);
    });
    this.hostname = this.#server.addr.hostname;
    this.port = this.#server.addr.port;
  }

  /** Stops listening and waits for the server's requests to end. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#server.shutdown();
    return this.#closed;
  }
}
