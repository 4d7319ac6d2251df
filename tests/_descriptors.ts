// Copyright 2026 the aesm authors. MIT license.
/**
 * A server process for the descriptor tests, run under a low open-file limit
 * (`sh -c "ulimit -n N; exec deno run -A tests/_descriptors.ts MODE"`).
 *
 * `limits`: prints one JSON line: the default `maxConnections` the server
 * chose, and the error for `maxConnections: 1024`.
 *
 * `exhaust <free>`: listens (handshake timeout 1 s), prints its port, then
 * opens `/dev/null` until only `free` descriptors are left (as the rest of a
 * busy program would), prints `ready`, and prints each activity record as a
 * JSON line until killed.
 *
 * @module
 */

import { ServerNetwork } from "../server.ts";

/** Spawns this script under `ulimit -n limit`, stdout piped. */
export function spawnLimited(limit: number, args: string[]): Deno.ChildProcess {
  const script = new URL(import.meta.url).pathname;
  return new Deno.Command("sh", {
    args: ["-c", `ulimit -n ${limit} && exec "$@"`, "sh", Deno.execPath(), "run", "-A", script]
      .concat(args),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function limits(): Promise<void> {
  const server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
  const chosen = server.maxConnections;
  await server.stop();
  let error = "";
  try {
    await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0, maxConnections: 1024 });
  } catch (e) {
    error = `${(e as Error).name}: ${(e as Error).message}`;
  }
  console.log(JSON.stringify({ chosen, error }));
}

async function exhaust(free: number): Promise<void> {
  // Deno 2.9.6 panics (ext/signals) if it sets up its signal handling once
  // descriptors have run out: set it up now, with a listener that stays.
  Deno.addSignalListener("SIGUSR2", () => {});
  const server = await ServerNetwork.listen({
    hostname: "127.0.0.1",
    port: 0,
    handshakeTimeout: 1000,
  });
  console.log(String(server.port));
  const hog: Deno.FsFile[] = [];
  try {
    while (true) hog.push(Deno.openSync("/dev/null"));
  } catch {
    // Out of descriptors: give back `free` of them.
  }
  for (let i = 0; i < free; i++) hog.pop()?.close();
  console.log("ready");
  for await (const record of server.activity) {
    console.log(JSON.stringify({ ...record, publicKey: undefined }));
  }
}

if (import.meta.main) {
  const [mode, arg] = Deno.args;
  if (mode === "limits") await limits();
  else if (mode === "exhaust") await exhaust(Number(arg));
  else throw new TypeError(`Cannot run: unknown mode ${mode}`);
}
