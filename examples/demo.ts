// Copyright 2026 the aesm authors. MIT license.
// The demo: a server and a client on loopback in one process. They run the
// Noise handshake, agree on a handshake hash, exchange text and binary
// messages both ways, and stop cleanly.
//
//   deno run -A examples/demo.ts

import { ClientNetwork, type Packet, ServerNetwork, toHex } from "./_demo_deps.ts";

function show(who: string, packet: Packet): void {
  const data = typeof packet.data === "string"
    ? JSON.stringify(packet.data)
    : `bytes [${packet.data.join(", ")}]`;
  console.log(
    `${who} received ${data} from ${packet.address}, sent at ${
      new Date(packet.time).toISOString()
    }`,
  );
}

const server = await ServerNetwork.listen({
  hostname: "127.0.0.1",
  port: 0,
  applicationName: "demo",
});
console.log(`server listening on ${server.address}`);
console.log(`server public key ${toHex(server.publicKey)}`);

const client = await ClientNetwork.connect({
  hostname: "127.0.0.1",
  port: server.port,
  applicationName: "demo",
  serverPublicKey: server.publicKey,
});
const connection = await server.accept();
console.log(`client connected from ${client.localAddress}`);
console.log(`handshake hash (client) ${toHex(client.handshakeHash)}`);
console.log(`handshake hash (server) ${toHex(connection.handshakeHash)}`);

await client.send("hello from the client");
await client.send(new Uint8Array([1, 2, 3, 4]));
show("server", (await server.receive())!);
show("server", (await server.receive())!);

await server.sendTo("hello from the server", client.localAddress);
await server.sendAll(new Uint8Array([5, 6, 7, 8]));
show("client", (await client.receive())!);
show("client", (await client.receive())!);

await client.close();
await connection.closed;
await server.stop();

console.log("activity log:");
for (let record = server.connections.activity(); record; record = server.connections.activity()) {
  const why = record.reason
    ? ` (${record.reason}${
      record.clean === undefined ? "" : record.clean ? ", clean" : ", unclean"
    })`
    : "";
  console.log(`  ${new Date(record.time).toISOString()} ${record.address} ${record.event}${why}`);
}
console.log("stopped cleanly");
