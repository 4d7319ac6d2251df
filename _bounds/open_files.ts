// Copyright 2026 the aesm authors. MIT license.
/**
 * The process's open-file limit, read without dependencies. Private.
 *
 * @module
 */

const LIMITS_FILE = "/proc/self/limits";

/**
 * The soft limit on open file descriptors (RLIMIT_NOFILE), from
 * `/proc/self/limits` on Linux. `undefined` where it cannot be read without
 * asking: another OS, no read permission for that file, or no limit.
 */
export function openFileLimit(): number | undefined {
  if (typeof Deno === "undefined" || Deno.build.os !== "linux") return undefined;
  try {
    // Query first: reading without the permission would prompt a user.
    const { state } = Deno.permissions.querySync({ name: "read", path: LIMITS_FILE });
    if (state !== "granted") return undefined;
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(Deno.readTextFileSync(LIMITS_FILE));
    return line === null || line[1] === "unlimited" ? undefined : Number(line[1]);
  } catch {
    return undefined;
  }
}
