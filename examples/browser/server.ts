// Copyright 2026 the aesm authors. MIT license.
// A chat between browser pages and a Deno server, end-to-end encrypted with
// aesm over WebSocket. The page pins the server's public key, shown at
// start: no certificate authority is involved.
//
//   deno task build:browser                        (makes dist/aesm.js)
//   deno run -A examples/browser/server.ts [port] [seconds]
//
// then open the URL it prints (http://127.0.0.1 is a secure context, which
// WebCrypto needs; elsewhere serve it over https).

import { ServerNetwork, toHex } from "../_demo_deps.ts";

const HERE = new URL("./", import.meta.url);

/** The chat: an aesm server that relays every line to every member, and the HTTP side. */
export interface Chat extends AsyncDisposable {
  readonly server: ServerNetwork;
  /** The page's URL, with the server's public key to pin in its fragment. */
  readonly url: string;
}

/** Starts the chat on `port`, serving the page, its script and the browser bundle at `bundle`. */
export function startChat(options: { port: number; bundle: string | URL }): Promise<Chat> {
  return start(options.port, options.bundle);
}

async function start(port: number, bundle: string | URL): Promise<Chat> {
  const server = await ServerNetwork.listen({ hostname: "127.0.0.1", port: 0 });
  const files: Record<string, [string | URL, string]> = {
    "/": [new URL("index.html", HERE), "text/html"],
    "/aesm.js": [bundle, "text/javascript"],
  };
  const http = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (request, info) => {
    const path = new URL(request.url).pathname;
    if (path === "/aesm") return server.upgrade(request, info);
    const file = files[path];
    if (file === undefined) return new Response("Not found", { status: 404 });
    const body = await Deno.readFile(file[0]);
    return new Response(body, { headers: { "content-type": file[1] } });
  });
  // Every line goes to every member, the sender too: the page sees its line came back.
  const relay = (async () => {
    for await (const packet of server) await server.sendAll(packet.data);
  })();
  const url = `http://127.0.0.1:${http.addr.port}/#key=${toHex(server.publicKey)}`;
  return {
    server,
    url,
    async [Symbol.asyncDispose]() {
      await server.stop();
      await relay;
      await http.shutdown();
    },
  };
}

if (import.meta.main) {
  const [portArg = "8080", seconds = "300"] = Deno.args;
  const bundle = new URL("../../dist/aesm.js", import.meta.url);
  try {
    await Deno.stat(bundle);
  } catch {
    console.error("Cannot serve the page: dist/aesm.js is missing; run `deno task build:browser`");
    Deno.exit(1);
  }
  await using chat = await startChat({ port: Number(portArg), bundle });
  console.log(`chat page: ${chat.url}`);
  console.log(`server key: ${toHex(chat.server.publicKey)}`);
  await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
}
