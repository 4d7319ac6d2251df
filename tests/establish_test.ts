// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { concat, fromHex, toHex } from "../_crypto/bytes.ts";
import {
  encodePreamble,
  encodeRefuse,
  establishClient,
  establishServer,
  MESSAGE1_LENGTH,
  prologue,
  PROTOCOL_BYTE,
  PROTOCOLS,
  REFUSE_CODES,
} from "../_connection/establish.ts";
import { suiteOf } from "../_noise/cipher_state.ts";
import { DEFAULT_CHOICE, hash, hkdf } from "../_crypto/primitives.ts";
import { generateKeyPair } from "../cipher.ts";
import { encodeFrame, FrameType } from "../framing.ts";
import { HandshakeState } from "../handshake.ts";
import { parseProtocolName } from "../_noise/patterns.ts";
import { TcpTransport } from "../_transport/tcp.ts";

const config = async (psk?: Uint8Array<ArrayBuffer>) => ({
  applicationName: "aesm",
  keyPair: await generateKeyPair(),
  psk,
  maxMessageSize: 65536,
});

Deno.test("encodePreamble() gives the bytes of PROTOCOL.md's worked example", async () => {
  const preamble = await encodePreamble(await config());
  assert.equal(toHex(preamble), "6165736d010000007f5aeeb237f4528e");
  assert.equal(
    toHex(prologue(preamble, await config())),
    "6165736d010000007f5aeeb237f4528e" + "6165736d",
  );
});

Deno.test("encodePreamble() sets the protocol byte 02 (XXpsk0) when a psk is configured", async () => {
  const preamble = await encodePreamble(await config(new Uint8Array(32)));
  assert.equal(preamble[5], 2);
  assert.equal(PROTOCOLS[preamble[5]], "Noise_XXpsk0_25519_AESGCM_SHA256");
});

Deno.test("REFUSE_CODES holds the codes of PROTOCOL.md's refuse table, the reserved 0b and 0c included", async () => {
  const text = await Deno.readTextFile(new URL("../PROTOCOL.md", import.meta.url));
  const rows = [
    ...text.matchAll(/^\| `([0-9a-f]{2})` \| `([a-z-]+)` +\| (?:server|client|either) /gm),
  ];
  const table = Object.fromEntries(rows.map(([, code, reason]) => [reason, parseInt(code, 16)]));
  assert.deepEqual(table, REFUSE_CODES);
  assert.equal(REFUSE_CODES["server-busy"], 0x0b);
  assert.equal(REFUSE_CODES["too-many-from-address"], 0x0c);
});

Deno.test("encodeRefuse() writes a Refuse frame with the code and a bounded detail", () => {
  const frame = encodeRefuse("server-full", "x".repeat(1000));
  assert.deepEqual(frame.subarray(0, 4), fromHex("0201010" + "9"));
  assert.equal(frame.length, 3 + 1 + 256);
  assert.equal(REFUSE_CODES["server-full"], 0x09);
});

/** The hex code blocks of PROTOCOL.md's section 10 that follow `marker`, as hex strings. */
async function exampleBlocks(marker: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL("../PROTOCOL.md", import.meta.url));
  const section = text.slice(text.indexOf("## 10. Worked example"), text.indexOf("## 11."));
  const after = section.slice(section.indexOf(marker));
  return [...after.matchAll(/```\n([0-9a-f \n]+)```/g)].map((m) => m[1].replace(/\s+/g, ""));
}

Deno.test("PROTOCOL.md's XXpsk0 worked example is what aesm computes, byte for byte", async () => {
  const [preambleHex, ephemeralHex, keyHex, hHex, frameHex] = await exampleBlocks("With the psk");
  const psk = Uint8Array.from({ length: 32 }, (_, i) => i);
  const ephemeralPrivateKey = Uint8Array.from({ length: 32 }, (_, i) => 32 + i);
  const pskConfig = await config(psk);
  const preamble = await encodePreamble(pskConfig);
  assert.equal(toHex(preamble), preambleHex);

  // The client's message 1, as aesm's handshake writes it with that ephemeral key.
  const hs = await HandshakeState.create({
    protocolName: PROTOCOLS[PROTOCOL_BYTE.psk],
    initiator: true,
    prologue: prologue(preamble, pskConfig),
    staticPrivateKey: pskConfig.keyPair.privateKey,
    ephemeralPrivateKey,
    psks: [psk],
  });
  const message1 = await hs.writeMessage();
  assert.equal(toHex(encodeFrame(FrameType.Handshake, message1)), frameHex);
  assert.equal(toHex(message1.subarray(0, 32)), ephemeralHex);

  // The same steps by hand, as the text tells them: the key and h of the tag.
  const name = new TextEncoder().encode("Noise_XXpsk0_25519_AESGCM_SHA256");
  assert.equal(name.length, 32, "the protocol name is exactly HASHLEN bytes");
  let h = await hash(concat(name, prologue(preamble, pskConfig)));
  const [ck, tempH] = await hkdf(name, psk, 3);
  h = await hash(concat(h, tempH));
  h = await hash(concat(h, message1.subarray(0, 32)));
  const [, key] = await hkdf(ck, message1.subarray(0, 32), 2);
  assert.equal(toHex(key), keyHex);
  assert.equal(toHex(h), hHex);
  const aes = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt"]);
  const tag = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: new Uint8Array(12), additionalData: h },
    aes,
    new Uint8Array(0),
  );
  assert.equal(toHex(new Uint8Array(tag)), frameHex.slice(-32));
});

Deno.test("XXpsk0's message 1 carries no DH token, and a responder with another psk rejects it", async () => {
  // The server reads message 1 before it writes message 2 (the only place it
  // makes an ephemeral key): with tokens psk and e alone, reading it costs
  // hashing, HKDF and one AES-GCM check, and no DH.
  const { pattern } = parseProtocolName(PROTOCOLS[PROTOCOL_BYTE.psk]);
  assert.deepEqual(pattern.messages[0], ["psk", "e"]);
  const pre = await encodePreamble(await config(new Uint8Array(32).fill(1)));
  const make = async (initiator: boolean, fill: number) =>
    await HandshakeState.create({
      protocolName: PROTOCOLS[PROTOCOL_BYTE.psk],
      initiator,
      prologue: pre,
      staticPrivateKey: (await generateKeyPair()).privateKey,
      psks: [new Uint8Array(32).fill(fill)],
    });
  const message1 = await (await make(true, 1)).writeMessage();
  assert.equal(message1.length, MESSAGE1_LENGTH.psk);
  await assert.rejects((await make(false, 2)).readMessage(message1));
  await (await make(false, 1)).readMessage(message1);
});

for (
  const [server, client] of [["webcrypto", "auto"], ["auto", "webcrypto"], [
    undefined,
    undefined,
  ]] as const
) {
  Deno.test(`A handshake with crypto ${server ?? "unset"} on the server and ${client ?? "unset"} on the client gives each side ciphers on its own suite`, async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepting = listener.accept();
    using clientConn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    using serverConn = await accepting;
    const [serverSide, clientSide] = await Promise.all([
      establishServer(new TcpTransport(serverConn), {
        ...await config(),
        crypto: server,
        authorize: () => true,
      }),
      establishClient(new TcpTransport(clientConn), {
        ...await config(),
        crypto: client,
        serverPublicKey: undefined,
      }),
    ]);
    for (const [side, choice] of [[serverSide, server], [clientSide, client]] as const) {
      assert.equal(suiteOf(side.send).name, choice ?? DEFAULT_CHOICE);
      assert.equal(suiteOf(side.receive).name, choice ?? DEFAULT_CHOICE);
    }
    assert.deepEqual(serverSide.handshakeHash, clientSide.handshakeHash);
    const sealed = await clientSide.send.encryptWithAd(new Uint8Array(0), new Uint8Array(5000));
    assert.deepEqual(
      await serverSide.receive.decryptWithAd(new Uint8Array(0), sealed),
      new Uint8Array(5000),
    );
  });
}
