// Copyright 2026 the aesm authors. MIT license.
// A small chat. The server relays each line to every other member; members
// share a pre-shared key, so only they can join.
//
//   deno run -A examples/chat.ts server [port] [seconds]
//   deno run -A examples/chat.ts join [port] [name]     (type lines; Ctrl-D leaves)
//
// The psk comes from the AESM_CHAT_PSK environment variable (64 hex digits);
// without it a fixed demo key is used, which is fine on loopback only.

import { ClientNetwork, ServerNetwork } from "./_demo_deps.ts";

const psk = pskFromEnv();
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
  setTimeout(() => server.stop(), seconds * 1000);
  for await (const packet of server) {
    const others = server.connections.addresses().filter((address) => address !== packet.address);
    await Promise.allSettled(others.map((address) => server.sendTo(`${packet.data}`, address)));
  }
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
    for await (const packet of client) console.log(packet.data);
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

function pskFromEnv(): Uint8Array<ArrayBuffer> {
  const hex = Deno.env.get("AESM_CHAT_PSK") ?? "61".repeat(32);
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new TypeError("AESM_CHAT_PSK must be 64 hex digits");
  return new Uint8Array(hex.match(/../g)!.map((byte) => parseInt(byte, 16)));
}
