// Copyright 2026 the aesm authors. MIT license.
// The browser build in a real browser: Chromium, headless, driven by
// puppeteer-core, loads the chat example's page from http://127.0.0.1 (a
// secure context, which WebCrypto needs); the page runs the handshake and
// the records over its own WebSocket with the bundle `deno task
// build:browser` makes.
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "npm:puppeteer-core@25.16.0";
import { ClientNetwork } from "../client.ts";
import { generateKeyPair } from "../cipher.ts";
import { startChat } from "../examples/browser/server.ts";
import { activityOf, bounded, HOST, within } from "./_network.ts";

const CHROMIUM = Deno.env.get("AESM_CHROMIUM") ?? "/usr/bin/chromium";
const ROOT = new URL("../", import.meta.url);

/** Builds the browser bundle as the task does, into a fresh directory. */
async function buildBundle(dir: string): Promise<string> {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks;
  const args = (tasks["build:browser"] as string).split(" ").slice(1);
  const output = `${dir}/aesm.js`;
  args[args.indexOf("-o") + 1] = output;
  const { success, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT.pathname,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(success, `deno task build:browser failed: ${new TextDecoder().decode(stderr)}`);
  return output;
}

async function launch(dir: string): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `Cannot run the browser test: no Chromium at ${CHROMIUM} ` +
        "(apt-get install -y chromium, or set AESM_CHROMIUM)",
    );
  }
  return await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${dir}/profile`,
    ],
  });
}

/** What the page received so far, bytes as arrays (they cross the page boundary as JSON). */
function received(page: Page): Promise<unknown[]> {
  return page.evaluate(() =>
    (globalThis as unknown as { chat: { received: unknown[] } }).chat.received.map((data) =>
      typeof data === "string" ? data : Array.from(data as Uint8Array)
    )
  );
}

async function until(page: Page, count: number, what: string): Promise<unknown[]> {
  for (let i = 0; i < 200; i++) {
    const got = await received(page);
    if (got.length >= count) return got;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** The page's received messages as [length, first byte, last byte], once there are `count`. */
async function untilSummary(page: Page, count: number, what: string): Promise<unknown[]> {
  for (let i = 0; i < 400; i++) {
    const got = await page.evaluate(() =>
      (globalThis as unknown as { chat: { received: (string | Uint8Array)[] } }).chat.received.map(
        (data) => [data.length, data[0], data[data.length - 1]],
      )
    );
    if (got.length >= count) return got;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

// puppeteer keeps its own sockets and timers with the browser process; the
// sanitizers would see them, not aesm's (the other tests check aesm's).
Deno.test({
  name: "A page in Chromium talks to a Deno server over aesm, pinning its key, and closes clean",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aesm-browser-" });
    let browser: Browser | undefined;
    try {
      const bundle = await buildBundle(dir);
      await using chat = await startChat({ port: 0, bundle });
      browser = await launch(dir);
      const page = await browser.newPage();
      await page.goto(chat.url);
      const ok = await within(
        page.evaluate(async () => {
          const { chat } = globalThis as unknown as { chat: { ready: Promise<unknown> } };
          await chat.ready;
          return true;
        }),
        "the page's handshake",
      );
      assert.equal(ok, true);
      const joined = await activityOf(chat.server, "connected");
      assert.match(joined.address, /^127\.0\.0\.1:\d+$/);

      // A Deno member over TCP sees what the page sends, and the page what it sends.
      await using member = await ClientNetwork.connect({
        hostname: HOST,
        port: chat.server.port,
        serverPublicKey: chat.server.publicKey,
      });
      await page.evaluate(async () => {
        const { chat } = globalThis as unknown as {
          chat: { ready: Promise<{ send(data: string | Uint8Array): Promise<void> }> };
        };
        const client = await chat.ready;
        await client.send("hello from the page");
        await client.send(new Uint8Array([0, 1, 2, 250, 255]));
      });
      assert.equal((await member.receive(bounded()))?.data, "hello from the page");
      assert.deepEqual(
        (await member.receive(bounded()))?.data,
        new Uint8Array([0, 1, 2, 250, 255]),
      );
      await member.send("hello from Deno");
      await member.send(new Uint8Array(70_000).fill(7)); // More than one frame.
      await until(page, 4, "the relayed messages");
      assert.equal(await chat.server.sendAll("the server says hi"), 2);
      const got = await until(page, 5, "the server's sendAll");
      assert.deepEqual(got.slice(0, 3), [
        "hello from the page",
        [0, 1, 2, 250, 255],
        "hello from Deno",
      ]);
      const big = got[3] as number[];
      assert.equal(big.length, 70_000);
      assert.ok(big.every((byte) => byte === 7));
      assert.equal(got[4], "the server says hi");
      // 12 MiB each way through the page's window (PROTOCOL.md section 12, aesm.v1.window): the
      // page sends, and the chat relays to the member and back to the page, which credits it.
      await page.evaluate(async () => {
        const { chat } = globalThis as unknown as {
          chat: { ready: Promise<{ send(data: Uint8Array): Promise<void> }> };
        };
        const client = await chat.ready;
        for (let i = 0; i < 12; i++) await client.send(new Uint8Array(1024 * 1024).fill(i));
      });
      // The member's own two messages came back to it too, then the sendAll.
      assert.equal((await member.receive(bounded()))?.data, "hello from Deno");
      assert.equal(((await member.receive(bounded()))?.data as Uint8Array).length, 70_000);
      assert.equal((await member.receive(bounded()))?.data, "the server says hi");
      for (let i = 0; i < 12; i++) {
        const data = (await member.receive(bounded()))?.data as Uint8Array;
        assert.equal(data.length, 1024 * 1024);
        assert.ok(data[0] === i && data[data.length - 1] === i, `relayed MiB ${i}`);
      }
      const back = await untilSummary(page, 5 + 12, "the 12 MiB relayed back to the page");
      assert.deepEqual(back.slice(5), Array.from({ length: 12 }, (_, i) => [1024 * 1024, i, i]));

      const info = await page.evaluate(async () => {
        const { chat } = globalThis as unknown as {
          chat: { ready: Promise<{ close(): Promise<{ reason: string; clean: boolean }> }> };
        };
        const { reason, clean } = await (await chat.ready).close();
        return { reason, clean };
      });
      assert.deepEqual(info, { reason: "normal", clean: true });
      const left = await activityOf(chat.server, "disconnected");
      assert.deepEqual([left.address, left.reason, left.clean], [joined.address, "normal", true]);

      // A page pinning another key is refused, and says why.
      const other = await generateKeyPair();
      const hex = Array.from(other.publicKey, (b) => b.toString(16).padStart(2, "0")).join("");
      const wrong = await browser.newPage();
      await wrong.goto(chat.url.replace(/#key=.*/, `#key=${hex}`));
      const refusal = await within(
        wrong.evaluate(async () => {
          const { chat } = globalThis as unknown as { chat: { ready: Promise<unknown> } };
          try {
            await chat.ready;
            return "connected";
          } catch (error) {
            const { name, reason } = error as { name: string; reason: string };
            return `${name} ${reason}`;
          }
        }),
        "the refusal of a wrong key",
      );
      assert.equal(refusal, "AuthenticationError key-rejected");
      const refused = await activityOf(chat.server, "refused");
      assert.equal(refused.reason, "key-rejected");
      await wrong.waitForFunction(
        () => {
          const { document } = globalThis as unknown as {
            document: { getElementById(id: string): { textContent: string } | null };
          };
          return document.getElementById("status")?.textContent === "refused: key-rejected";
        },
        { timeout: 5000 },
      );
    } finally {
      await browser?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
