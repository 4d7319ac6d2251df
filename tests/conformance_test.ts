// Copyright 2026 the aesm authors. MIT license.
// PROTOCOL.md section 11 on the wire: every row of the conformance table has a
// scenario here that sends raw frames to an aesm server or client and reads
// what comes back, and the answer it sees must be the row's answer, word for
// word. Then the code is walked against the table: every refusal and protocol
// error message in the receiver's source must have been raised by some row.
//
// Transport and record rows run against aesm's server: both roles use the
// same Connection read loop. Client rows run against a raw responder.

import assert from "node:assert/strict";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair, type KeyPair } from "../cipher.ts";
import type { CipherState } from "../cipher.ts";
import { HandshakeState } from "../handshake.ts";
import { ServerNetwork, type ServerOptions } from "../server.ts";
import {
  CLOSE_CODES,
  closeQuietly,
  closeRecord,
  concat,
  frame,
  FrameReader,
  FrameType,
  messageRecord,
  parseFrame,
  preamble,
  RawClient,
  record,
  RecordType,
  REFUSE_REASONS,
  seal,
  ServerWatch,
  startRecord,
  utf8,
  within,
  writeAll,
} from "./_adversary.ts";

const ROOT = new URL("../", import.meta.url);
const HOST = "127.0.0.1";
const PSK = new Uint8Array(32).fill(7);
const MIN_MAX = 65536;

// ---------------------------------------------------------------------------
// The table

interface Row {
  id: string;
  side: string;
  when: string;
  condition: string;
  answer: string;
}

async function conformanceTable(): Promise<Row[]> {
  const text = await Deno.readTextFile(new URL("PROTOCOL.md", ROOT));
  const section = text.slice(text.indexOf("## 11. Conformance"));
  return section.split("\n")
    .filter((line) => /^\| [A-Z]\d+ /.test(line))
    .map((line) => {
      const [id, side, when, condition, answer] = line.split(" | ").map((cell) =>
        cell.replace(/^\|\s*/, "").replace(/\s*\|$/, "").trim()
      );
      return { id, side, when, condition, answer };
    });
}

/** Every message aesm raised in a scenario: activity messages and errors. */
const observed = new Set<string>();

function see(error: unknown): void {
  for (let e = error; e instanceof Error; e = e.cause) observed.add(e.message);
}

const refuseAnswer = (code: number | undefined) =>
  code === undefined ? "close, nothing sent" : `Refuse \`${REFUSE_REASONS[code]}\``;

// ---------------------------------------------------------------------------
// Against aesm's server

/** A server for one scenario, watched; stopped afterwards with its messages kept. */
async function withAesmServer<T>(
  options: ServerOptions,
  run: (server: ServerNetwork, watch: ServerWatch) => Promise<T>,
): Promise<T> {
  const server = await ServerNetwork.listen({
    hostname: HOST,
    port: 0,
    closeTimeout: 500,
    ...options,
  });
  const watch = new ServerWatch(server);
  try {
    return await run(server, watch);
  } finally {
    await server.stop();
    await watch.done();
    for (const entry of watch.records) observed.add(entry.message);
  }
}

/** Writes `bytes` on a fresh socket, then reads until the server ends the stream: its answer. */
async function rawAnswer(
  port: number,
  bytes: Uint8Array,
  watch: ServerWatch,
  fin = false,
): Promise<{ answer: string; reason?: string; frames: number[] }> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const address = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
  try {
    if (bytes.length > 0) await writeAll(conn, bytes);
    if (fin) await conn.closeWrite();
    const { frames } = await within(new FrameReader(conn).drain(), 5000, "the server's answer");
    const parsed = frames.map(parseFrame);
    const refuse = parsed.find((f) => f.type === FrameType.Refuse);
    if (refuse) assert.equal(refuse.body.length, 1, "aesm sends a Refuse with an empty detail");
    const end = await watch.end(address);
    return {
      answer: refuseAnswer(refuse?.body[0]),
      reason: end.reason,
      frames: parsed.map((f) => f.type),
    };
  } finally {
    closeQuietly(conn);
  }
}

/** Runs the client's handshake by hand up to message 3, which `message3` may replace. */
async function handshakeBytes(
  options: { psk?: Uint8Array; keyPair: KeyPair; maxMessageSize?: number },
): Promise<{ pre: Uint8Array; hs: HandshakeState }> {
  const pre = await preamble("aesm", options.psk !== undefined);
  const hs = await HandshakeState.create({
    protocolName: options.psk ? "Noise_XXpsk0_25519_AESGCM_SHA256" : "Noise_XX_25519_AESGCM_SHA256",
    initiator: true,
    prologue: concat(pre, utf8("aesm")),
    staticPrivateKey: options.keyPair.privateKey,
    psks: options.psk ? [options.psk] : [],
  });
  return { pre, hs };
}

const params = (max: number) => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, max);
  return bytes;
};

/** Runs the handshake to message 3 on a raw socket and sends `third(hs)` in its place. */
async function message3Answer(
  port: number,
  watch: ServerWatch,
  third: (hs: HandshakeState) => Promise<Uint8Array>,
  psk?: Uint8Array,
  beforeMessage3?: () => Promise<void>,
): Promise<string> {
  const keyPair = await generateKeyPair();
  const { pre, hs } = await handshakeBytes({ psk, keyPair });
  const conn = await Deno.connect({ hostname: HOST, port });
  const address = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
  try {
    await writeAll(conn, concat(pre, frame(FrameType.Handshake, await hs.writeMessage())));
    const reader = new FrameReader(conn);
    const second = parseFrame((await within(reader.next(), 5000, "message 2"))!);
    assert.equal(second.type, FrameType.Handshake);
    await hs.readMessage(second.body);
    await beforeMessage3?.();
    await writeAll(conn, await third(hs));
    const { frames } = await within(reader.drain(), 5000, "the server's answer");
    const refuse = frames.map(parseFrame).find((f) => f.type === FrameType.Refuse);
    await watch.end(address);
    return refuseAnswer(refuse?.body[0]);
  } finally {
    closeQuietly(conn);
  }
}

/** A raw client with a session: sends `plaintexts` (or frames) and reads the server's answer. */
async function transportAnswer(
  options: ServerOptions,
  send: (raw: RawClient) => Promise<void>,
): Promise<string> {
  return await withAesmServer(options, async (server, watch) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      await send(raw);
      const { close } = await within(raw.readToEnd(), 5000, "the server's answer");
      await raw.conn.closeWrite().catch(() => {}); // The FIN a clean close waits for.
      const end = await watch.end(raw.localAddress);
      const name = Object.entries(CLOSE_CODES).find(([, code]) => code === close)?.[0];
      assert.equal(end.reason, name, `the server reports what it sent: ${end.message}`);
      return `Close \`${name}\``;
    } finally {
      raw.close();
    }
  });
}

const plaintextAnswer = (...plaintexts: Uint8Array[]) =>
  transportAnswer({}, async (raw) => {
    for (const plaintext of plaintexts) await raw.sendPlaintext(plaintext);
  });

// ---------------------------------------------------------------------------
// Against aesm's client: a raw responder

interface Responder {
  /** What the raw server sends in place of message 2 (default: the real one). */
  message2?: (hs: HandshakeState) => Promise<Uint8Array>;
  /** What it sends in place of the acceptance (default: the real one). */
  acceptance?: (send: CipherState) => Promise<Uint8Array>;
  /** Sent right after the accept, before reading anything. */
  atAccept?: Uint8Array;
  /** Ends the stream (FIN) after message 2. */
  end?: boolean;
  keyPair?: KeyPair;
}

/**
 * Runs one aesm client against a raw responder that answers as `responder`
 * says, and returns what the client sent back after it (its Refuse, if any)
 * and the error the client reported.
 */
async function clientAnswer(
  responder: Responder,
  client: { serverPublicKey?: Uint8Array; handshakeTimeout?: number } = {},
): Promise<{ answer: string; error: unknown }> {
  using listener = Deno.listen({ hostname: HOST, port: 0 });
  const serve = (async () => {
    const conn = await listener.accept();
    try {
      return await respond(conn, responder);
    } finally {
      closeQuietly(conn);
    }
  })();
  serve.catch(() => {}); // Awaited below; a client that connected may come first.
  const error = await ClientNetwork.connect({
    hostname: HOST,
    port: listener.addr.port,
    handshakeTimeout: 5000,
    closeTimeout: 500,
    ...client,
  }).then(async (c) => {
    await c.close();
    return undefined;
  }, (e) => e);
  see(error);
  const code = await within(serve, 5000, "the raw responder");
  return { answer: refuseAnswer(code), error };
}

async function respond(conn: Deno.Conn, responder: Responder): Promise<number | undefined> {
  if (responder.atAccept) {
    await writeAll(conn, responder.atAccept);
    return (await afterAnswer(new FrameReader(conn)));
  }
  const reader = new FrameReader(conn, 16);
  const pre = (await reader.next())!;
  const keyPair = responder.keyPair ?? await generateKeyPair();
  const hs = await HandshakeState.create({
    protocolName: "Noise_XX_25519_AESGCM_SHA256",
    initiator: false,
    prologue: concat(pre, utf8("aesm")),
    staticPrivateKey: keyPair.privateKey,
  });
  await hs.readMessage(parseFrame((await reader.next())!).body);
  await writeAll(
    conn,
    responder.message2
      ? await responder.message2(hs)
      : frame(FrameType.Handshake, await hs.writeMessage(params(MIN_MAX))),
  );
  if (responder.end) await conn.closeWrite();
  const third = await reader.next();
  if (third === null) return undefined;
  const parsed = parseFrame(third);
  if (parsed.type === FrameType.Refuse) return parsed.body[0];
  await hs.readMessage(parsed.body);
  const { send } = await hs.split();
  const acceptance = responder.acceptance
    ? await responder.acceptance(send)
    : await seal(send, new Uint8Array(0));
  await writeAll(conn, acceptance);
  return await afterAnswer(reader);
}

/** The code of the first Refuse frame the client sends before its stream ends, if any. */
async function afterAnswer(reader: FrameReader): Promise<number | undefined> {
  const { frames } = await within(reader.drain(), 5000, "the client's answer");
  const refuse = frames.map(parseFrame).find((f) => f.type === FrameType.Refuse);
  if (refuse) assert.equal(refuse.body.length, 1, "aesm sends a Refuse with an empty detail");
  return refuse?.body[0];
}

// ---------------------------------------------------------------------------
// The scenarios, one per row: each returns the answer it saw.

type Scenario = () => Promise<string>;

const refusedAt = (
  options: ServerOptions,
  bytes: () => Promise<Uint8Array>,
  end = false,
) =>
() =>
  withAesmServer(options, async (server, watch) => {
    const { answer } = await rawAnswer(server.port, await bytes(), watch, end);
    return answer;
  });

const withPreamble = (mutate: (pre: Uint8Array) => void, psk = false) => async () => {
  const pre = await preamble("aesm", psk);
  mutate(pre);
  return pre;
};

const SCENARIOS: Record<string, Scenario> = {
  A1: () =>
    withAesmServer({ maxConnections: 1 }, async (server, watch) => {
      await using held = await ClientNetwork.connect({ hostname: HOST, port: server.port });
      await watch.connection(held.localAddress);
      return (await rawAnswer(server.port, new Uint8Array(0), watch)).answer;
    }),
  A2: refusedAt({ allowedHostnames: ["192.0.2.1"] }, () => Promise.resolve(new Uint8Array(0))),
  // The server side of these two is the admission-control work's; the code
  // is reserved and a client reads it as the reason it names.
  A3: () => pendingRefusal({ maxPendingHandshakes: 1, maxHandshakesPerAddress: 8 }, 0x0b),
  A4: () => pendingRefusal({ maxPendingHandshakes: 8, maxHandshakesPerAddress: 1 }, 0x0c),
  P1: refusedAt({}, async () => (await preamble()).subarray(0, 10), true),
  P2: refusedAt({}, withPreamble((pre) => (pre[0] = 0x41))),
  P3: refusedAt({}, withPreamble((pre) => (pre[4] = 2))),
  P4: async () => {
    const high = await refusedAt({}, withPreamble((pre) => (pre[5] = 3)))();
    const reserved = await refusedAt({}, withPreamble((pre) => (pre[7] = 1)))();
    assert.equal(high, reserved);
    return high;
  },
  P5: async () => {
    const plain = await refusedAt({}, withPreamble((pre) => (pre[5] = 1)))();
    const psk = await refusedAt({ psk: PSK }, withPreamble((pre) => (pre[5] = 1)))();
    assert.equal(plain, psk);
    return plain;
  },
  P6: async () => {
    const noPsk = await refusedAt({ psk: PSK }, withPreamble(() => {}))();
    const psk = await refusedAt({}, withPreamble(() => {}, true))();
    assert.equal(noPsk, psk);
    return psk;
  },
  P7: refusedAt({}, withPreamble((pre) => (pre[15] ^= 1))),
  H1: async () => {
    const server = await refusedAt(
      {},
      async () => concat(await preamble(), frame(0x05, new Uint8Array(32))),
    )();
    const { answer: client } = await clientAnswer({
      message2: () => Promise.resolve(frame(0x00, new Uint8Array(100))),
    });
    assert.equal(client, server);
    return server;
  },
  H2: async () => {
    const server = await refusedAt(
      {},
      async () => concat(await preamble(), frame(FrameType.Transport, new Uint8Array(32))),
    )();
    const { answer: client } = await clientAnswer({
      message2: () => Promise.resolve(frame(FrameType.Transport, new Uint8Array(100))),
    });
    assert.equal(client, server);
    return server;
  },
  H3: async () => {
    const server = await withAesmServer({}, async (s, watch) => {
      const { answer, reason } = await rawAnswer(
        s.port,
        concat(await preamble(), frame(FrameType.Refuse, new Uint8Array([0x08]))),
        watch,
      );
      assert.equal(reason, "key-rejected", "the server reports the client's refusal");
      return answer;
    });
    const { answer: client, error } = await clientAnswer({
      message2: () => Promise.resolve(frame(FrameType.Refuse, new Uint8Array([0x07]))),
    });
    assert.equal((error as { reason?: string }).reason, "unauthorized");
    assert.equal(client, server);
    return server;
  },
  H4: async () => {
    const reasons = [];
    for (const body of [new Uint8Array([0x7f]), new Uint8Array(0)]) {
      const { answer, error } = await clientAnswer({
        message2: () => Promise.resolve(frame(FrameType.Refuse, body)),
      });
      assert.equal(answer, "close, nothing sent");
      reasons.push((error as { reason?: string }).reason);
    }
    assert.deepEqual(reasons, ["malformed", "malformed"]);
    return "close, nothing sent; reported `malformed`";
  },
  H5: async () => {
    const server = await refusedAt({}, () => preamble(), true)();
    const { answer: client } = await clientAnswer({
      message2: () => Promise.resolve(new Uint8Array(0)),
      end: true,
    });
    assert.equal(client, server);
    return server;
  },
  H6: () =>
    withAesmServer({ handshakeTimeout: 300 }, async (server, watch) => {
      const { answer, reason } = await rawAnswer(server.port, await preamble(), watch);
      assert.equal(reason, "timeout");
      // A client that receives it reports a refusal, not its own timeout.
      const { error } = await clientAnswer({
        message2: () => Promise.resolve(frame(FrameType.Refuse, new Uint8Array([0x0a]))),
      });
      assert.equal((error as Error).name, "RefusedError");
      assert.equal((error as { reason?: string }).reason, "timeout");
      return answer;
    }),
  M1: async () => {
    const short = await refusedAt(
      {},
      async () => concat(await preamble(), frame(1, new Uint8Array(31))),
    )();
    const long = await refusedAt(
      {},
      async () => concat(await preamble(), frame(1, new Uint8Array(33))),
    )();
    const psk = await refusedAt(
      { psk: PSK },
      async () => concat(await preamble("aesm", true), frame(1, new Uint8Array(32))),
    )();
    assert.deepEqual([short, long], [psk, psk]);
    return psk;
  },
  M2: () =>
    withAesmServer({ psk: PSK }, async (server, watch) => {
      const { hs, pre } = await handshakeBytes({
        psk: new Uint8Array(32).fill(8),
        keyPair: await generateKeyPair(),
      });
      const { answer, frames } = await rawAnswer(
        server.port,
        concat(pre, frame(FrameType.Handshake, await hs.writeMessage())),
        watch,
      );
      assert.deepEqual(frames, [FrameType.Refuse], "no message 2 before the Refuse");
      return answer;
    }),
  M11: async () => {
    const zero = await refusedAt(
      {},
      async () => concat(await preamble(), frame(1, new Uint8Array(32))),
    )();
    const one = new Uint8Array(32);
    one[0] = 1;
    const order = await refusedAt({}, async () => concat(await preamble(), frame(1, one)))();
    assert.equal(zero, order);
    return zero;
  },
  M12: () => slotGone({ maxConnections: 1 }),
  M13: () => slotGone({ maxConnectionsPerAddress: 1 }),
  M3: async () =>
    (await clientAnswer({ message2: () => Promise.resolve(frame(1, new Uint8Array(99))) })).answer,
  M4: async () =>
    (await clientAnswer({
      message2: async (hs) => {
        const message = await hs.writeMessage(params(MIN_MAX));
        message[message.length - 1] ^= 1;
        return frame(FrameType.Handshake, message);
      },
    })).answer,
  M5: async () => {
    const zero = await clientAnswer({
      message2: async (hs) => frame(FrameType.Handshake, await hs.writeMessage(params(0))),
    });
    const below = await clientAnswer({
      message2: async (hs) =>
        frame(FrameType.Handshake, await hs.writeMessage(params(MIN_MAX - 1))),
    });
    assert.equal(zero.answer, below.answer);
    return below.answer;
  },
  M6: async () =>
    (await clientAnswer({}, { serverPublicKey: (await generateKeyPair()).publicKey })).answer,
  M7: () =>
    withAesmServer(
      {},
      (server, watch) =>
        message3Answer(server.port, watch, () => Promise.resolve(frame(1, new Uint8Array(67)))),
    ),
  M8: () =>
    withAesmServer({}, (server, watch) =>
      message3Answer(server.port, watch, async (hs) => {
        const message = await hs.writeMessage(params(MIN_MAX));
        message[60] ^= 1;
        return frame(FrameType.Handshake, message);
      })),
  M9: async () => {
    const answers = [];
    for (const max of [0, MIN_MAX - 1]) {
      answers.push(
        await withAesmServer(
          {},
          (server, watch) =>
            message3Answer(
              server.port,
              watch,
              async (hs) => frame(1, await hs.writeMessage(params(max))),
            ),
        ),
      );
    }
    assert.equal(answers[0], answers[1]);
    return answers[0];
  },
  M10: () =>
    withAesmServer(
      { authorize: () => false },
      (server, watch) =>
        message3Answer(server.port, watch, async (hs) =>
          frame(1, await hs.writeMessage(params(MIN_MAX)))),
    ),
  C1: async () => {
    const rekey = await clientAnswer({
      acceptance: (send) => seal(send, new Uint8Array(0), FrameType.TransportRekey),
    });
    const handshake = await clientAnswer({
      acceptance: () => Promise.resolve(frame(FrameType.Handshake, new Uint8Array(16))),
    });
    assert.equal(rekey.answer, handshake.answer);
    return rekey.answer;
  },
  C2: async () =>
    (await clientAnswer({ acceptance: (send) => seal(send, new Uint8Array([0])) })).answer,
  C3: async () =>
    (await clientAnswer({
      acceptance: async (send) => {
        const sealed = await seal(send, new Uint8Array(0));
        sealed[sealed.length - 1] ^= 1;
        return sealed;
      },
    })).answer,
  T1: async () => {
    const refuse = await transportAnswer(
      {},
      (raw) => raw.write(frame(FrameType.Refuse, new Uint8Array([1]))),
    );
    const handshake = await transportAnswer(
      {},
      (raw) => raw.write(frame(FrameType.Handshake, new Uint8Array(48))),
    );
    assert.equal(refuse, handshake);
    return refuse;
  },
  T2: () => transportAnswer({}, (raw) => raw.write(frame(0x09, new Uint8Array(20)))),
  T3: () => transportAnswer({}, (raw) => raw.write(frame(FrameType.Transport, new Uint8Array(15)))),
  T4: () =>
    transportAnswer({}, async (raw) => {
      const sealed = await seal(raw.send, messageRecord("x"));
      sealed[sealed.length - 1] ^= 1;
      await raw.write(sealed);
    }),
  T5: async () => {
    // 16 empty frames in a row pass, a record resets the count, and the 17th in a row fails.
    return await withAesmServer({}, async (server, watch) => {
      const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
      try {
        const side = await watch.connection(raw.localAddress);
        for (let i = 0; i < 16; i++) await raw.sendPlaintext(new Uint8Array(0));
        await raw.sendPlaintext(messageRecord("still fine"));
        assert.equal((await within(side.receive(), 5000, "the message"))?.data, "still fine");
        for (let i = 0; i < 17; i++) await raw.sendPlaintext(new Uint8Array(0));
        await raw.sendPlaintext(messageRecord("after the cap"));
        const { close } = await within(raw.readToEnd(), 5000, "the server's answer");
        assert.equal((await watch.end(raw.localAddress)).reason, "protocol-error");
        assert.equal(side.data.length, 0, "nothing after the cap is delivered");
        return `Close \`${Object.entries(CLOSE_CODES).find(([, c]) => c === close)?.[0]}\``;
      } finally {
        raw.close();
      }
    });
  },
  T6: async () => {
    // At 65536 bytes a rekey passes; a second one after 65535 does not.
    return await transportAnswer({}, async (raw) => {
      await raw.sendPlaintext(messageRecord("a".repeat(65536 - 15 - 40_000)));
      await raw.sendPlaintext(messageRecord("b".repeat(40_000 - 15)), FrameType.TransportRekey);
      await raw.send.rekey();
      await raw.sendPlaintext(messageRecord("c".repeat(65535 - 15 - 40_000)));
      await raw.sendPlaintext(messageRecord("d".repeat(40_000 - 15)), FrameType.TransportRekey);
    });
  },
  T7: () => truncatedAnswer((raw) => raw.write(new Uint8Array([FrameType.Transport, 0, 40, 1, 2]))),
  T8: () => truncatedAnswer((raw) => raw.sendPlaintext(messageRecord("then nothing"))),
  R1: async () => {
    const header = await plaintextAnswer(new Uint8Array([RecordType.Ping, 0]));
    const body = await plaintextAnswer(new Uint8Array([RecordType.Ping, 0, 1]));
    assert.equal(header, body);
    return header;
  },
  R2: async () => {
    const answers = new Set<string>();
    for (const type of [0x00, 0x06, 0x3f]) {
      answers.add(await plaintextAnswer(record(type, new Uint8Array(0))));
    }
    assert.equal(answers.size, 1);
    return [...answers][0];
  },
  R3: () =>
    withAesmServer({}, async (server, watch) => {
      const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
      try {
        const side = await watch.connection(raw.localAddress);
        await raw.sendPlaintext(
          concat(
            record(0x40, utf8("ext")),
            record(0xff, new Uint8Array(0)),
            messageRecord("after"),
          ),
        );
        assert.equal((await within(side.receive(), 5000, "the message"))?.data, "after");
        assert.equal(side.isClosed, false);
        return "skipped";
      } finally {
        raw.close();
      }
    }),
  R4: () => plaintextAnswer(record(RecordType.Ping, new Uint8Array([0]))),
  R5: () => plaintextAnswer(record(RecordType.Text, new Uint8Array(11))),
  R6: () => plaintextAnswer(startRecord(true, 10, utf8("abc")), messageRecord("x")),
  R7: () =>
    transportAnswer(
      { maxMessageSize: MIN_MAX },
      (raw) => raw.sendPlaintext(startRecord(false, MIN_MAX + 1, new Uint8Array(1))),
    ),
  R8: () => plaintextAnswer(startRecord(false, 2, new Uint8Array(3))),
  R9: () => plaintextAnswer(record(RecordType.Continuation, utf8("x"))),
  R10: async () => {
    const empty = await plaintextAnswer(
      startRecord(false, 4, new Uint8Array(1)),
      record(RecordType.Continuation, new Uint8Array(0)),
    );
    const past = await plaintextAnswer(
      startRecord(false, 4, new Uint8Array(1)),
      record(RecordType.Continuation, new Uint8Array(4)),
    );
    assert.equal(empty, past);
    return empty;
  },
  R11: async () => {
    // "é€" split inside both characters, across records and frames, is delivered.
    await withAesmServer({}, async (server, watch) => {
      const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
      try {
        const side = await watch.connection(raw.localAddress);
        const bytes = utf8("é€");
        await raw.sendPlaintext(startRecord(true, bytes.length, bytes.subarray(0, 1)));
        await raw.sendPlaintext(record(RecordType.Continuation, bytes.subarray(1, 3)));
        await raw.sendPlaintext(record(RecordType.Continuation, bytes.subarray(3)));
        assert.equal((await within(side.receive(), 5000, "the split text"))?.data, "é€");
      } finally {
        raw.close();
      }
    });
    return await plaintextAnswer(startRecord(true, 2, new Uint8Array([0xc3, 0x28])));
  },
  R12: () =>
    plaintextAnswer(concat(startRecord(false, 4, new Uint8Array(1)), closeRecord("normal"))),
  R13: () => plaintextAnswer(record(RecordType.Close, new Uint8Array(0))),
  R14: async () => {
    const long = await plaintextAnswer(closeRecord("normal", "x".repeat(257)));
    const invalid = await plaintextAnswer(record(RecordType.Close, new Uint8Array([0, 0xff])));
    assert.equal(long, invalid);
    // 256 bytes is fine: the server answers its Close and the client's close is clean.
    const fine = await plaintextAnswer(closeRecord("normal", "é".repeat(128)));
    assert.equal(fine, "Close `normal`");
    return long;
  },
  R15: () => plaintextAnswer(concat(closeRecord("normal"), messageRecord("late"))),
  R16: () =>
    withAesmServer({}, async (server, watch) => {
      const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
      try {
        await raw.sendPlaintext(closeRecord("normal"));
        const answer = await within(raw.reader.next(), 5000, "the Close answer");
        const plaintext = await raw.receive.decryptWithAd(
          parseFrame(answer!).header,
          parseFrame(answer!).body,
        );
        assert.equal(plaintext[0], RecordType.Close);
        assert.equal(plaintext[3], CLOSE_CODES.normal, "the answer is a Close normal");
        await raw.sendPlaintext(new Uint8Array(0));
        const { frames } = await within(raw.reader.drain(), 5000, "the end");
        assert.equal(frames.length, 0, "nothing more is sent");
        const end = await watch.end(raw.localAddress);
        assert.equal(end.clean, false);
        return `\`${end.reason}\`, its Close answer already sent`;
      } finally {
        raw.close();
      }
    }),
  R17: () =>
    withAesmServer({}, async (server, watch) => {
      const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
      try {
        const side = await watch.connection(raw.localAddress);
        const closing = side.close();
        const first = await within(raw.reader.next(), 5000, "the server's Close");
        const plaintext = await raw.receive.decryptWithAd(
          parseFrame(first!).header,
          parseFrame(first!).body,
        );
        assert.equal(plaintext[0], RecordType.Close);
        // The answer and a frame after it, in one write.
        await raw.write(concat(
          await seal(raw.send, closeRecord("normal")),
          await seal(raw.send, messageRecord("after the close")),
        ));
        const info = await within(closing, 5000, "the server's close");
        assert.equal(side.data.length, 0, "nothing after the Close is delivered");
        return info.clean ? "ignored: a clean close" : `not clean: ${info.reason}`;
      } finally {
        raw.close();
      }
    }),
  R18: () =>
    withAesmServer({}, async (server, watch) => {
      const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
      try {
        await raw.sendPlaintext(record(RecordType.Close, new Uint8Array([0x99])));
        await raw.readToEnd();
        await raw.conn.closeWrite();
        const end = await watch.end(raw.localAddress);
        return end.clean ? `read as \`${end.reason}\`: a clean close` : `not clean: ${end.reason}`;
      } finally {
        raw.close();
      }
    }),
};

/**
 * A server at its bound of handshakes in progress (one held at message 2)
 * refuses the next at accept; and an aesm client told so at once reports the
 * reason and sends nothing.
 */
async function pendingRefusal(options: ServerOptions, code: number): Promise<string> {
  const answer = await withAesmServer(options, async (server, watch) => {
    const held = await Deno.connect({ hostname: HOST, port: server.port });
    try {
      const { pre, hs } = await handshakeBytes({ keyPair: await generateKeyPair() });
      await writeAll(held, concat(pre, frame(FrameType.Handshake, await hs.writeMessage())));
      await within(new FrameReader(held).next(), 5000, "message 2 of the held handshake");
      return (await rawAnswer(server.port, new Uint8Array(0), watch)).answer;
    } finally {
      closeQuietly(held);
    }
  });
  const { answer: clientSent, error } = await clientAnswer({
    atAccept: frame(FrameType.Refuse, new Uint8Array([code])),
  });
  assert.equal(clientSent, "close, nothing sent", "a client never answers a Refuse");
  assert.equal((error as Error).name, "RefusedError");
  assert.equal(`Refuse \`${(error as { reason: string }).reason}\``, answer);
  return answer;
}

/** The last connection slot goes to another client while this one's handshake is at message 3. */
function slotGone(options: ServerOptions): Promise<string> {
  return withAesmServer(options, (server, watch) =>
    message3Answer(
      server.port,
      watch,
      async (hs) => frame(FrameType.Handshake, await hs.writeMessage(params(MIN_MAX))),
      undefined,
      async () => {
        const other = await ClientNetwork.connect({ hostname: HOST, port: server.port });
        await watch.connection(other.localAddress);
        // Closed by the server's stop(); the slot stays taken until then.
        void other.closed;
      },
    ));
}

/** The stream cut after `send`: what the server reports, and whether it sent anything. */
function truncatedAnswer(send: (raw: RawClient) => Promise<void>): Promise<string> {
  return withAesmServer({}, async (server, watch) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      await send(raw);
      await raw.conn.closeWrite();
      const { frames } = await within(raw.reader.drain(), 5000, "the server's end");
      const end = await watch.end(raw.localAddress);
      return `\`${end.reason}\`, ${
        frames.length === 0 ? "nothing sent" : `${frames.length} frames sent`
      }`;
    } finally {
      raw.close();
    }
  });
}

// ---------------------------------------------------------------------------
// The code's checks

/** Receiver-side files and the messages of every refusal and protocol error they raise. */
const CHECK_FILES = [
  "_connection/establish.ts",
  "_wire/frame_parser.ts",
  "_wire/frame_opener.ts",
  "_wire/frame_limits.ts",
  "_wire/record.ts",
  "server.ts",
];

/** Messages no wire input can raise, and why. */
const UNREACHABLE: Record<string, string> = {
  "Cannot complete handshake: the peer's parameters are too short":
    "message 2 and 3 length checks leave at least 4 bytes of payload",
  "Cannot decrypt frame: the stream failed earlier":
    "the connection ends at the first failure, so no later frame is opened",
};

async function codeMessages(): Promise<string[]> {
  const messages: string[] = [];
  const pattern =
    /(?:refusal\(\s*(?:"[a-z-]+"|\w+),|new (?:ProtocolError|RefusedError)\(|super\()\s*[`"](Cannot [^`"]*)/g;
  for (const file of CHECK_FILES) {
    const source = await Deno.readTextFile(new URL(file, ROOT));
    for (const match of source.matchAll(pattern)) messages.push(match[1]);
  }
  return messages;
}

/** Whether `text` could come from the template `message`: its literal parts, in order. */
function raisedBy(text: string, message: string): boolean {
  let from = 0;
  for (const part of message.split(/\$\{[^}]*(?:\}|$)/)) {
    const at = text.indexOf(part, from);
    if (at < 0 || (from === 0 && at !== 0)) return false;
    from = at + part.length;
  }
  return true;
}

// ---------------------------------------------------------------------------

Deno.test("Every row of PROTOCOL.md's conformance table gets its answer on the wire, and every check in the code has a row", async (t) => {
  const rows = await conformanceTable();
  assert.ok(rows.length >= 50, `the table has ${rows.length} rows`);
  assert.deepEqual(
    rows.map((row) => row.id).filter((id) => !(id in SCENARIOS)),
    [],
    "every row has a scenario",
  );
  assert.deepEqual(
    Object.keys(SCENARIOS).filter((id) => !rows.some((row) => row.id === id)),
    [],
    "every scenario has a row",
  );
  for (const row of rows) {
    await t.step(`${row.id}: ${row.side}, ${row.when}: ${row.condition}`, async () => {
      assert.equal(await SCENARIOS[row.id](), row.answer);
    });
  }
  await t.step(
    "every refusal and protocol error in the receiver's code is raised by a row",
    async () => {
      // After every row: their scenarios filled `observed`.
      const messages = await codeMessages();
      assert.ok(messages.length >= 30, `found ${messages.length} check messages`);
      const seen = [...observed];
      const missing = messages.filter((message) =>
        !(message in UNREACHABLE) && !seen.some((text) => raisedBy(text, message))
      );
      assert.deepEqual(missing, [], "checks in the code that no row of the table raises");
      for (const message of Object.keys(UNREACHABLE)) {
        assert.ok(
          messages.includes(message),
          `the unreachable list names a check that is gone: ${message}`,
        );
      }
    },
  );
});

// ---------------------------------------------------------------------------
// Points of PROTOCOL.md that are not receiver checks

Deno.test("A sender rekeys on the frame whose plaintext reaches rekey_after, which counts toward the period it ends", async () => {
  await withAesmServer({ rekeyAfterBytes: 65536 }, async (server, watch) => {
    const raw = await RawClient.connect({ port: server.port }, await generateKeyPair());
    try {
      const side = await watch.connection(raw.localAddress);
      // Each message is one frame of 16384 bytes of plaintext (3 + 12 bytes of headers).
      const types: number[] = [];
      for (let i = 0; i < 9; i++) {
        await side.send(new Uint8Array(16384 - 15).fill(i));
        await side.flush();
        const bytes = (await within(raw.reader.next(), 5000, `frame ${i}`))!;
        const { type, header, body } = parseFrame(bytes);
        const plaintext = await raw.receive.decryptWithAd(header, body);
        assert.equal(plaintext.length, 16384);
        if (type === FrameType.TransportRekey) await raw.receive.rekey();
        types.push(type);
      }
      // 4 × 16384 = 65536 reaches the threshold on the 4th frame; the count
      // restarts after it, so the 8th rekeys again.
      const T = FrameType.Transport, R = FrameType.TransportRekey;
      assert.deepEqual(types, [T, T, T, R, T, T, T, R, T]);
    } finally {
      raw.close();
    }
  });
});

Deno.test("A client that refuses (key-rejected) half-closes and drains, so its Refuse arrives before a clean FIN", async () => {
  using listener = Deno.listen({ hostname: HOST, port: 0 });
  const serve = (async () => {
    const conn = await listener.accept();
    try {
      const reader = new FrameReader(conn, 16);
      const pre = (await reader.next())!;
      const hs = await HandshakeState.create({
        protocolName: "Noise_XX_25519_AESGCM_SHA256",
        initiator: false,
        prologue: concat(pre, utf8("aesm")),
        staticPrivateKey: (await generateKeyPair()).privateKey,
      });
      await hs.readMessage(parseFrame((await reader.next())!).body);
      // Message 2 and, behind it, data the client has not read when it
      // refuses: closing on that would make the kernel reset the connection.
      await writeAll(
        conn,
        concat(
          frame(FrameType.Handshake, await hs.writeMessage(params(MIN_MAX))),
          frame(FrameType.Transport, new Uint8Array(60_000)),
        ),
      );
      const rest = await within(reader.drain(), 5000, "the client's FIN");
      return rest.frames.length > 0
        ? { refuse: parseFrame(rest.frames[0]), rest: { ...rest, frames: rest.frames.slice(1) } }
        : { refuse: undefined, rest };
    } finally {
      closeQuietly(conn);
    }
  })();
  const error = await ClientNetwork.connect({
    hostname: HOST,
    port: listener.addr.port,
    serverPublicKey: (await generateKeyPair()).publicKey,
  }).then(() => assert.fail("connected"), (e) => e);
  assert.equal(error.reason, "key-rejected");
  const { refuse, rest } = await serve;
  assert.equal(refuse?.type, FrameType.Refuse);
  assert.equal(REFUSE_REASONS[refuse.body[0]], "key-rejected");
  assert.deepEqual(rest, { frames: [] }, "a FIN, not a reset, and nothing after the Refuse");
});

Deno.test("A Refuse detail is shown cut to 256 bytes, invalid UTF-8 replaced, and never acted on", async () => {
  const detail = concat(utf8("d".repeat(255)), new Uint8Array([0xff]), utf8("z".repeat(100)));
  const { answer, error } = await clientAnswer({
    message2: () =>
      Promise.resolve(frame(FrameType.Refuse, concat(new Uint8Array([0x04]), detail))),
  });
  assert.equal(answer, "close, nothing sent");
  assert.equal((error as { reason?: string }).reason, "application-mismatch");
  const message = (error as Error).message;
  assert.ok(message.endsWith(`: ${"d".repeat(255)}\ufffd`), message);
});
