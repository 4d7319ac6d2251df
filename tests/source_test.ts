// Copyright 2026 the aesm authors. MIT license.
import assert from "node:assert/strict";
import { sourceOf } from "../_bounds/source.ts";

Deno.test("sourceOf() keeps an IPv4 address and unwraps an IPv4-mapped IPv6 one", () => {
  assert.equal(sourceOf("127.0.0.2"), "127.0.0.2");
  assert.equal(sourceOf("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(sourceOf("::FFFF:10.0.0.1"), "10.0.0.1");
});

Deno.test("sourceOf() counts IPv6 addresses by their /64 prefix, however they are written", () => {
  const prefix = "2001:db8:0:1::/64";
  assert.equal(sourceOf("2001:db8:0:1:aaaa::5"), prefix);
  assert.equal(sourceOf("2001:DB8:0000:0001:ffff:1:2:3"), prefix);
  assert.equal(sourceOf("2001:db8:0:1::"), prefix);
  assert.notEqual(sourceOf("2001:db8:0:2::1"), prefix);
  assert.equal(sourceOf("::1"), "0:0:0:0::/64");
  assert.equal(sourceOf("fe80::1%eth0"), "fe80:0:0:0::/64");
});
