// Copyright 2026 the aesm authors. MIT license.
// An echo client: pins the server's public key (as echo_server.ts prints it),
// sends each word as a message and prints the echoes.
//
//   deno run -A examples/echo_client.ts PORT SERVER_PUBLIC_KEY [word ...]

import { ClientNetwork, fromHex } from "./_demo_deps.ts";

const [portArg, keyArg, ...words] = Deno.args;
if (portArg === undefined || keyArg === undefined) {
  console.error("usage: echo_client.ts PORT SERVER_PUBLIC_KEY [word ...]");
  console.error("(SERVER_PUBLIC_KEY: the 64 hex digits echo_server.ts prints)");
  Deno.exit(2);
}
const messages = words.length > 0 ? words : ["hello", "aesm"];

await using client = await ClientNetwork.connect({
  hostname: "127.0.0.1",
  port: Number(portArg),
  applicationName: "echo",
  serverPublicKey: fromHex(keyArg), // Only the server holding this key is accepted.
  handshakeTimeout: 5000,
});
for (const message of messages) await client.send(message);
for (let i = 0; i < messages.length; i++) {
  const packet = await client.receive({ signal: AbortSignal.timeout(5000) });
  console.log(`echo: ${packet?.text()}`);
}
