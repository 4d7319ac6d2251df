// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { CliError } from "../_cli/errors.ts";
import { knownHostsPath, lookUp, remember } from "../_cli/known_hosts.ts";

const KEY_A = "a".repeat(64);
const KEY_B = "b".repeat(64);

Deno.test("remember() appends host:port key lines, made with their folder, and lookUp() finds them by line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/aesm/known_hosts`;
    assert.equal(await lookUp(path, "127.0.0.1:7000"), undefined);
    assert.equal(await remember(path, "127.0.0.1:7000", KEY_A), 1);
    assert.equal(await remember(path, "[::1]:7000", KEY_B), 2);
    assert.deepEqual(await lookUp(path, "[::1]:7000"), { key: KEY_B, line: 2 });

    await Deno.writeTextFile(path, `# a comment\n\n127.0.0.1:7001 ${KEY_A.toUpperCase()}`);
    assert.deepEqual(await lookUp(path, "127.0.0.1:7001"), { key: KEY_A, line: 3 });
    assert.equal(await remember(path, "127.0.0.1:7002", KEY_B), 4); // After a missing newline.
    assert.deepEqual(await lookUp(path, "127.0.0.1:7002"), { key: KEY_B, line: 4 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lookUp() names the file and line of a malformed entry", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, `127.0.0.1:7000 ${KEY_A}\n127.0.0.1:7001 not-a-key\n`);
    await assert.rejects(
      lookUp(path, "127.0.0.1:9999"),
      (error) => error instanceof CliError && error.message.includes(`${path}:2`),
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("knownHostsPath() prefers AESM_KNOWN_HOSTS, then XDG_CONFIG_HOME, then ~/.config", () => {
  const saved = ["AESM_KNOWN_HOSTS", "XDG_CONFIG_HOME", "HOME"].map((name) =>
    [name, Deno.env.get(name)] as const
  );
  try {
    Deno.env.set("HOME", "/home/ann");
    Deno.env.delete("XDG_CONFIG_HOME");
    Deno.env.delete("AESM_KNOWN_HOSTS");
    assert.equal(knownHostsPath(), "/home/ann/.config/aesm/known_hosts");
    Deno.env.set("XDG_CONFIG_HOME", "/cfg");
    assert.equal(knownHostsPath(), "/cfg/aesm/known_hosts");
    Deno.env.set("AESM_KNOWN_HOSTS", "/etc/aesm_hosts");
    assert.equal(knownHostsPath(), "/etc/aesm_hosts");
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
});
