// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { parseArgs, parseTarget, UsageError } from "../_cli/args.ts";

Deno.test("parseArgs() reads flags with separate or inline values, lists, -h and --", () => {
  const parsed = parseArgs("listen", [
    "7000",
    "--app",
    "chat",
    "--allow=aa",
    "--allow",
    "bb",
    "--echo",
    "-h",
    "--",
    "--not-a-flag",
  ], { app: "string", allow: "list", echo: "boolean" });
  assert.deepEqual(parsed.positionals, ["7000", "--not-a-flag"]);
  assert.equal(parsed.strings.get("app"), "chat");
  assert.deepEqual(parsed.lists.get("allow"), ["aa", "bb"]);
  assert.deepEqual([...parsed.booleans].sort(), ["echo", "help"]);
});

Deno.test("parseArgs() refuses unknown flags, missing values and values on switches", () => {
  const spec = { app: "string", echo: "boolean" } as const;
  for (const args of [["--bogus"], ["-x"], ["--app"], ["--echo=yes"]]) {
    assert.throws(() => parseArgs("listen", args, spec), UsageError, args.join(" "));
  }
});

Deno.test("parseTarget() reads HOST:PORT, [IPV6]:PORT and, with a default host, a bare PORT", () => {
  assert.deepEqual(parseTarget("127.0.0.1:7000", "address"), { hostname: "127.0.0.1", port: 7000 });
  assert.deepEqual(parseTarget("[::1]:7000", "address"), { hostname: "::1", port: 7000 });
  assert.deepEqual(parseTarget("example.org:1", "address"), { hostname: "example.org", port: 1 });
  assert.deepEqual(parseTarget("0", "address", "127.0.0.1"), { hostname: "127.0.0.1", port: 0 });
  for (const text of ["7000", ":7000", "host", "host:70000", "::1:7000", "host:-1", "host:7e3"]) {
    assert.throws(() => parseTarget(text, "address"), UsageError, text);
  }
});
