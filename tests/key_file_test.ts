// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { generateKeyPair } from "../cipher.ts";
import { ClientNetwork } from "../client.ts";
import { KEY_FILE_FORMAT, loadKeyFile, readKeyFile, writeKeyFile } from "../key_file.ts";
import { ServerNetwork } from "../server.ts";
import { HOST } from "./_network.ts";

async function withDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("writeKeyFile() writes the documented format with mode 0600 and never overwrites", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/a.key`;
    const pair = await generateKeyPair();
    const written = await writeKeyFile(path, pair);
    assert.deepEqual(written.publicKey, pair.publicKey);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
      format: KEY_FILE_FORMAT,
      version: 1,
      publicKey: hex(pair.publicKey),
      privateKey: hex(pair.privateKey),
    });
    await assert.rejects(
      writeKeyFile(path),
      (error) =>
        error instanceof Deno.errors.AlreadyExists && /never overwritten/.test(error.message),
    );
    assert.deepEqual((await readKeyFile(path)).privateKey, pair.privateKey);
  });
});

Deno.test("readKeyFile() refuses a file others may read, a wrong format and mismatched keys", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/open.key`;
    await writeKeyFile(path);
    await Deno.chmod(path, 0o644);
    await assert.rejects(
      readKeyFile(path),
      (error) => error instanceof Deno.errors.PermissionDenied && /chmod 600/.test(error.message),
    );
    const write = async (name: string, text: string) => {
      await Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o600 });
      return `${dir}/${name}`;
    };
    await assert.rejects(readKeyFile(await write("junk.key", "not json")), /it is not JSON/);
    await assert.rejects(
      readKeyFile(await write("other.key", '{"format":"pem","version":1}')),
      /expected format "aesm-key-file" version 1/,
    );
    const a = await generateKeyPair();
    const b = await generateKeyPair();
    const mixed = JSON.stringify({
      format: KEY_FILE_FORMAT,
      version: 1,
      publicKey: hex(a.publicKey),
      privateKey: hex(b.privateKey),
    });
    await assert.rejects(readKeyFile(await write("mixed.key", mixed)), /does not belong/);
    await assert.rejects(readKeyFile(`${dir}/missing.key`), Deno.errors.NotFound);
  });
});

Deno.test("a server with keyFile keeps its public key across restarts, so a pinning client reconnects", async () => {
  await withDir(async (dir) => {
    const keyFile = `${dir}/server.key`;
    let port = 0;
    let pinned: Uint8Array | undefined;
    for (let start = 0; start < 3; start++) {
      await using server = await ServerNetwork.listen({ hostname: HOST, port, keyFile });
      port = server.port;
      pinned ??= server.publicKey;
      await using client = await ClientNetwork.connect({
        hostname: HOST,
        port,
        serverPublicKey: pinned,
      });
      await client.send(`start ${start}`);
      assert.equal((await server.receive())?.text(), `start ${start}`);
    }
    assert.deepEqual((await loadKeyFile(keyFile)).publicKey, pinned);
  });
});

Deno.test("keyPair and keyFile together are a TypeError", async () => {
  const server = new ServerNetwork(HOST, 0, {
    keyPair: await generateKeyPair(),
    keyFile: "/nonexistent/server.key",
  });
  await assert.rejects(server.ready, /keyPair and keyFile together/);
  await server.stop();
});
