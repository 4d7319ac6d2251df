// Copyright 2026 the aesm authors. MIT license.
/**
 * One cluster node in its own process, for the NATS tests. Private to the tests.
 *
 * Usage: `deno run -A tests/_cluster_process.ts <nats port> <node id> <cluster key hex>`.
 * Prints one JSON line per event on stdout: `{"ready": port}`, then
 * `{"activity": event, "node": id}` for cluster events, and an answer per
 * command. Reads one JSON command per line on stdin: `{"sendAll": text}`
 * answers `{"sent": n}`; `{"sendTo": text, "key": hex}` answers
 * `{"routed": true}` or `{"error": message}`. Ends at the end of stdin.
 */

import { NatsCluster } from "../cluster/nats.ts";
import { ServerNetwork } from "../server.ts";

const [natsPort, nodeId, keyHex] = Deno.args;
const key = Uint8Array.from(keyHex.match(/../g)!, (byte) => parseInt(byte, 16));
const adapter = await NatsCluster.connect({
  servers: `127.0.0.1:${natsPort}`,
  reconnectTimeWait: 100,
  pingInterval: 500,
});
const server = await ServerNetwork.listen({
  hostname: "127.0.0.1",
  port: 0,
  cluster: { adapter, key, nodeId, heartbeatInterval: 500 },
  maxHandshakesPerAddress: 400,
  maxConnectionsPerAddress: 400,
});
const encoder = new TextEncoder();
const say = (value: unknown) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(value) + "\n"));
say({ ready: server.port });

const watching = (async () => {
  for await (const record of server.activity) {
    if (record.event !== "connected" && record.event !== "disconnected") {
      say({ activity: record.event, node: record.address });
    }
  }
})();

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let pending = "";
for await (const chunk of lines) {
  pending += chunk;
  let newline;
  while ((newline = pending.indexOf("\n")) >= 0) {
    const command = JSON.parse(pending.slice(0, newline));
    pending = pending.slice(newline + 1);
    if ("sendAll" in command) say({ sent: await server.sendAll(command.sendAll) });
    else if ("sendTo" in command) {
      const publicKey = Uint8Array.from(command.key.match(/../g)!, (b: string) => parseInt(b, 16));
      try {
        await server.sendTo(command.sendTo, publicKey);
        say({ routed: true });
      } catch (error) {
        say({ error: (error as Error).message });
      }
    }
  }
}
await server.stop();
await watching;
