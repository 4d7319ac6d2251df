// Copyright 2026 the aesm authors. MIT license.
// An echo server: every message goes back to its sender. Prints its address
// and public key (give the key to echo_client.ts to pin this server). Stops
// after a time limit (default 60 s) or at once on Ctrl-C.
//
//   deno run -A examples/echo_server.ts [port] [seconds]

import { ServerNetwork, toHex } from "./_demo_deps.ts";

const port = Number(Deno.args[0] ?? 7070);
const seconds = Number(Deno.args[1] ?? 60);

await using server = await ServerNetwork.listen({
  hostname: "127.0.0.1",
  port,
  applicationName: "echo",
});
console.log(`echo server on ${server.address}, public key ${toHex(server.publicKey)}`);
stopOnInterruptOrAfter(seconds, () => server.stop());

const log = (async () => {
  for await (const record of server.activity) {
    console.log(`${record.address} ${record.event}${record.reason ? ` (${record.reason})` : ""}`);
  }
})();

for await (const packet of server) {
  await packet.connection.send(packet.data).catch((error) => console.error(error.message));
}
await log;

/** Calls `stop` on Ctrl-C or after `seconds`, whichever comes first, and leaves no timer behind. */
function stopOnInterruptOrAfter(seconds: number, stop: () => void): void {
  const done = () => {
    clearTimeout(timer);
    Deno.removeSignalListener("SIGINT", done);
    stop();
  };
  const timer = setTimeout(done, seconds * 1000);
  Deno.addSignalListener("SIGINT", done);
}
