// Copyright 2026 the aesm authors. MIT license.
// An echo client: sends each argument as a message and prints the echoes.
//
//   deno run -A examples/echo_client.ts [port] hello world

import { ClientNetwork } from "./_demo_deps.ts";

const [portArg = "7070", ...words] = Deno.args;
const messages = words.length > 0 ? words : ["hello", "aesm"];

await using client = await ClientNetwork.connect({
  hostname: "127.0.0.1",
  port: Number(portArg),
  applicationName: "echo",
  handshakeTimeout: 5000,
});
for (const message of messages) await client.send(message);
for (let i = 0; i < messages.length; i++) {
  const packet = await client.receive({ signal: AbortSignal.timeout(5000) });
  console.log(`echo: ${packet?.data}`);
}
