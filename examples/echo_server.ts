// Copyright 2026 the aesm authors. MIT license.
// An echo server: every message comes back to its sender. Stops after a
// time limit (default 60 s) or Ctrl-C.
//
//   deno run -A examples/echo_server.ts [port] [seconds]

import { ServerNetwork, toHex } from "./_demo_deps.ts";

const port = Number(Deno.args[0] ?? 7070);
const seconds = Number(Deno.args[1] ?? 60);
const signal = AbortSignal.any([AbortSignal.timeout(seconds * 1000), interrupted()]);

await using server = await ServerNetwork.listen({
  hostname: "127.0.0.1",
  port,
  applicationName: "echo",
});
console.log(
  `echo server on ${server.address} for ${seconds} s, public key ${toHex(server.publicKey)}`,
);
signal.addEventListener("abort", () => server.stop(), { once: true });

const log = (async () => {
  for await (const record of server.activity) {
    console.log(`${record.address} ${record.event}${record.reason ? ` (${record.reason})` : ""}`);
  }
})();

for await (const packet of server) {
  await server.sendTo(packet.data, packet.address).catch((error) => console.error(error.message));
}
await log;

function interrupted(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort();
  Deno.addSignalListener("SIGINT", stop);
  controller.signal.addEventListener("abort", () => Deno.removeSignalListener("SIGINT", stop), {
    once: true,
  });
  return controller.signal;
}
