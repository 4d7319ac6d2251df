// Copyright 2026 the aesm authors. MIT license.
// The page's side of the chat: the browser bundle of aesm over the page's
// own WebSocket, pinning the server key from the URL fragment.
import { ClientNetwork } from "/aesm.js";

const $ = (id) => document.getElementById(id);
const keyHex = new URLSearchParams(location.hash.slice(1)).get("key") ?? "";
$("key").textContent = keyHex;
const serverPublicKey = new Uint8Array(keyHex.match(/../g)?.map((b) => parseInt(b, 16)) ?? []);

/** What the page received, for people (the log) and for the test (this array). */
const received = [];
const wsUrl = `ws://${location.host}/aesm`;

function show(text) {
  const line = document.createElement("div");
  line.textContent = text;
  $("log").append(line);
}

async function connect() {
  const client = await ClientNetwork.connect({ url: wsUrl, serverPublicKey });
  $("status").textContent = "connected, end-to-end encrypted";
  (async () => {
    for await (const packet of client) {
      received.push(packet.data);
      show(typeof packet.data === "string" ? packet.data : `(${packet.data.length} bytes)`);
    }
    const info = await client.closed;
    $("status").textContent = `closed: ${info.reason}`;
  })();
  return client;
}

const ready = connect();
ready.catch((error) => {
  $("status").textContent = `refused: ${error.reason ?? error.message}`;
});
$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const client = await ready;
  await client.send($("line").value);
  $("line").value = "";
});

// For the browser test: the page's client and what arrived.
globalThis.chat = { ready, received };
