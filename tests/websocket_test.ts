// Copyright 2026 the aesm authors. MIT license.
// The WebSocket transport (PROTOCOL.md section 12): the same connections,
// queues, activity log and sendAll as TCP; byte flips and garbage over
// WebSocket are caught as they are over TCP.
import assert from "node:assert/strict";
import { generateKeyPair } from "../cipher.ts";
import { ClientNetwork } from "../client.ts";
import { AuthenticationError, ConnectError } from "../errors.ts";
import { type ActivityRecord, ServerNetwork } from "../server.ts";
import { activityOf, bounded, HOST, pattern, rejection, within } from "./_network.ts";
import { pause } from "./_adversary.ts";
import { Prng } from "./_adversary.ts";

const SUBPROTOCOL = "aesm.v1";
const WINDOW_SUBPROTOCOL = "aesm.v1.window";

function wsUrl(server: ServerNetwork, path = "/"): string {
  return `ws://${HOST}:${server.webSocketPort}${path}`;
}

Deno.test("A WebSocket client exchanges text and bytes both ways, gets a sendAll, and closes clean", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    webSocket: { path: "/aesm" },
  });
  await using client = await ClientNetwork.connect({
    url: wsUrl(server, "/aesm"),
    serverPublicKey: server.publicKey,
  });
  await using tcp = await ClientNetwork.connect({ hostname: HOST, port: server.port });
  const connected = await activityOf(server, "connected");
  const connection = await server.accept();
  assert.equal(connected.address, connection.address);
  assert.match(connection.address, /^127\.0\.0\.1:\d+$/);
  assert.equal(client.address, `${HOST}:${server.webSocketPort}`);

  await client.send("hello over WebSocket");
  await client.send(pattern(3 * 65536 + 7, 1)); // Several frames, split across messages.
  assert.equal((await server.receive(bounded()))?.data, "hello over WebSocket");
  assert.deepEqual((await server.receive(bounded()))?.data, pattern(3 * 65536 + 7, 1));
  await connection.send("hello, page");
  await connection.send(pattern(1000, 2));
  assert.equal((await client.receive(bounded()))?.data, "hello, page");
  assert.deepEqual((await client.receive(bounded()))?.data, pattern(1000, 2));

  await server.accept(bounded()); // The TCP client.
  assert.equal(await server.sendAll("to everyone"), 2);
  assert.equal((await client.receive(bounded()))?.data, "to everyone");
  assert.equal((await tcp.receive(bounded()))?.data, "to everyone");

  const info = await client.close();
  assert.deepEqual([info.reason, info.clean], ["normal", true]);
  const seen = await within(connection.closed, "the server's close");
  assert.deepEqual([seen.reason, seen.clean, seen.by], ["normal", true, "remote"]);
  const record = await activityOf(server, "disconnected");
  assert.deepEqual([record.reason, record.clean], ["normal", true]);
});

Deno.test("ServerNetwork.upgrade() serves aesm from the user's own Deno.serve", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0 });
  assert.equal(server.webSocketPort, undefined);
  await using http = Deno.serve({ hostname: HOST, port: 0, onListen() {} }, (request, info) => {
    if (new URL(request.url).pathname === "/chat") return server.upgrade(request, info);
    return new Response("a page");
  });
  const base = `${HOST}:${http.addr.port}`;
  await using client = await ClientNetwork.connect({ url: `ws://${base}/chat` });
  const connection = await server.accept(bounded());
  await connection.send("from the server");
  assert.equal((await client.receive(bounded()))?.data, "from the server");
  assert.equal(await (await fetch(`http://${base}/`)).text(), "a page");

  const plain = await fetch(`http://${base}/chat`);
  assert.equal(plain.status, 426);
  assert.match(await plain.text(), /Cannot serve this request: aesm expects a WebSocket upgrade/);
  const other = new WebSocket(`ws://${base}/chat`, "chat");
  const closed = await within(
    new Promise<CloseEvent>((resolve) => other.addEventListener("close", resolve)),
    "a refused WebSocket",
  );
  assert.equal(closed.wasClean, false);
  assert.equal((await client.close()).clean, true);
  assert.equal((await connection.closed).clean, true);
});

Deno.test("A WebSocket client pinning another key is refused with key-rejected", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, webSocket: {} });
  const other = await generateKeyPair();
  const error = await rejection(
    ClientNetwork.connect({ url: wsUrl(server), serverPublicKey: other.publicKey }),
    "a connect pinning another key",
  );
  assert.ok(error instanceof AuthenticationError);
  assert.equal(error.reason, "key-rejected");
  const refused = await activityOf(server, "refused");
  assert.equal(refused.reason, "key-rejected");
});

Deno.test("ClientNetwork.connect() checks its url and reports a WebSocket that cannot open", async () => {
  await assert.rejects(
    ClientNetwork.connect({ url: "http://127.0.0.1:1/" }),
    (error) =>
      error instanceof TypeError && /url must be a ws:\/\/ or wss:\/\/ URL/.test(error.message),
  );
  using listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = listener.addr.port;
  listener.close();
  const error = await rejection(
    ClientNetwork.connect({ url: `ws://${HOST}:${port}/` }),
    "a connect to a closed port",
  );
  assert.ok(error instanceof ConnectError);
  assert.equal(error.address, `${HOST}:${port}`);
});

/**
 * A WebSocket relay to `target` that hands one direction's byte stream to
 * `edit` on its way; `edit` returning a length cuts the stream there, with a
 * clean WebSocket close (aesm's FIN).
 */
function tamperingRelay(
  target: string,
  edit: (offset: number, bytes: Uint8Array) => number | void,
  direction: "c2s" | "s2c" = "c2s",
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: HOST, port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: SUBPROTOCOL });
    const upstream = new WebSocket(target, SUBPROTOCOL);
    upstream.binaryType = socket.binaryType = "arraybuffer";
    const early: Uint8Array[] = [];
    const offsets = { c2s: 0, s2c: 0 };
    let cut = false;
    const pass = (way: "c2s" | "s2c", data: ArrayBuffer): Uint8Array => {
      const bytes = new Uint8Array(data);
      if (way !== direction || cut) return cut && way === direction ? bytes.subarray(0, 0) : bytes;
      const keep = edit(offsets[way], bytes);
      offsets[way] += bytes.length;
      if (keep === undefined) return bytes;
      cut = true;
      return bytes.subarray(0, keep);
    };
    const forward = (to: WebSocket, bytes: Uint8Array, way: "c2s" | "s2c") => {
      if (bytes.length > 0) to.send(bytes);
      if (cut && way === direction) to.close(1000);
    };
    socket.onmessage = (event) => {
      const bytes = pass("c2s", event.data);
      if (upstream.readyState === WebSocket.OPEN) forward(upstream, bytes, "c2s");
      else early.push(bytes);
    };
    upstream.onopen = () => early.splice(0).forEach((bytes) => forward(upstream, bytes, "c2s"));
    upstream.onmessage = (event) => {
      const bytes = pass("s2c", event.data);
      if (socket.readyState === WebSocket.OPEN) forward(socket, bytes, "s2c");
    };
    const closeBoth = () => {
      for (const end of [socket, upstream]) {
        if (end.readyState <= WebSocket.OPEN) end.close();
      }
    };
    socket.onclose = upstream.onclose = closeBoth;
    upstream.onerror = closeBoth;
    return response;
  });
}

/** An edit that flips a bit of the stream's byte at `position`. */
function flip(position: number): (offset: number, bytes: Uint8Array) => void {
  return (offset, bytes) => {
    const at = position - offset;
    if (at >= 0 && at < bytes.length) bytes[at] ^= 0x40;
  };
}

/** An edit that cuts the stream before its byte at `position`. */
function cut(position: number): (offset: number, bytes: Uint8Array) => number | undefined {
  return (offset, bytes) => {
    const at = position - offset;
    return at >= 0 && at < bytes.length ? at : undefined;
  };
}

/**
 * One client session to `server` through a relay that makes `edit` to what
 * the client sends: the client sends `message` and waits for its end. Returns
 * the server's record of it: `refused`, or `disconnected` after `connected`.
 */
async function tamperedSession(
  server: ServerNetwork,
  edit: (offset: number, bytes: Uint8Array) => number | void,
  message: string,
  handshakeTimeout: number,
  what: string,
): Promise<ActivityRecord> {
  await using relay = tamperingRelay(wsUrl(server), edit);
  try {
    await using client = await ClientNetwork.connect({
      url: `ws://${HOST}:${relay.addr.port}/`,
      reconnect: false, // One session per case: a reconnect would take the tampered path again.
      handshakeTimeout,
      closeTimeout: 500,
    });
    await client.send(message);
    await within(client.closed, `the client's end after ${what}`);
  } catch {
    // The handshake caught it.
  }
  const record = await within(server.activity.receive(), `the server's record of ${what}`);
  assert.ok(record !== undefined, `no record of ${what}`);
  return record.event === "connected" ? await activityOf(server, "disconnected") : record;
}

Deno.test("Flipping any byte the client sends over WebSocket is caught, and nothing forged is delivered", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    webSocket: {},
    handshakeTimeout: 500,
  });
  const secret = "the real message";
  // Bytes 0-15 are the preamble, 16-50 message 1, 51-121 message 3, then the message's frame.
  const positions = [0, 5, 9, 15, 16, 30, 50, 51, 90, 121, 122, 140];
  const outcomes = new Set<string>();
  for (const position of positions) {
    const what = `a flip at ${position}`;
    const record = await tamperedSession(server, flip(position), secret, 500, what);
    if (record.event === "disconnected") {
      assert.ok(position >= 122, `a flip at ${position} passed the handshake`);
      assert.equal(record.reason, "protocol-error", `a flip at ${position}`);
      assert.equal(record.clean, false);
    } else {
      assert.equal(record.event, "refused", `a flip at ${position}`);
      assert.ok(position < 122, `a flip at ${position} ended the handshake`);
    }
    outcomes.add(`${record.event}:${record.reason}`);
  }
  assert.ok(outcomes.has("disconnected:protocol-error"));
  assert.ok(outcomes.has("refused:handshake-failed"));
  assert.equal([...server.connections].length, 0);
  const nothing = await server.receive({ signal: AbortSignal.timeout(50) }).catch(() => undefined);
  assert.equal(nothing, undefined, "no packet, forged or not, is delivered");
});

Deno.test("Flipping any byte the server sends over WebSocket is caught by the client", async () => {
  // Bytes 0-2 are message 2's header, 3-101 its body, then the acceptance and the message.
  const positions = [0, 2, 3, 40, 101, 102, 110, 130, 150, 160];
  const outcomes = new Set<string>();
  for (const position of positions) {
    // A server each: a client that fails the acceptance leaves the server an accepted connection.
    await using server = await ServerNetwork.listen({
      hostname: HOST,
      port: 0,
      webSocket: {},
      handshakeTimeout: 500,
      closeTimeout: 500,
    });
    await using relay = tamperingRelay(wsUrl(server), flip(position), "s2c");
    const url = `ws://${HOST}:${relay.addr.port}/`;
    const delivered: unknown[] = [];
    let outcome: string;
    try {
      await using client = await ClientNetwork.connect({
        url,
        reconnect: false, // One session per case: a reconnect would take the tampered path again.
        handshakeTimeout: 500,
        closeTimeout: 500,
      });
      const connection = await server.accept(bounded());
      await connection.send("the real message");
      for await (const packet of client) delivered.push(packet.data);
      const info = await client.closed;
      outcome = `closed:${info.reason}`;
      assert.equal(info.clean, false, `a flip at ${position} ended cleanly`);
      await connection.close();
    } catch (error) {
      outcome = `refused:${(error as { reason?: string }).reason ?? (error as Error).name}`;
    }
    outcomes.add(outcome);
    for (const data of delivered) assert.equal(data, "the real message", `a flip at ${position}`);
  }
  assert.ok(outcomes.has("refused:handshake-failed"), [...outcomes].join(", "));
  assert.ok(outcomes.has("closed:protocol-error"), [...outcomes].join(", "));
});

Deno.test("A client stream over WebSocket cut at any point is reported as truncated or refused", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    webSocket: {},
    handshakeTimeout: 1000,
  });
  // Within the preamble, message 1, message 3, and the message's frame.
  const positions = [0, 8, 16, 40, 51, 100, 122, 130];
  for (const position of positions) {
    const what = `a cut at ${position}`;
    const record = await tamperedSession(server, cut(position), "cut short", 1000, what);
    if (record.event === "disconnected") {
      assert.ok(position >= 122, `a cut at ${position} passed the handshake`);
      assert.deepEqual([record.reason, record.clean], ["truncated", false], `a cut at ${position}`);
    } else {
      assert.equal(record.event, "refused", `a cut at ${position}`);
      assert.ok(position < 122, `a cut at ${position} ended the handshake`);
      assert.equal(record.reason, "aborted", `a cut at ${position}`);
    }
  }
  const nothing = await server.receive({ signal: AbortSignal.timeout(50) }).catch(() => undefined);
  assert.equal(nothing, undefined, "no partial message is delivered");
});

Deno.test("A WebSocket server survives garbage at every stage and still serves", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    webSocket: {},
    handshakeTimeout: 1000,
  });
  const prng = new Prng(0x5eed);
  for (let round = 0; round < 30; round++) {
    const socket = new WebSocket(wsUrl(server), SUBPROTOCOL);
    socket.binaryType = "arraybuffer";
    const closed = new Promise<void>((resolve) =>
      socket.addEventListener("close", () => resolve())
    );
    await within(
      new Promise((resolve) => socket.addEventListener("open", resolve, { once: true })),
      "a raw WebSocket",
    );
    const messages = 1 + prng.int(4);
    for (let i = 0; i < messages; i++) socket.send(prng.bytes(1 + prng.int(300)));
    if (round % 3 === 0) socket.send("a text message");
    if (round % 2 === 0) socket.close();
    await within(closed, `the server's end of garbage round ${round}`, 5000);
  }
  await using client = await ClientNetwork.connect({ url: wsUrl(server) });
  await client.send("still here");
  assert.equal((await server.receive(bounded()))?.data, "still here");
  assert.equal([...server.connections].length, 1);
});

Deno.test("A WebSocket client is held back by the window while the server reads nothing, and nothing is lost", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    webSocket: {},
    highWaterMark: 1024 * 1024,
  });
  await using client = await ClientNetwork.connect({ url: wsUrl(server), reconnect: false });
  const connection = await server.accept(bounded());
  const count = 32;
  let sent = 0;
  const sending = (async () => {
    for (; sent < count; sent++) await client.send(pattern(1024 * 1024, sent));
  })();
  sending.catch(() => {}); // Awaited below; a failed assertion first must not leave it unhandled.
  // The server's application takes nothing for a second: without a window the
  // unread bytes pass 16 MiB and the server cuts the connection.
  await pause(1000);
  assert.equal(connection.isClosed, false);
  assert.ok(sent < count, `all ${count} MiB were accepted while the server read nothing`);
  for (let i = 0; i < count; i++) {
    const packet = await connection.data.receive(bounded());
    assert.deepEqual(packet?.data, pattern(1024 * 1024, i), `message ${i}`);
  }
  await within(sending, "the sends");
  assert.equal((await client.close()).clean, true);
});

Deno.test("Heavy sends both ways over one WebSocket finish: window updates never wait", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, webSocket: {} });
  await using client = await ClientNetwork.connect({ url: wsUrl(server), reconnect: false });
  const connection = await server.accept(bounded());
  const count = 48; // 24 MiB each way: three windows.
  const send = async (to: { send(data: Uint8Array): Promise<void> }, seed: number) => {
    for (let i = 0; i < count; i++) await to.send(pattern(512 * 1024, seed + i));
  };
  const take = async (from: { receive(options: { signal: AbortSignal }): Promise<unknown> }) => {
    for (let i = 0; i < count; i++) assert.ok(await from.receive(bounded()));
  };
  await within(
    Promise.all([send(client, 0), send(connection, 1000), take(connection), take(client)]),
    "both directions",
    60_000,
  );
  assert.equal((await client.close()).clean, true);
});

Deno.test("A WebSocket peer that ignores the window is cut at the unread bound", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    webSocket: {},
    highWaterMark: 1024 * 1024,
    heartbeatInterval: 100, // Its reading paused, the server notices the cut at its next write.
  });
  // The relay speaks aesm.v1.window to the server and aesm.v1 to the client,
  // dropping the server's window updates: the client sends without a window.
  await using relay = windowRelay(wsUrl(server), SUBPROTOCOL, WINDOW_SUBPROTOCOL, "both");
  await using client = await ClientNetwork.connect({
    url: `ws://${HOST}:${relay.addr.port}/`,
    reconnect: false,
  });
  const connection = await server.accept(bounded());
  const chunk = pattern(1024 * 1024, 3);
  let sent = 0;
  try {
    for (; sent < 64; sent++) await client.send(chunk);
  } catch {
    // The server cut the connection.
  }
  const info = await within(connection.closed, "the server's end of the flood");
  assert.equal(info.clean, false);
  assert.match(String((info.error as Error)?.message), /not read yet/);
  assert.ok(sent > 16, `the sender got ${sent} MiB out before the cut`);
  assert.ok(connection.data.length <= 2, "at most the high-water mark was queued");
  assert.equal((await within(client.closed, "the client's end")).clean, false);
});

Deno.test("stop() ends in bounded time when a WebSocket peer's window updates never come", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    webSocket: {},
    closeTimeout: 300,
  });
  // The relay passes everything but the client's window updates: the server's
  // writes stop at the window while the client reads all it gets.
  await using relay = windowRelay(wsUrl(server), WINDOW_SUBPROTOCOL, WINDOW_SUBPROTOCOL, "c2s");
  await using client = await ClientNetwork.connect({
    url: `ws://${HOST}:${relay.addr.port}/`,
    reconnect: false,
  });
  const connection = await server.accept(bounded());
  let sent = 0;
  const sending = (async () => {
    for (; sent < 16; sent++) await connection.send(pattern(1024 * 1024, sent));
  })();
  sending.catch(() => {});
  let got = 0;
  const reading = (async () => {
    while (got < 16 && await client.receive()) got++;
  })();
  for (let i = 0; i < 500 && got < 6; i++) await pause(20);
  assert.ok(got >= 6, `only ${got} MiB arrived`);
  await pause(300); // Credits would let the rest through by now.
  assert.ok(got <= 9, `${got} MiB arrived: more than the 8 MiB window without credits`);
  await within(server.stop(), "stop() with the window shut", 10_000);
  assert.equal(connection.isClosed, true);
  assert.equal((await within(client.closed, "the client's end")).clean, false);
  await within(reading, "the client's reads");
  assert.ok(sent < 16);
});

/**
 * A WebSocket relay to `target` that answers its client with `toClient`,
 * offers the server `toServer`, and drops the text messages (window updates)
 * going `drop`: each way, only from the client, or none. `closes` gets
 * "client" and "server" in the order each end's WebSocket closed.
 */
function windowRelay(
  target: string,
  toClient: string,
  toServer: string,
  drop: "both" | "c2s" | "none",
  closes: string[] = [],
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: HOST, port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: toClient });
    const upstream = new WebSocket(target, toServer);
    upstream.binaryType = socket.binaryType = "arraybuffer";
    const early: ArrayBuffer[] = [];
    socket.onmessage = (event) => {
      if (drop !== "none" && typeof event.data === "string") return;
      if (upstream.readyState === WebSocket.OPEN) upstream.send(event.data);
      else early.push(event.data);
    };
    upstream.onopen = () => early.splice(0).forEach((data) => upstream.send(data));
    upstream.onmessage = (event) => {
      if (drop === "both" && typeof event.data === "string") return;
      if (socket.readyState === WebSocket.OPEN) socket.send(event.data);
    };
    socket.addEventListener("close", () => closes.push("client"));
    upstream.addEventListener("close", () => closes.push("server"));
    const closeBoth = (event: CloseEvent) => {
      for (const end of [socket, upstream]) {
        if (end.readyState <= WebSocket.OPEN) end.close(event.code === 1000 ? 1000 : 4000);
      }
    };
    socket.onclose = upstream.onclose = closeBoth;
    upstream.onerror = () => socket.close(4000);
    return response;
  });
}

Deno.test("Over WebSocket the side that closes first starts the close handshake, the other answers", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, webSocket: {} });
  for (const first of ["server", "client"]) {
    const closes: string[] = [];
    await using relay = windowRelay(
      wsUrl(server),
      WINDOW_SUBPROTOCOL,
      WINDOW_SUBPROTOCOL,
      "none",
      closes,
    );
    await using client = await ClientNetwork.connect({
      url: `ws://${HOST}:${relay.addr.port}/`,
      reconnect: false,
    });
    const connection = await server.accept(bounded());
    await client.send(pattern(3 * 1024 * 1024, 1)); // Window updates flow while it closes.
    const closing = first === "server" ? connection.close() : client.close();
    const [ours, theirs] = await within(
      Promise.all([closing, first === "server" ? client.closed : connection.closed]),
      `the close ${first} first`,
    );
    assert.deepEqual([ours.clean, theirs.clean], [true, true], `${first} closed first`);
    for (let i = 0; i < 100 && closes.length < 2; i++) await pause(10);
    assert.equal(closes[0], first, `the ${closes[0]}'s WebSocket closed first`);
  }
});

Deno.test("A client fails an excessive window update with code 4002, as its WebSocket API cannot send 1002", async () => {
  const closed = Promise.withResolvers<number>();
  await using raw = Deno.serve({ hostname: HOST, port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: WINDOW_SUBPROTOCOL });
    socket.onmessage = () => socket.send("1000000"); // More than the client has sent.
    socket.onclose = (event) => closed.resolve(event.code);
    return response;
  });
  const error = await rejection(
    ClientNetwork.connect({
      url: `ws://${HOST}:${raw.addr.port}/`,
      reconnect: false,
      handshakeTimeout: 5000,
    }),
    "a connect whose server credits bytes never sent",
  );
  assert.ok(error instanceof Error);
  assert.equal(await within(closed.promise, "the raw server's close"), 4002);
});

Deno.test("A server chooses aesm.v1.window when offered, aesm.v1 otherwise, and refuses neither", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, webSocket: {} });
  for (
    const [offered, chosen] of [
      [[WINDOW_SUBPROTOCOL, SUBPROTOCOL], WINDOW_SUBPROTOCOL],
      [[SUBPROTOCOL, WINDOW_SUBPROTOCOL], WINDOW_SUBPROTOCOL],
      [[SUBPROTOCOL], SUBPROTOCOL],
    ] as const
  ) {
    const socket = new WebSocket(wsUrl(server), [...offered]);
    await within(
      new Promise((resolve) => socket.addEventListener("open", resolve, { once: true })),
      `a WebSocket offering ${offered}`,
    );
    assert.equal(socket.protocol, chosen);
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.close();
    await within(closed, "its close");
  }
  const response = await fetch(`http://${HOST}:${server.webSocketPort}/`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      "sec-websocket-protocol": "aesm.v2, chat",
    },
  });
  assert.equal(response.status, 400);
  assert.match(await response.text(), /neither the aesm\.v1\.window nor the aesm\.v1 subprotocol/);
});

const EMPTY = new Uint8Array(0);

Deno.test("A window update that is not a count of bytes sent and uncredited, or an empty message, fails the connection", async () => {
  await using server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    webSocket: {},
    handshakeTimeout: 2000,
  });
  for (const update of ["abc", "0", "007", "-1", "1.5", " 1", "1", String(2 ** 40), EMPTY]) {
    const socket = new WebSocket(wsUrl(server), WINDOW_SUBPROTOCOL);
    const closed = new Promise<CloseEvent>((resolve) =>
      socket.addEventListener("close", resolve as (event: Event) => void)
    );
    await within(
      new Promise((resolve) => socket.addEventListener("open", resolve, { once: true })),
      "a raw WebSocket",
    );
    // The server has sent nothing yet: even "1" credits more than it sent. An
    // empty binary message is a protocol error too.
    socket.send(update);
    const event = await within(closed, `the close after ${JSON.stringify(update)}`);
    assert.equal(event.code, 1002, `update ${JSON.stringify(update)}`);
  }
  await using client = await ClientNetwork.connect({ url: wsUrl(server) });
  await client.send("still here");
  assert.equal((await server.receive(bounded()))?.data, "still here");
});

Deno.test("A WebSocket client reconnects over WebSocket after its connection is cut", async () => {
  await using server = await ServerNetwork.listen({ hostname: HOST, port: 0, webSocket: {} });
  await using client = await ClientNetwork.connect({
    url: wsUrl(server),
    serverPublicKey: server.publicKey,
    reconnect: { initialDelay: 10, maxDelay: 50, maxAttempts: 20 },
  });
  const first = await server.accept(bounded());
  first.abort("cut for the test");
  const second = await server.accept(bounded());
  assert.notEqual(second.id, first.id);
  await client.send("after the reconnect");
  assert.equal((await server.receive(bounded()))?.data, "after the reconnect");
  const records: ActivityRecord[] = [];
  const again = () =>
    records.some((record) => record.event === "reconnecting") &&
    records.at(-1)?.event === "connected";
  for (let i = 0; i < 20 && !again(); i++) {
    const record = await client.activity.receive(bounded());
    if (record !== undefined) records.push(record);
  }
  assert.ok(records.some((record) => record.event === "reconnecting"));
  assert.equal(records.at(-1)?.event, "connected");
  assert.equal(records.at(-1)?.address, `${HOST}:${server.webSocketPort}`);
  assert.equal((await client.close()).clean, true);
});
