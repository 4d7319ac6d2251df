// Copyright 2026 the aesm authors. MIT license.
/**
 * What a server's per-address bounds count a client against. Private.
 *
 * @module
 */

/**
 * The source the per-address bounds count against: the IPv4 address (an
 * IPv4-mapped IPv6 one unwrapped), or the /64 prefix of an IPv6 address,
 * since one host commonly has a whole /64 to pick addresses from.
 */
export function sourceOf(hostname: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(hostname);
  if (mapped !== null) return mapped[1];
  if (!hostname.includes(":")) return hostname;
  const [head, tail = ""] = hostname.toLowerCase().split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = [
    ...left,
    ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"),
    ...right,
  ];
  return `${groups.slice(0, 4).map((group) => group.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
