// Copyright 2026 the aesm authors. MIT license.
/**
 * The aesm benchmark suite: aesm against Deno TLS and raw TCP on loopback,
 * one markdown table per scenario.
 *
 *   deno task bench                 # 3 rounds at full scale (several minutes)
 *   deno task bench --quick         # 1 round at reduced scale (under a minute)
 *   deno task bench --rounds=5 --only=small,rtt
 *   deno task bench --quick --cap-factor=0.05   # exercise the time caps
 *
 * Tables go to stdout, progress to stderr.
 *
 * @module
 */

import { type Impl, IMPL_LABEL, IMPLS, type TlsMaterial } from "./_impls.ts";
import { FULL, QUICK, type Scenario, scenarios, type Values } from "./_scenarios.ts";
import { formatNumber, formatRatio, median, range } from "./_stats.ts";
import { type Outcome, runTrial } from "./_trial.ts";
import { backendCalls, DEFAULT_CHOICE, suiteFor } from "../_crypto/primitives.ts";

interface Options {
  readonly quick: boolean;
  readonly rounds: number;
  readonly only: readonly string[] | undefined;
  readonly capFactor: number;
}

function parseOptions(args: readonly string[]): Options {
  let quick = false;
  let rounds: number | undefined;
  let only: string[] | undefined;
  let capFactor = 1;
  for (const arg of args) {
    if (arg === "--quick") quick = true;
    else if (arg.startsWith("--cap-factor=")) capFactor = Number(arg.slice("--cap-factor=".length));
    else if (arg.startsWith("--rounds=")) rounds = Number(arg.slice("--rounds=".length));
    else if (arg.startsWith("--only=")) only = arg.slice("--only=".length).split(",");
    else throw new TypeError(`Cannot parse arguments: unknown option ${arg}`);
  }
  rounds ??= quick ? 1 : 3;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    throw new RangeError(`Cannot parse arguments: --rounds must be 1 to 20, got ${rounds}`);
  }
  if (!(capFactor > 0 && capFactor <= 100)) {
    throw new RangeError(
      `Cannot parse arguments: --cap-factor must be in (0, 100], got ${capFactor}`,
    );
  }
  return { quick, rounds, only, capFactor };
}

async function output(command: string, args: string[]): Promise<string> {
  const { stdout } = await new Deno.Command(command, { args, stderr: "null" }).output();
  return new TextDecoder().decode(stdout).trim();
}

// A self-signed P-256 certificate for 127.0.0.1, made in a temporary directory that is removed at once.
async function makeCertificate(): Promise<TlsMaterial> {
  const dir = await Deno.makeTempDir({ prefix: "aesm-bench-" });
  try {
    const { success, stderr } = await new Deno.Command("/usr/bin/openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=aesm-bench",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) {
      throw new Error(`Cannot make a certificate: ${new TextDecoder().decode(stderr)}`);
    }
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function cpuModel(): Promise<string> {
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    return info.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

// The library's commit, read without touching the repository (no index refresh).
async function libraryVersion(): Promise<string> {
  const root = new URL("..", import.meta.url).pathname;
  try {
    const git = (args: string[]) =>
      new Deno.Command("git", { args: ["--no-optional-locks", "-C", root, ...args] }).output();
    const head = await git(["rev-parse", "--short", "HEAD"]);
    if (!head.success) return "unknown (not a git checkout)";
    const dirty = await git(["diff", "--quiet", "HEAD", "--", ".", ":(exclude)bench"]);
    const commit = new TextDecoder().decode(head.stdout).trim();
    return `commit ${commit}${dirty.code === 1 ? " with uncommitted changes" : ""}`;
  } catch {
    return "unknown (no git)";
  }
}

async function loadAverage(): Promise<string> {
  try {
    return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

// The file descriptor limit peers get once they raise it to the hard limit.
async function fdLimit(): Promise<number> {
  const text = await output("/bin/sh", ["-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; ulimit -n']);
  return text === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(text) || 0;
}

interface Machine {
  readonly cpu: string;
  readonly fdLimit: number;
  readonly load: string;
  readonly library: string;
}

function header(options: Options, machine: Machine): string {
  const { cpu, fdLimit: limit, load, library } = machine;
  const mode = options.quick ? "--quick (reduced counts)" : "full";
  return [
    "# aesm benchmarks",
    "",
    `- date: ${new Date().toISOString()}`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript})`,
    `- aesm library: ${library}`,
    `- CPU: ${cpu}, ${navigator.hardwareConcurrency} cores; ${Deno.build.target}; ` +
    `load average at start ${load}`,
    `- mode: ${mode}; ${options.rounds} round${options.rounds === 1 ? "" : "s"}; ` +
    `implementations alternate within each round, in a rotating order`,
    `- peers raise \`ulimit -n\` to ${limit === Number.MAX_SAFE_INTEGER ? "unlimited" : limit}`,
    "- topology: the sending/connecting side runs in this process; every server and receiver " +
    "runs in a subprocess (`bench/_peer.ts`), so each side has a core; fanout clients run in a " +
    "second subprocess",
    "- aesm: `ClientNetwork`/`ServerNetwork` with default options (a fresh client key pair per " +
    "connection) except `activityLimit: 16` on servers, whose activity log nobody reads here; " +
    "receivers iterate packets with `for await`",
    "- Deno TLS: `Deno.listenTls`/`Deno.connectTls`, self-signed P-256 certificate made at run " +
    "time and trusted via `caCerts`; Deno sets no TCP_NODELAY on TLS sockets and has no API for it",
    `- aesm crypto: \`${DEFAULT_CHOICE}\`${
      DEFAULT_CHOICE === "webcrypto" ? " (forced by AESM_CRYPTO=webcrypto)" : ""
    }: ${suiteFor(DEFAULT_CHOICE).description}; each table says which backend did the work`,
    "- raw TCP: `Deno.listen`/`Deno.connect` with `setNoDelay(true)`, as aesm sets it",
    "- TLS and TCP send `length (4) || message` with one awaited `conn.write()` per message (a " +
    "message over 64 KiB: the 4 bytes, then the message) and parse it from `conn.read()` into a " +
    "256 KiB buffer (4 KiB per connection in fanout); a longer message is read into one reused " +
    "buffer, while aesm hands out each message in a buffer of its own",
    "- ratios are aesm's median over the baseline's median; min–max is over rounds",
  ].join("\n");
}

type Results = Map<Impl, Outcome<Values>[]>;

function implsOf(scenario: Scenario): readonly Impl[] {
  return scenario.impls ?? IMPLS;
}

// How the ratio rows name an implementation.
const RATIO_NAME: Record<Impl, string> = {
  aesm: "aesm",
  tls: "TLS",
  tcp: "TCP",
  "aesm-ws": "aesm-ws",
  wss: "wss",
};

function rotation(impls: readonly Impl[], round: number): Impl[] {
  return impls.map((_, i) => impls[(i + round) % impls.length]);
}

// The crypto calls by backend ride along with aesm's values (they are no metric).
const CALLS = Object.keys(backendCalls);

async function measure(scenario: Scenario, options: Options): Promise<Results> {
  const impls = implsOf(scenario);
  const results: Results = new Map(impls.map((impl) => [impl, []]));
  for (let round = 0; round < options.rounds; round++) {
    for (const impl of rotation(impls, round)) {
      const started = performance.now();
      const outcome = await runTrial(scenario.capMs, async (trial) => {
        const before = { ...backendCalls };
        const values = await scenario.run(impl, trial);
        const counted = impl === "aesm" || impl === "aesm-ws";
        return counted ? { ...values, ...await trial.cryptoCalls(before) } : values;
      });
      results.get(impl)!.push(outcome);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const shown = outcome.ok
        ? Object.entries(outcome.value).filter(([key]) => !CALLS.includes(key))
          .map(([key, value]) => `${key}=${formatNumber(value)}`).join(" ")
        : outcome.failure;
      console.error(`  ${scenario.id} round ${round + 1} ${impl}: ${shown} (${seconds} s)`);
    }
  }
  return results;
}

function values(outcomes: Outcome<Values>[], key: string): number[] {
  return outcomes.flatMap((outcome) => outcome.ok ? [outcome.value[key]] : []);
}

function failures(outcomes: Outcome<Values>[]): string {
  const failed = outcomes.flatMap((outcome) => outcome.ok ? [] : [outcome.failure]);
  return [...new Set(failed)].join("; ");
}

/** The medians of each implementation, by metric key. */
type Medians = Map<Impl, Record<string, number>>;

function medians(scenario: Scenario, results: Results): Medians {
  return new Map(
    implsOf(scenario).map((impl) => [
      impl,
      Object.fromEntries(
        scenario.metrics.map((
          metric,
        ) => [metric.key, median(values(results.get(impl)!, metric.key))]),
      ),
    ]),
  );
}

function table(scenario: Scenario, results: Results, rounds: number): string {
  const head = ["implementation"];
  for (const metric of scenario.metrics) {
    head.push(`${metric.label} (median)`, `${metric.label} min–max`);
  }
  head.push("rounds");
  const rows = [head, head.map((_, i) => i === 0 ? "---" : "---:")];
  const impls = implsOf(scenario);
  for (const impl of impls) {
    const outcomes = results.get(impl)!;
    const row = [IMPL_LABEL[impl]];
    for (const metric of scenario.metrics) {
      const found = values(outcomes, metric.key);
      if (found.length === 0) {
        row.push(failures(outcomes), "");
        continue;
      }
      const [low, high] = range(found);
      row.push(formatNumber(median(found)), `${formatNumber(low)}–${formatNumber(high)}`);
    }
    const ok = outcomes.filter((outcome) => outcome.ok).length;
    const failed = failures(outcomes);
    row.push(ok === rounds ? String(ok) : `${ok}/${rounds}${failed ? ` (${failed})` : ""}`);
    rows.push(row);
  }
  const middle = medians(scenario, results);
  const [mine, ...bases] = impls;
  for (const base of bases) {
    const row = [`${RATIO_NAME[mine]}/${RATIO_NAME[base]}`];
    for (const metric of scenario.metrics) {
      row.push(formatRatio(middle.get(mine)![metric.key] / middle.get(base)![metric.key]), "");
    }
    row.push("");
    rows.push(row);
  }
  const lines = rows.map((row) => `| ${row.join(" | ")} |`);
  const title = [`### ${scenario.title}`, "", `${scenario.how}.`, ""];
  return [...title, ...lines, "", backendLine(results.get(mine) ?? [])].join("\n");
}

// Which backend did aesm's crypto in this scenario: the calls of its last good round.
function backendLine(outcomes: Outcome<Values>[]): string {
  const last = outcomes.findLast((outcome) => outcome.ok);
  if (last === undefined || !last.ok) return "aesm crypto: not measured.";
  const calls = CALLS.map((name) => `${name} ${(last.value[name] ?? 0).toLocaleString("en-US")}`);
  return `aesm crypto \`${DEFAULT_CHOICE}\`: calls in the last round, both processes: ` +
    `${calls.join(", ")}.`;
}

interface Target {
  readonly name: string;
  readonly scenario: string;
  readonly metric: string;
  /** The baseline: an implementation of the same scenario, or the cipher ceiling's rate. */
  readonly base: "tls" | "tcp" | "ceiling";
  /** Undefined for a ratio that is reported, not judged. */
  readonly goal?: number;
  readonly stretch?: number;
  readonly better: "higher" | "lower";
}

// Issue 10's targets; the rows without a goal are reported as measured.
function targets(fanoutId: string, fanoutLabel: string): Target[] {
  const higher = "higher" as const;
  const lower = "lower" as const;
  return [
    { name: "small msgs/s", scenario: "small", metric: "rate", base: "tls", goal: 2, stretch: 4 },
    { name: "bulk MB/s", scenario: "bulk", metric: "rate", base: "ceiling", goal: 0.9 },
    { name: "bulk MB/s", scenario: "bulk", metric: "rate", base: "tls" },
    { name: "rtt p50", scenario: "rtt", metric: "p50", base: "tls", goal: 1.2 },
    { name: "rtt p99", scenario: "rtt", metric: "p99", base: "tls", goal: 2 },
    {
      name: "handshakes/s alone, 16 connectors",
      scenario: "handshakes-16-bare",
      metric: "rate",
      base: "tls",
      goal: 1,
      stretch: 2,
    },
    {
      name: "handshakes/s + message, 1 connector",
      scenario: "handshakes-1",
      metric: "rate",
      base: "tls",
      goal: 1,
      stretch: 2,
    },
    {
      name: "handshakes/s + message, 16 connectors",
      scenario: "handshakes-16",
      metric: "rate",
      base: "tls",
      goal: 1,
      stretch: 2,
    },
    {
      name: `fanout ${fanoutLabel} time`,
      scenario: fanoutId,
      metric: "time",
      base: "tcp",
      goal: 2,
      stretch: 1.5,
    },
    {
      name: `server memory/conn (${fanoutLabel})`,
      scenario: fanoutId,
      metric: "memory",
      base: "tcp",
      goal: 2,
      stretch: 1.3,
    },
    {
      name: `server live memory/conn (${fanoutLabel}, heap used + external)`,
      scenario: fanoutId,
      metric: "live",
      base: "tcp",
      goal: 2,
      stretch: 1.3,
    },
  ].map((target) => ({
    ...target,
    base: target.base as Target["base"],
    better: target.metric === "rate" ? higher : lower,
  }));
}

function baseline(target: Target, all: Map<string, Medians>): number {
  if (target.base === "ceiling") return all.get("ceiling")?.get("aesm")?.rate ?? NaN;
  return all.get(target.scenario)?.get(target.base)?.[target.metric] ?? NaN;
}

const BASE_LABEL = { tls: "TLS", tcp: "TCP", ceiling: "the cipher ceiling" } as const;

function verdicts(list: Target[], all: Map<string, Medians>): string {
  const rows = [
    ["target", "aesm/baseline", "goal", "stretch", "verdict"],
    ["---", "---:", "---:", "---:", "---"],
  ];
  for (const target of list) {
    const mine = all.get(target.scenario)?.get("aesm")?.[target.metric] ?? NaN;
    const ratio = mine / baseline(target, all);
    const sign = target.better === "higher" ? "≥" : "≤";
    const meets = (limit: number) => target.better === "higher" ? ratio >= limit : ratio <= limit;
    const verdict = !Number.isFinite(ratio)
      ? "not measured"
      : target.goal === undefined
      ? "reported"
      : target.stretch !== undefined && meets(target.stretch)
      ? "met (stretch too)"
      : meets(target.goal)
      ? "met"
      : "**missed**";
    const limit = (value: number | undefined) => value === undefined ? "–" : `${sign} ${value}×`;
    rows.push([
      `${target.name} vs ${BASE_LABEL[target.base]}`,
      formatRatio(ratio),
      limit(target.goal),
      limit(target.stretch),
      verdict,
    ]);
  }
  return ["### targets", "", ...rows.map((row) => `| ${row.join(" | ")} |`)].join("\n");
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const base = options.quick ? QUICK : FULL;
  const scale = { ...base, capFactor: base.capFactor * options.capFactor };
  const [cpu, limit, tls, load, library] = await Promise.all([
    cpuModel(),
    fdLimit(),
    makeCertificate(),
    loadAverage(),
    libraryVersion(),
  ]);
  console.log(header(options, { cpu, fdLimit: limit, load, library }));
  const all = new Map<string, Medians>();
  const list = scenarios(scale, tls, limit).filter((scenario) =>
    options.only === undefined || options.only.some((id) => scenario.id.startsWith(id))
  );
  for (const scenario of list) {
    console.log("");
    if (scenario.skip !== undefined) {
      console.log(`### ${scenario.title}\n\nskipped: ${scenario.skip}.`);
      continue;
    }
    console.error(
      `${scenario.id}: ${options.rounds} round(s), cap ${scenario.capMs / 1000} s each`,
    );
    const results = await measure(scenario, options);
    all.set(scenario.id, medians(scenario, results));
    console.log(table(scenario, results, options.rounds));
  }
  const largest = Math.max(...scale.fanout);
  console.log("");
  console.log(
    verdicts(targets(`fanout-${largest}`, `${largest.toLocaleString("en-US")} clients`), all),
  );
  console.log(`\nload average at end: ${await loadAverage()}`);
}

if (import.meta.main) await main();
