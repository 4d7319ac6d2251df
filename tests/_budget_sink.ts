// Copyright 2026 the aesm authors. MIT license.
/**
 * `deno run -A tests/_budget_sink.ts <peers> <highWaterMark> <maxMessageSize> <maxQueuedBytes> <ms>`:
 * a server in its own process (so that its RSS is its own) whose application
 * reads nothing. It prints its port; once `peers` clients are connected it
 * samples its RSS and the bytes queued across connections for `ms`, then
 * prints one JSON line of figures and exits.
 *
 * @module
 */

import { forceGc } from "./_adversary.ts";
import { ServerNetwork } from "../server.ts";

const [peers, highWaterMark, maxMessageSize, maxQueuedBytes, ms] = Deno.args.map(Number);
const server = await ServerNetwork.listen({
  hostname: "127.0.0.1",
  port: 0,
  highWaterMark,
  maxMessageSize,
  maxQueuedBytes,
  maxHandshakesPerAddress: peers,
  maxPendingHandshakes: peers,
});
console.log(String(server.port));
for (let i = 0; i < peers; i++) await server.accept();
forceGc();
const rssBefore = Deno.memoryUsage().rss;
let peakRss = rssBefore;
let peakQueued = 0;
const sample = () => {
  peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
  let queued = 0;
  for (const connection of server.connections) queued += connection.data.bytes;
  peakQueued = Math.max(peakQueued, queued);
};
const sampler = setInterval(sample, 10);
await new Promise((resolve) => setTimeout(resolve, ms));
clearInterval(sampler);
sample();
console.log(JSON.stringify({ rssBefore, peakRss, peakQueued }));
Deno.exit(0);
