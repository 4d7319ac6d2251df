// Copyright 2026 the aesm authors. MIT license.
// A small chat. The server relays each line to every member; members
// share a pre-shared key, so only they can join.
//
//   head -c 32 /dev/urandom > chat.psk        (once; give the file to every member)
//   AESM_CHAT_PSK_FILE=chat.psk deno run -A examples/chat.ts server [port] [seconds]
//   AESM_CHAT_PSK_FILE=chat.psk deno run -A examples/chat.ts join [port] [name]
//
// The psk comes from the file named by AESM_CHAT_PSK_FILE (32 bytes), or from
// AESM_CHAT_PSK (64 hex digits). There is no built-in key: a key in the source
// is a key everyone has.

import { ClientNetwork, fromHex, ServerNetwork } from "./_demo_deps.ts";

const psk = await loadPsk();
const [mode = "server", portArg = "7071", third] = Deno.args;
const port = Number(portArg);

if (mode === "server") {
  const seconds = Number(third ?? 300);
  await using server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port,
    applicationName: "chat",
    psk,
  });
  console.log(`chat server on ${server.address} for ${seconds} s`);
  const timer = setTimeout(() => server.stop(), seconds * 1000);
  // A member that stops reading is disconnected (slowConsumer "disconnect", the default), so
  // it never holds up the room; everyone else gets every line.
  for await (const packet of server) await server.sendAll(packet.text());
  clearTimeout(timer);
} else {
  const name = third ?? "guest";
  await using client = await ClientNetwork.connect({
    hostname: "127.0.0.1",
    port,
    applicationName: "chat",
    psk,
  });
  console.log(`joined as ${name}; type a line to send it`);
  const printing = (async () => {
    for await (const packet of client) {
      if (!packet.text().startsWith(`${name}: `)) console.log(packet.text()); // Not our own lines.
    }
  })();
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let pending = "";
  for await (const chunk of lines) {
    const parts = (pending + chunk).split("\n");
    pending = parts.pop()!;
    for (const line of parts) if (line.trim()) await client.send(`${name}: ${line}`);
  }
  await client.close();
  await printing;
}

async function loadPsk(): Promise<Uint8Array<ArrayBuffer>> {
  const file = Deno.env.get("AESM_CHAT_PSK_FILE");
  const hex = Deno.env.get("AESM_CHAT_PSK");
  const psk = file ? await Deno.readFile(file) : hex ? fromHex(hex) : undefined;
  if (psk?.length === 32) return psk;
  console.error(
    psk === undefined
      ? "Cannot start chat: set AESM_CHAT_PSK_FILE to a file of 32 random bytes " +
        "(head -c 32 /dev/urandom > chat.psk) or AESM_CHAT_PSK to 64 hex digits"
      : `Cannot start chat: the psk must be 32 bytes, got ${psk.length}`,
  );
  Deno.exit(2);
}
