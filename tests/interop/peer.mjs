// Copyright 2026 the aesm authors. MIT license.
// An independent aesm wire-protocol peer, written from PROTOCOL.md and the Noise Protocol
// Framework (revision 34) alone; its WebSocket client from PROTOCOL.md section 12, RFC 6455 and
// the WHATWG WebSocket API alone. Plain Node.js, no dependencies: node:crypto, node:net and the
// global WebSocket (Node 22+, or Node 20 with --experimental-websocket).
//
//   node tests/interop/peer.mjs '<json>'
//
// JSON: { role: "client" | "server", port?, app?, psk? (64 hex digits), send?: [message...],
//         closeAfter? (close once this many messages came and all were sent; absent: wait for
//         the other side's Close), rekeyAfter? (rekey on the frame that brings the plaintext
//         since the last rekey to this many bytes; at least 65536, section 6),
//         extras? (Ping, extension records and an empty frame around messages), finImmediately?
//         (FIN right after our Close record, without waiting for the other side's),
//         paramsExtra? (reserved bytes appended to the parameters), maxMessageSize?, timeoutMs?,
//         summarize? (report received messages by size and SHA-256, not their bytes),
//         over WebSocket (client role): url? (ws://...: WebSocket instead of TCP), subprotocols?
//         (offered; default ["aesm.v1.window", "aesm.v1"]), holdReading? (read nothing until the
//         server has filled our window, or sent nothing for 1 s),
//         and to break the protocol on purpose: protocolByte? (in the preamble), message1Length?
//         (cut or pad message 1), acceptanceType? (server: the acceptance's frame type),
//         stallBeforeMessage3? (client: read message 2, then send nothing), badWindowUpdate?
//         (a text message sent after the handshake: a string, or { excess: n } for a credit n
//         bytes over what the server has outstanding), emptyBinaryMessage? (one, after the
//         handshake) }
// message: { text } | { base64 } | { gen: "binary", size, seed } | { gen: "text", count, seed }
// (see generate(): large messages are generated, as argv is too small to carry them).
// Output, one JSON line each: the port (server role, first line), { opened: { protocol } } when
// a WebSocket opens, { connected } after the handshake, every received message { type, data
// (base64 for binary), sentAt } (with summarize: { type, size, sha256, sentAt }), { refused } when
// refused, over WebSocket { windowFull } the first time the window stops a write, { heldReading }
// and { window } (what the window saw: see webSocketStream), and last { closed: { clean, code } }
// (code: that of the Close record received, or -1; over WebSocket also webSocket: { code,
// reason }, the close event's).
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
} from "node:crypto";
import { connect, createServer } from "node:net";

const cfg = JSON.parse(process.argv[2] ?? "{}");
const app = cfg.app ?? "aesm";
const psk = cfg.psk ? Buffer.from(cfg.psk, "hex") : null;
const maxMessageSize = cfg.maxMessageSize ?? 16 * 1024 * 1024;
const MAX_PLAINTEXT = 65535 - 16;
const REFUSE = [
  "",
  "malformed",
  "version",
  "protocol-mismatch",
  "application-mismatch",
  "handshake-failed",
  "psk-mismatch",
  "unauthorized",
  "key-rejected",
  "server-full",
  "timeout",
  "server-busy",
  "too-many-from-address",
];
const MIN_MAX_MESSAGE_SIZE = 65536; // section 4: the floor of max_message_size
const MAX_EMPTY_FRAMES = 16; // section 5
const MIN_REKEY_INTERVAL = 65536; // section 6
const out = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const log = (...args) => cfg.verbose && console.error("[peer]", ...args);

// ---- Noise: CipherState, SymmetricState, DH (revision 34, sections 4 and 5) ----
const EMPTY = Buffer.alloc(0);
const sha256 = (...parts) => parts.reduce((h, p) => h.update(p), createHash("sha256")).digest();
const hmac = (key, ...parts) =>
  parts.reduce((h, p) => h.update(p), createHmac("sha256", key)).digest();
function hkdf(ck, ikm, n) {
  const temp = hmac(ck, ikm);
  const o1 = hmac(temp, Buffer.from([1]));
  const o2 = hmac(temp, o1, Buffer.from([2]));
  return n === 2 ? [o1, o2] : [o1, o2, hmac(temp, o2, Buffer.from([3]))];
}
function gcmNonce(n) {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(BigInt(n), 4);
  return nonce;
}
function aesEncrypt(k, n, ad, plaintext) {
  const c = createCipheriv("aes-256-gcm", k, gcmNonce(n)).setAAD(ad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}
function aesDecrypt(k, n, ad, ciphertext) {
  if (ciphertext.length < 16) throw new Error("ciphertext shorter than a tag");
  const d = createDecipheriv("aes-256-gcm", k, gcmNonce(n)).setAAD(ad);
  d.setAuthTag(ciphertext.subarray(-16));
  return Buffer.concat([d.update(ciphertext.subarray(0, -16)), d.final()]);
}
class CipherState {
  constructor(k = null) {
    this.k = k;
    this.n = 0n;
  }
  encryptWithAd(ad, plaintext) {
    if (!this.k) return plaintext;
    return aesEncrypt(this.k, this.n++, ad, plaintext);
  }
  decryptWithAd(ad, ciphertext) {
    if (!this.k) return ciphertext;
    const plaintext = aesDecrypt(this.k, this.n, ad, ciphertext);
    this.n++;
    return plaintext;
  }
  rekey() {
    this.k = aesEncrypt(this.k, 0xffffffffffffffffn, EMPTY, Buffer.alloc(32)).subarray(0, 32);
  }
}
class SymmetricState {
  constructor(name, prologue) {
    const bytes = Buffer.from(name);
    this.h = bytes.length <= 32 ? Buffer.concat([bytes, Buffer.alloc(32 - bytes.length)]) : sha256(
      bytes,
    );
    this.ck = this.h;
    this.cs = new CipherState();
    this.mixHash(prologue);
  }
  mixHash(data) {
    this.h = sha256(this.h, data);
  }
  mixKey(ikm) {
    const [ck, k] = hkdf(this.ck, ikm, 2);
    this.ck = ck;
    this.cs = new CipherState(k);
  }
  mixKeyAndHash(ikm) {
    const [ck, h, k] = hkdf(this.ck, ikm, 3);
    this.ck = ck;
    this.mixHash(h);
    this.cs = new CipherState(k);
  }
  encryptAndHash(plaintext) {
    const c = this.cs.encryptWithAd(this.h, plaintext);
    this.mixHash(c);
    return c;
  }
  decryptAndHash(ciphertext) {
    const p = this.cs.decryptWithAd(this.h, ciphertext);
    this.mixHash(ciphertext);
    return p;
  }
  split() {
    return hkdf(this.ck, EMPTY, 2).map((k) => new CipherState(k));
  }
  // The "e" token: MixHash(e), and with a psk modifier MixKey(e) too (Noise section 9.2).
  mixEphemeral(pub) {
    this.mixHash(pub);
    if (psk) this.mixKey(pub);
  }
}
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex");
function generateKey() {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return { privateKey, pub: publicKey.export({ type: "spki", format: "der" }).subarray(-32) };
}
function dh(pair, pub) {
  const key = createPublicKey({
    key: Buffer.concat([SPKI_X25519, pub]),
    format: "der",
    type: "spki",
  });
  return diffieHellman({ privateKey: pair.privateKey, publicKey: key });
}

// ---- The preamble, frames and parameters (PROTOCOL.md sections 2 to 4) ----
const protocolName = psk ? "Noise_XXpsk0_25519_AESGCM_SHA256" : "Noise_XX_25519_AESGCM_SHA256";
const protocolByte = psk ? 2 : 0;
const appTag = sha256(Buffer.from(app)).subarray(0, 8);
const preamble = Buffer.concat([
  Buffer.from("aesm"),
  Buffer.from([1, cfg.protocolByte ?? protocolByte, 0, 0]),
  appTag,
]);
const frame = (type, body) =>
  Buffer.concat([Buffer.from([type, body.length >> 8, body.length]), body]);
const record = frame; // records have the frame layout: type (1) || length (2) || body
function params() {
  const p = Buffer.alloc(4 + (cfg.paramsExtra ?? 0), 0xaa);
  p.writeUInt32BE(maxMessageSize, 0);
  return p;
}
function readParams(payload) {
  if (payload.length < 4) throw new Refusal(1, "parameters shorter than 4 bytes");
  const max = payload.readUInt32BE(0);
  if (max < MIN_MAX_MESSAGE_SIZE) throw new Refusal(1, `max_message_size ${max} below 65536`);
  return max;
}
class Refusal extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// The stream's bytes as they come, read in exact amounts. `onRead(n)` hears of every n bytes
// taken (the WebSocket transport credits them, PROTOCOL.md section 12).
class Reader {
  constructor(onRead = () => {}) {
    this.chunks = [];
    this.length = 0;
    this.ended = false;
    this.error = null;
    this.wake = null;
    this.onRead = onRead;
  }
  #notify() {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
  push(chunk) {
    this.chunks.push(chunk);
    this.length += chunk.length;
    this.#notify();
  }
  end(error = null) {
    this.error ??= error;
    this.ended = true;
    this.#notify();
  }
  // Exactly n bytes, or null if the stream ends first. Copies only the bytes it returns.
  async read(n) {
    while (this.length < n) {
      if (this.ended) return null;
      await new Promise((resolve) => (this.wake = resolve));
    }
    const parts = [];
    for (let want = n; want > 0;) {
      const chunk = this.chunks[0];
      if (chunk.length <= want) parts.push(this.chunks.shift());
      else parts.push(chunk.subarray(0, want)), this.chunks[0] = chunk.subarray(want);
      want -= parts.at(-1).length;
    }
    this.length -= n;
    this.onRead(n);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, n);
  }
  async frame() {
    const header = await this.read(3);
    if (!header) return null;
    const body = await this.read(header.readUInt16BE(1));
    return body && { type: header[0], header, body };
  }
}

// ---- Transports: what the protocol runs over. A stream is { reader, write(bytes), end(),
// destroy() }: end() is TCP's FIN or its WebSocket stand-in (section 12). ----
function tcpStream(socket) {
  const reader = new Reader();
  socket.on("data", (chunk) => reader.push(chunk));
  socket.on("end", () => reader.end());
  socket.on("close", () => reader.end());
  socket.on("error", (error) => reader.end(error));
  return {
    reader,
    write: (bytes) =>
      socket.write(bytes) ? Promise.resolve() : new Promise((r) => socket.once("drain", r)),
    end: () => new Promise((resolve) => socket.end(resolve)),
    destroy: () => socket.destroy(),
  };
}

// Over WebSocket (section 12): the same bytes in binary messages; under aesm.v1.window each side
// keeps the other's window and credits what it reads with text messages (window updates).
const SUBPROTOCOLS = ["aesm.v1.window", "aesm.v1"];
const WINDOW = 8 * 1024 * 1024; // a sender stops while this much it sent is uncredited
const UPDATE_EVERY = 1024 * 1024; // a receiver credits once it has read this much
const MAX_BUFFERED = 1024 * 1024; // writes pace to bufferedAmount
const WINDOW_UPDATE = /^[1-9][0-9]*$/;
const FIN_CODES = [1000, 1005]; // a close handshake with these stands for FIN; others for a reset
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function webSocketStream(ws) {
  ws.binaryType = "arraybuffer";
  const offered = cfg.subprotocols ?? SUBPROTOCOLS;
  // What the window saw, reported at the end: sent/credited are our sending side (credited by
  // the peer's updates), received/creditedToPeer our receiving side (credited by ours).
  const w = {
    protocol: null,
    sent: 0,
    credited: 0,
    updatesReceived: 0,
    maxOutstanding: 0,
    windowWaits: 0,
    received: 0,
    read: 0,
    creditedToPeer: 0,
    updatesSent: 0,
    maxUncreditedOnArrival: 0,
    windowViolations: 0,
    failedWith: null,
  };
  let windowed = false;
  let readSinceUpdate = 0;
  let peerClosed = false; // the peer's Close record has been read: it sends nothing more
  let closeEvent = null;
  let closeStarted = null; // who sent the first WebSocket Close frame: "us" or "them"
  let failure = null;
  const waiting = []; // writers waiting for a window update or the end
  const wakeWriters = () => (waiting.splice(0).forEach((wake) => wake()), undefined);
  const reader = new Reader((n) => {
    w.read += n;
    readSinceUpdate += n;
    if (readSinceUpdate >= UPDATE_EVERY) sendWindowUpdate();
  });
  function sendWindowUpdate() {
    if (!windowed || peerClosed || readSinceUpdate === 0 || ws.readyState !== WebSocket.OPEN) {
      return;
    }
    ws.send(String(readSinceUpdate));
    w.creditedToPeer += readSinceUpdate;
    w.updatesSent++;
    readSinceUpdate = 0;
  }
  // Fails the connection with section 12's code: a client sends it plus 3000 (4002 for 1002),
  // as the WebSocket API lets an application close with 1000 or 3000 to 4999 only.
  function fail(code, why) {
    if (failure) return;
    failure = why;
    log("failing the WebSocket:", code, why);
    closeStarted ??= "us";
    ws.close(code + 3000, why);
    w.failedWith = code + 3000;
    reader.end(new Error(why));
    wakeWriters();
  }
  function windowUpdate(text) {
    const outstanding = w.sent - w.credited;
    if (!WINDOW_UPDATE.test(text)) return fail(1002, "a malformed window update");
    if (text.length > 15 || Number(text) > outstanding) {
      return fail(1002, "a window update over what is outstanding");
    }
    w.credited += Number(text);
    w.updatesReceived++;
    wakeWriters();
  }

  let closed;
  const closing = new Promise((resolve) => (closed = resolve));
  const opened = new Promise((resolve, reject) => {
    ws.onopen = () => {
      w.protocol = ws.protocol;
      out({ opened: { protocol: ws.protocol } });
      if (!offered.includes(ws.protocol)) {
        fail(1002, "no offered subprotocol selected");
        return reject(new Error(`the server selected subprotocol "${ws.protocol}"`));
      }
      windowed = ws.protocol === "aesm.v1.window";
      resolve();
    };
    ws.onclose = (event) => {
      closeStarted ??= "them";
      closeEvent = { code: event.code, reason: event.reason, started: closeStarted };
      const fin = FIN_CODES.includes(event.code);
      reader.end(fin ? null : new Error(`the WebSocket closed with code ${event.code}`));
      wakeWriters();
      reject(new Error(`the WebSocket closed with code ${event.code} before it opened`));
      closed();
    };
  });
  opened.catch(() => {});
  ws.onerror = (event) => {
    log("WebSocket error:", event.message);
    // Node 20's WebSocket fires no close event after failing its opening handshake (as when
    // the server selects no subprotocol): end here what the close event would have ended.
    if (w.protocol === null && !closeEvent) {
      ws.onclose({ code: 1006, reason: `failed: ${event.message}` });
    }
  };
  ws.onmessage = ({ data }) => {
    if (failure) return;
    if (typeof data === "string") {
      return windowed ? windowUpdate(data) : fail(1003, "a text message under aesm.v1");
    }
    if (data.byteLength === 0) return fail(1002, "an empty binary message");
    const uncredited = w.received - w.creditedToPeer; // the sender's view, or less
    w.maxUncreditedOnArrival = Math.max(w.maxUncreditedOnArrival, uncredited);
    if (windowed && uncredited >= WINDOW) w.windowViolations++;
    w.received += data.byteLength;
    reader.push(Buffer.from(data));
  };

  async function send(bytes) {
    let waited = false;
    for (;;) {
      if (ws.readyState !== WebSocket.OPEN) return log("not sent: the WebSocket is not open");
      if (windowed && w.sent - w.credited >= WINDOW) {
        if (!waited && w.windowWaits === 0) {
          out({ windowFull: { outstanding: w.sent - w.credited } });
        }
        if (!waited) w.windowWaits++;
        waited = true;
        await new Promise((resolve) => waiting.push(resolve));
      } else if (ws.bufferedAmount >= MAX_BUFFERED) {
        await sleep(1); // the WebSocket API has no drain event
      } else break;
    }
    ws.send(bytes);
    w.sent += bytes.length;
    w.maxOutstanding = Math.max(w.maxOutstanding, w.sent - w.credited);
  }
  let tail = opened; // writes in order: a frame's nonce is its place in the stream
  const write = (bytes) => (tail = tail.then(() => bytes.length > 0 && send(bytes)));
  return {
    reader,
    write,
    // FIN (section 12): A starts the close handshake once it has read B's Close record; B, whose
    // Close record answered A's, does not, and waits for A's (its WebSocket answers it).
    end: ({ answering = false } = {}) =>
      tail.catch(() => {}).then(() => {
        if (answering || ws.readyState > WebSocket.OPEN) return;
        closeStarted ??= "us";
        ws.close(1000);
      }),
    // No window update after the peer's Close record: nothing more will come to credit.
    peerClosed: () => (peerClosed = true),
    destroy: () => ws.readyState <= WebSocket.OPEN && (closeStarted ??= "us", ws.close(1000)),
    afterHandshake() {
      if (cfg.emptyBinaryMessage) ws.send(new Uint8Array(0)), out({ sentEmptyBinaryMessage: true });
      const bad = cfg.badWindowUpdate; // on purpose: a string, or { excess: n } over the window
      if (bad === undefined) return;
      const text = typeof bad === "string"
        ? bad
        : String(w.received - w.creditedToPeer + bad.excess);
      out({ sentBadWindowUpdate: text });
      ws.send(text);
    },
    // Reads nothing until the peer's window is full, or it has sent nothing for 1 s (10 s at
    // most): then only the peer's keeping of the window stops it.
    holdReading: cfg.holdReading && (async () => {
      let by = "deadline";
      for (let i = 0, last = -1, quiet = 0; i < 200; i++) {
        if (w.received - w.creditedToPeer >= WINDOW) by = "window";
        else if (reader.ended) by = "end";
        else if (quiet >= 20) by = "idle";
        if (by !== "deadline") break;
        quiet = w.received === last ? quiet + 1 : 0;
        last = w.received;
        await sleep(50);
      }
      out({ heldReading: { uncredited: w.received - w.creditedToPeer, by } });
    }),
    async settle(result) {
      let timer;
      await Promise.race([closing, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
      clearTimeout(timer);
      out({ window: w });
      const webSocket = closeEvent ?? { code: null, reason: "" };
      const reset = result.clean && !FIN_CODES.includes(webSocket.code);
      return {
        ...result,
        ...(reset ? { clean: false, error: "reset" } : {}),
        ...(failure ? { error: failure } : {}),
        webSocket,
      };
    },
  };
}

// ---- The handshake ----
async function clientHandshake({ reader, write }) {
  const s = generateKey();
  const e = generateKey();
  const ss = new SymmetricState(protocolName, Buffer.concat([preamble, Buffer.from(app)]));
  if (psk) ss.mixKeyAndHash(psk); // -> psk, e
  ss.mixEphemeral(e.pub);
  let message1 = Buffer.concat([e.pub, ss.encryptAndHash(EMPTY)]);
  if (cfg.message1Length !== undefined) {
    message1 = Buffer.concat([message1, Buffer.alloc(64)]).subarray(0, cfg.message1Length);
  }
  await write(Buffer.concat([preamble, frame(1, message1)]));

  const expectHandshake = async () => {
    const f = await reader.frame();
    if (!f) throw new Error("the server closed during the handshake");
    if (f.type === 2) {
      const reason = REFUSE[f.body[0]] ?? "malformed";
      out({ refused: { code: f.body[0], reason, detail: f.body.subarray(1).toString() } });
      return null;
    }
    return f;
  };
  const f2 = await expectHandshake();
  if (!f2) return null;
  if (cfg.stallBeforeMessage3) { // never send message 3: the server's timeout refuses us
    while (await expectHandshake());
    return null;
  }
  if (f2.type !== 1 || f2.body.length < 32 + 48 + 4 + 16) throw new Refusal(1, "bad message 2");
  const re = f2.body.subarray(0, 32); // <- e, ee, s, es
  ss.mixEphemeral(re);
  ss.mixKey(dh(e, re));
  let peerMax;
  try {
    const rs = ss.decryptAndHash(f2.body.subarray(32, 80));
    ss.mixKey(dh(e, rs));
    peerMax = readParams(ss.decryptAndHash(f2.body.subarray(80)));
  } catch (error) {
    throw error instanceof Refusal ? error : new Refusal(5, "message 2: " + error.message);
  }
  const sealedS = ss.encryptAndHash(s.pub); // -> s, se
  ss.mixKey(dh(s, re));
  await write(frame(1, Buffer.concat([sealedS, ss.encryptAndHash(params())])));
  const [send, recv] = ss.split();

  // The acceptance is part of the handshake: a bad one is refused (section 4).
  const acceptance = await expectHandshake();
  if (!acceptance) return null;
  if (acceptance.type !== 3) throw new Refusal(1, `acceptance of frame type ${acceptance.type}`);
  if (acceptance.body.length !== 16) throw new Refusal(1, "the acceptance is not empty");
  try {
    recv.decryptWithAd(acceptance.header, acceptance.body);
  } catch {
    throw new Refusal(5, "the acceptance failed authentication");
  }
  return { send, recv, peerMax };
}

async function serverHandshake({ reader, write, destroy }) {
  const p = await reader.read(16);
  if (!p) throw new Error("no preamble");
  if (!p.subarray(0, 4).equals(Buffer.from("aesm"))) return destroy(), null;
  if (p[4] !== 1) throw new Refusal(2, "version");
  if (p[5] > 2 || p[6] || p[7]) throw new Refusal(1, "bad protocol or reserved byte");
  if (p[5] !== protocolByte) throw new Refusal(3, "not this server's protocol byte");
  if (!p.subarray(8).equals(appTag)) throw new Refusal(4, "another application");
  const ss = new SymmetricState(protocolName, Buffer.concat([p, Buffer.from(app)]));
  const f1 = await reader.frame();
  if (!f1) throw new Error("the client closed during the handshake");
  if (f1.type === 2) return out({ refused: { code: f1.body[0] } }), null;
  if (f1.type !== 1 || f1.body.length !== (psk ? 48 : 32)) throw new Refusal(1, "bad message 1");
  if (psk) ss.mixKeyAndHash(psk); // -> psk, e: the tag is checked before any key or DH
  const re = f1.body.subarray(0, 32);
  ss.mixEphemeral(re);
  try {
    ss.decryptAndHash(f1.body.subarray(32));
  } catch {
    throw new Refusal(6, "message 1 failed: another psk");
  }

  const s = generateKey();
  const e = generateKey();
  ss.mixEphemeral(e.pub); // <- e, ee, s, es
  ss.mixKey(dh(e, re));
  const sealedS = ss.encryptAndHash(s.pub);
  ss.mixKey(dh(s, re));
  await write(frame(1, Buffer.concat([e.pub, sealedS, ss.encryptAndHash(params())])));

  const f3 = await reader.frame(); // -> s, se [, psk]
  if (!f3) throw new Error("the client closed during the handshake");
  if (f3.type === 2) {
    out({ refused: { code: f3.body[0], reason: REFUSE[f3.body[0]] ?? "malformed" } });
    return null;
  }
  if (f3.type !== 1 || f3.body.length < 48 + 4 + 16) throw new Refusal(1, "bad message 3");
  let peerMax;
  try {
    const rs = ss.decryptAndHash(f3.body.subarray(0, 48)); // -> s, se
    ss.mixKey(dh(e, rs));
    peerMax = readParams(ss.decryptAndHash(f3.body.subarray(48)));
  } catch (error) {
    throw error instanceof Refusal ? error : new Refusal(5, "message 3 failed");
  }
  const [recv, send] = ss.split();
  // the acceptance: an empty Transport plaintext (acceptanceType breaks it on purpose)
  const header = Buffer.from([cfg.acceptanceType ?? 3, 0, 16]);
  await write(Buffer.concat([header, send.encryptWithAd(header, EMPTY)]));
  return { send, recv, peerMax };
}

// ---- Transport: frames of records (sections 5 to 8) ----
function generate(m) {
  if (m.text !== undefined) return { type: 1, bytes: Buffer.from(m.text) };
  if (m.base64 !== undefined) return { type: 2, bytes: Buffer.from(m.base64, "base64") };
  if (m.gen === "binary") {
    const bytes = Buffer.alloc(m.size);
    for (let i = 0; i < m.size; i++) bytes[i] = (i * 31 + m.seed * 7 + (i >> 8)) & 255;
    return { type: 2, bytes };
  }
  // Text of multi-byte characters (10 + 1 bytes a unit), so that records split inside them.
  return { type: 1, bytes: Buffer.from(`é€😀 ${m.seed % 10}`.repeat(m.count)) };
}

async function transport(stream, { send, recv, peerMax }) {
  const { reader, write, end } = stream;
  let sentSinceRekey = 0;
  async function sendFrame(plaintext) {
    sentSinceRekey += plaintext.length; // the rekey frame's own plaintext counts (section 6)
    const rekey = cfg.rekeyAfter && sentSinceRekey >= cfg.rekeyAfter;
    if (rekey) sentSinceRekey = 0;
    const type = rekey ? 4 : 3;
    const header = Buffer.from([type, (plaintext.length + 16) >> 8, plaintext.length + 16]);
    const body = send.encryptWithAd(header, plaintext);
    if (type === 4) send.rekey(); // right after encrypting a TransportRekey frame
    await write(Buffer.concat([header, body]));
  }
  const ping = cfg.extras
    ? Buffer.concat([record(5, EMPTY), record(0x40, Buffer.from("ext"))])
    : EMPTY;
  async function sendMessage({ type, bytes }) {
    if (bytes.length > peerMax) throw new Error(`message over the peer's ${peerMax} bytes`);
    const head = Buffer.alloc(12);
    head.writeBigUInt64BE(BigInt(Date.now()), 0);
    head.writeUInt32BE(bytes.length, 8);
    let offset = MAX_PLAINTEXT - ping.length - 3 - 12;
    await sendFrame(
      Buffer.concat([ping, record(type, Buffer.concat([head, bytes.subarray(0, offset)]))]),
    );
    for (; offset < bytes.length; offset += MAX_PLAINTEXT - ping.length - 3) {
      const chunk = bytes.subarray(offset, offset + MAX_PLAINTEXT - ping.length - 3);
      await sendFrame(Buffer.concat([ping, record(3, chunk)]));
    }
  }
  if (cfg.extras) await sendFrame(EMPTY);
  const sending = (async () => {
    for (const m of cfg.send ?? []) await sendMessage(generate(m));
  })();

  // Closing: our Close record, then FIN. Unless finImmediately, the FIN waits for the other
  // side's Close record (at most 5 s): aesm may skip its Close reply when our FIN comes with ours.
  let closing = null;
  let closeArrived;
  const closeReceived = new Promise((resolve) => (closeArrived = resolve));
  // answering: we are B, whose Close record answers the other side's (section 8).
  const close = (code, answering = false) =>
    closing ??= sending.then(async () => {
      await sendFrame(record(4, Buffer.concat([Buffer.from([code]), Buffer.from("peer done")])));
      if (!cfg.finImmediately) {
        await Promise.race([closeReceived, new Promise((r) => setTimeout(r, 5000).unref())]);
      }
      await end({ answering });
    });
  if (cfg.closeAfter === 0) close(0);

  let message = null; // { type, sentAt, total, parts, got }
  let received = 0;
  let closeCode = null;
  let emptyInARow = 0;
  let receivedSinceRekey = 0;
  const protocolError = async (why, code = 2) => { // 02 protocol-error, 03 message-too-large
    log("protocol error:", why);
    if (!closing) {
      await sendFrame(record(4, Buffer.concat([Buffer.from([code]), Buffer.from(why)])));
    }
    return { clean: false, code: -1, error: why };
  };
  const deliver = () => {
    const bytes = Buffer.concat(message.parts);
    const data = message.type === 1
      ? new TextDecoder("utf-8", { fatal: true }).decode(bytes)
      : bytes.toString("base64");
    const type = message.type === 1 ? "text" : "binary";
    if (cfg.summarize) { // large messages: their size and SHA-256, not their bytes
      out({
        type,
        size: bytes.length,
        sha256: sha256(bytes).toString("hex"),
        sentAt: message.sentAt,
      });
    } else out({ type, data, sentAt: message.sentAt });
    message = null;
    if (++received === cfg.closeAfter) close(0);
  };
  const addBytes = (bytes) => {
    if (message.got + bytes.length > message.total) throw new Error("more than total_length");
    message.parts.push(bytes);
    message.got += bytes.length;
    if (message.got === message.total) deliver();
  };
  if (stream.holdReading) await stream.holdReading();
  for (;;) {
    const f = await reader.frame();
    if (!f) {
      if (closeCode !== null) return { clean: true, code: closeCode };
      return { clean: false, code: -1, error: reader.error ? "reset" : "truncated" };
    }
    if (closeCode !== null) return protocolError("a frame after the Close record");
    if (f.type !== 3 && f.type !== 4) return protocolError(`frame type ${f.type}`);
    // Caps, judged from the length alone, before decrypting (sections 5 and 6).
    const size = Math.max(0, f.body.length - 16);
    emptyInARow = size === 0 ? emptyInARow + 1 : 0;
    if (emptyInARow > MAX_EMPTY_FRAMES) return protocolError("too many empty frames in a row");
    receivedSinceRekey += size;
    if (f.type === 4) {
      if (receivedSinceRekey < MIN_REKEY_INTERVAL) return protocolError("a rekey too soon");
      receivedSinceRekey = 0;
    }
    let plaintext;
    try {
      plaintext = recv.decryptWithAd(f.header, f.body);
    } catch {
      return protocolError("a Transport frame failed decryption");
    }
    if (f.type === 4) recv.rekey(); // right after decrypting it
    try {
      for (let off = 0; off < plaintext.length;) {
        if (closeCode !== null) throw new Error("a record after the Close record");
        if (off + 3 > plaintext.length) throw new Error("a record overruns its plaintext");
        const type = plaintext[off];
        const end = off + 3 + plaintext.readUInt16BE(off + 1);
        if (end > plaintext.length) throw new Error("a record overruns its plaintext");
        const body = plaintext.subarray(off + 3, end);
        off = end;
        if (type === 1 || type === 2) {
          if (message) throw new Error("a message starts inside another");
          if (body.length < 12) throw new Error("a short message record");
          const total = body.readUInt32BE(8);
          if (total > maxMessageSize) throw Object.assign(new Error("too large"), { closeCode: 3 });
          const sentAt = Number(body.readBigUInt64BE(0));
          message = { type, sentAt, total, parts: [], got: 0 };
          addBytes(body.subarray(12));
        } else if (type === 3) {
          if (!message || body.length === 0) throw new Error("a stray Continuation");
          addBytes(body);
        } else if (type === 4) {
          if (message || body.length < 1) throw new Error("a Close inside a message");
          if (off !== plaintext.length) throw new Error("a record after the Close record");
          if (body.length - 1 > 256) throw new Error("a Close reason over 256 bytes");
          new TextDecoder("utf-8", { fatal: true }).decode(body.subarray(1)); // throws if invalid
          closeCode = body[0];
          stream.peerClosed?.();
          closeArrived();
          log("Close received, code", closeCode, body.subarray(1).toString());
        } else if (type === 5) {
          if (body.length !== 0) throw new Error("a Ping with a body");
        } else if (type < 0x40) {
          throw new Error(`reserved record type ${type}`);
        }
      }
    } catch (error) {
      return protocolError(error.message, error.closeCode);
    }
    if (closeCode !== null) await close(0, !closing); // answers the Close, or finishes our own
  }
}

// ---- Roles ----
async function run(stream) {
  let result = { clean: false, code: -1 };
  try {
    const keys = cfg.role === "server"
      ? await serverHandshake(stream)
      : await clientHandshake(stream);
    if (keys) {
      out({ connected: { peerMaxMessageSize: keys.peerMax } });
      stream.afterHandshake?.();
      result = await transport(stream, keys);
    }
  } catch (error) {
    log("failed:", error);
    result.error = error.message;
    if (error instanceof Refusal) {
      const detail = Buffer.from(error.message).subarray(0, 256);
      await stream.write(frame(2, Buffer.concat([Buffer.from([error.code]), detail])))
        .catch(() => {});
    }
  }
  if (stream.settle) { // WebSocket: the closing handshake decides, so wait for it
    stream.end();
    result = await stream.settle(result);
    out({ closed: result });
    return result;
  }
  out({ closed: result });
  stream.end();
  setTimeout(() => stream.destroy(), 200).unref();
  return result;
}

const timer = setTimeout(() => {
  out({ closed: { clean: false, code: -1, error: "peer timeout" } });
  process.exit(3);
}, cfg.timeoutMs ?? 30000);
const finish = (result) => {
  clearTimeout(timer);
  process.exitCode = result.clean ? 0 : 1;
};

if (cfg.url) {
  if (typeof WebSocket !== "function") {
    throw new Error("no global WebSocket: run Node 22+, or Node 20 with --experimental-websocket");
  }
  const ws = new WebSocket(cfg.url, cfg.subprotocols ?? SUBPROTOCOLS);
  run(webSocketStream(ws)).then((result) => {
    finish(result);
    setTimeout(() => process.exit(), 1000).unref(); // a WebSocket that never closed
  });
} else if (cfg.role === "server") {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    server.close();
    run(tcpStream(socket)).then(finish);
  });
  server.listen(0, "127.0.0.1", () => out(server.address().port));
} else {
  // allowHalfOpen: the other side's FIN must not end our half before our Close record is out.
  const socket = connect({ port: cfg.port, host: "127.0.0.1", allowHalfOpen: true });
  const failed = (error) => {
    out({ closed: { clean: false, code: -1, error: error.message } });
    finish({ clean: false });
  };
  socket.once("error", failed);
  socket.once("connect", () => (socket.off("error", failed), run(tcpStream(socket)).then(finish)));
}
