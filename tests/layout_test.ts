// Copyright 2026 the aesm authors. MIT license.
// The layout the README describes: private stages in folders, each importing
// only the stages below it, and no import cycle, type imports included.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** The private stages from the ground up, as the README's Layout lists them. */
const STAGES = [
  "_crypto",
  "_bounds",
  "_noise",
  "_queue",
  "_transport",
  "_wire",
  "_connection",
  "_client",
  "cluster",
];
/**
 * Root files a stage may import, each built on the Noise core alone or on
 * nothing: the error classes, key files (the `keyFile` option), and the
 * cluster seam's interfaces.
 */
const ROOT_FILES_FOR_STAGES = new Set(["errors.ts", "key_file.ts", "cluster.ts"]);

interface InfoModule {
  readonly specifier: string;
  readonly dependencies?: readonly {
    readonly code?: { readonly specifier?: string };
    readonly type?: { readonly specifier?: string };
  }[];
}

/** Every module of the package reachable from its exports, with the package modules each imports. */
async function importGraph(): Promise<Map<string, Set<string>>> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const entries = Object.values(config.exports as Record<string, string>);
  const modules: InfoModule[] = [];
  for (const entry of entries) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", new URL(entry, ROOT).href],
      cwd: ROOT,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.ok(output.success, `deno info ${entry} failed`);
    modules.push(...JSON.parse(new TextDecoder().decode(output.stdout)).modules);
  }
  const local = (specifier: string | undefined) =>
    specifier?.startsWith(ROOT.href) ? specifier.slice(ROOT.href.length) : undefined;
  const graph = new Map<string, Set<string>>();
  for (const module of modules) {
    const from = local(module.specifier);
    if (from === undefined) continue;
    const to = new Set<string>();
    for (const dependency of module.dependencies ?? []) {
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        const path = local(target);
        if (path !== undefined) to.add(path);
      }
    }
    graph.set(from, to);
  }
  return graph;
}

/** A cycle of the graph as a path that ends where it starts, or `undefined`. */
function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    const at = path.indexOf(node);
    if (at >= 0) return [...path.slice(at), node];
    if (done.has(node)) return undefined;
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    done.add(node);
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

/** The stage a module belongs to, its rank among STAGES, or `undefined` for a root file or the CLI. */
function stageOf(path: string): number | undefined {
  const folder = path.split("/")[0];
  if (folder === path) return undefined; // A root file.
  if (folder === "cluster" && !path.startsWith("cluster/_")) return undefined; // cluster/nats.ts
  const rank = STAGES.indexOf(folder);
  return rank < 0 ? undefined : rank;
}

const graph = await importGraph();

Deno.test("the graph covers every module: private stages, the CLI's parts and the entry points", () => {
  for (const path of ["mod.ts", "_crypto/primitives.ts", "_wire/record.ts", "_cli/send.ts"]) {
    assert.ok(graph.has(path), `${path} is missing from the graph`);
  }
  const all = [...graph.keys()];
  assert.deepEqual(all.filter((path) => /^_[a-z_]+\.ts$/.test(path)), [], "private files at root");
});

Deno.test("no module imports itself in a circle, type imports included", () => {
  const cycle = findCycle(graph);
  assert.equal(cycle, undefined, `import cycle: ${cycle?.join(" -> ")}`);
});

Deno.test("findCycle() finds a circle made of type imports alone", () => {
  const cyclic = new Map([["a.ts", new Set(["b.ts"])], ["b.ts", new Set(["a.ts"])]]);
  assert.deepEqual(findCycle(cyclic), ["a.ts", "b.ts", "a.ts"]);
  assert.equal(findCycle(new Map([["a.ts", new Set(["b.ts"])]])), undefined);
});

Deno.test("a private stage imports only the stages below it and three root files built on them", () => {
  const wrong: string[] = [];
  for (const [from, imports] of graph) {
    const rank = stageOf(from);
    if (rank === undefined) continue;
    for (const to of imports) {
      const target = stageOf(to);
      const allowed = target === undefined ? ROOT_FILES_FOR_STAGES.has(to) : target <= rank;
      if (!allowed) wrong.push(`${from} -> ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});
