// Copyright 2026 the aesm authors. MIT license.
// A Node.js (or Bun) peer running the bundled package: `client <port> <key>`
// connects, sends text and bytes, checks the server's echo, closes (`client
// <ws://url> <key>`: the same over WebSocket);
// `server` listens, prints its port and key, echoes one client, stops.
// Prints one JSON line of results; the Deno test checks them.
const [bundle, mode, port, key] = process.argv.slice(2);
const { ClientNetwork, ServerNetwork } = await import(bundle);

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text) => new Uint8Array(text.match(/../g).map((b) => parseInt(b, 16)));
const runtime = typeof Bun === "undefined" ? `node ${process.version}` : `bun ${Bun.version}`;
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  process.exit(2);
}, 20_000);

if (mode === "client") {
  const where = port.startsWith("ws://")
    ? { url: port }
    : { hostname: "127.0.0.1", port: Number(port) };
  const client = await ClientNetwork.connect({ ...where, serverPublicKey: fromHex(key) });
  await client.send("hello from " + runtime);
  await client.send(new Uint8Array(100_000).fill(9));
  const text = (await client.receive()).data;
  const bytes = (await client.receive()).data;
  const info = await client.close();
  const keyFile = await ClientNetwork.connect({ ...where, keyFile: "aesm.key" })
    .then(() => "connected", (error) => `${error.name}: ${error.message}`);
  console.log(JSON.stringify({
    keyFile,
    runtime,
    text,
    bytes: bytes.length,
    allNine: bytes.every((b) => b === 9),
    close: [info.reason, info.clean],
  }));
} else {
  const server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(JSON.stringify({ runtime, port: server.port, key: hex(server.publicKey) }));
  const connection = await server.accept();
  for await (const packet of connection) await connection.send(packet.data);
  const info = await connection.closed;
  await server.stop();
  console.log(JSON.stringify({ close: [info.reason, info.clean, info.by] }));
}
clearTimeout(deadline);
