// Copyright 2026 the aesm authors. MIT license.
// Multi-core on one machine: N server processes on one port (SO_REUSEPORT, so
// the kernel spreads clients over them), joined as a cluster over NATS. They
// run a chat: every line a client sends goes to every client of every process.
//
//   deno task cluster [workers] [port] [seconds]
//   (= deno run -A --unstable-net examples/cluster.ts [workers] [port] [seconds])
//
// It uses the NATS server at AESM_NATS (host:port) if set, else starts
// `nats-server` (apt-get install nats-server) on a free loopback port for its
// own lifetime. Ctrl-C stops everything.

import { generateClusterKey, ServerNetwork, toHex } from "./_demo_deps.ts";
import { NatsCluster } from "../cluster/nats.ts";
import { freePort, NatsServer } from "./_nats_server.ts";

const HOST = "127.0.0.1";

if (Deno.args[0] === "worker") await worker(Deno.args[1], Number(Deno.args[2]), Deno.args[3]);
else await main();

/** One process of the cluster: listens on the shared port and relays lines cluster-wide. */
async function worker(id: string, port: number, nats: string): Promise<void> {
  const key = Uint8Array.from(
    Deno.env.get("AESM_CLUSTER_KEY")!.match(/../g)!,
    (b) => parseInt(b, 16),
  );
  const adapter = await NatsCluster.connect({ servers: nats });
  const server = await ServerNetwork.listen({
    hostname: HOST,
    port,
    reusePort: true,
    cluster: { adapter, key, nodeId: id },
  });
  console.log(`${id} (pid ${Deno.pid}) on ${server.address}`);
  // The parent closes our stdin to stop us.
  const stopping = (async () => {
    for await (const _ of Deno.stdin.readable) void _;
    await server.stop();
  })();
  const greeting = (async () => {
    for await (const record of server.activity) {
      if (record.event !== "connected") continue;
      await server.sendTo(`welcome, you are on ${id}`, record.publicKey!).catch(() => {});
    }
  })();
  for await (const packet of server) await server.sendAll(packet.text());
  await stopping;
  await greeting;
}

async function main(): Promise<void> {
  const [workers = 2, port = 7072, seconds = 300] = Deno.args.map(Number);
  let natsServer: NatsServer | undefined;
  let nats = Deno.env.get("AESM_NATS");
  if (nats === undefined) {
    natsServer = new NatsServer();
    await natsServer.start();
    nats = natsServer.address;
  }
  const shared = port === 0 ? freePort() : port;
  const key = toHex(generateClusterKey());
  const children = Array.from({ length: workers }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-net",
        import.meta.filename!,
        "worker",
        `worker-${i}`,
        String(shared),
        nats,
      ],
      env: { AESM_CLUSTER_KEY: key },
      stdin: "piped",
    }).spawn());
  console.log(`cluster of ${workers} workers on ${HOST}:${shared} (NATS at ${nats})`);
  const done = Promise.withResolvers<void>();
  const timer = setTimeout(done.resolve, seconds * 1000);
  Deno.addSignalListener("SIGINT", done.resolve);
  Deno.addSignalListener("SIGTERM", done.resolve);
  await Promise.race([done.promise, ...children.map((child) => child.status)]);
  clearTimeout(timer);
  Deno.removeSignalListener("SIGINT", done.resolve);
  Deno.removeSignalListener("SIGTERM", done.resolve);
  await Promise.all(children.map(async (child) => {
    await child.stdin.close().catch(() => {});
    await child.status;
  }));
  await natsServer?.stop();
}
