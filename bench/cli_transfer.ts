// Copyright 2026 the aesm authors. MIT license.
// A file transfer with the CLI between two processes on loopback: `aesm receive`
// in one, `aesm send` in the other, and the rate each reports. Not part of the
// test command (it writes the file twice: 2 GiB of temporary disk by default).
//
//   deno run -A bench/cli_transfer.ts [MiB]      (default 1024: a 1 GiB file)

import { createHash } from "node:crypto";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const MIB = 1024 * 1024;
const size = Number(Deno.args[0] ?? 1024) * MIB;

const dir = await Deno.makeTempDir({ prefix: "aesm_cli_bench_" });
try {
  await Deno.mkdir(`${dir}/in`);
  const source = `${dir}/data.bin`;
  await randomFile(source, size);
  const result = await transfer(source, `${dir}/in`);
  const [sent, received] = await Promise.all([sha256(source), sha256(`${dir}/in/data.bin`)]);
  if (sent !== received) throw new Error(`The copy differs: ${sent} != ${received}`);
  console.log(`${result.sender}\n${result.receiver}`);
  console.log(
    `wall clock from send's start to its exit: ${result.seconds.toFixed(2)} s ` +
      `(${(size / 1e6 / result.seconds).toFixed(1)} MB/s, process start and handshake included); ` +
      `SHA-256 of both copies checked again: ${sent}`,
  );
  console.log(
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${
      new Date().toISOString()
    }`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}

async function transfer(
  source: string,
  out: string,
): Promise<{ sender: string; receiver: string; seconds: number }> {
  const receiver = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "receive", "--out", out, "--once"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = receiver.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/public key [0-9a-f]{64}\n/.test(text)) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`aesm receive ended: ${text}`);
    text += value;
  }
  const [, address, key] = text.match(/ on (\S+), public key ([0-9a-f]{64})/)!;
  const started = performance.now();
  const sender = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "send", source, address, "--pin", key],
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  const senderText = new TextDecoder().decode(sender.stderr);
  if (sender.code !== 0) throw new Error(`aesm send failed: ${senderText}`);
  for (let chunk = await lines.read(); !chunk.done; chunk = await lines.read()) text += chunk.value;
  await receiver.status;
  return {
    sender: senderText.match(/^sent .*$/m)![0],
    receiver: text.match(/received .*$/m)![0],
    seconds,
  };
}

async function randomFile(path: string, bytes: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true });
  const chunk = new Uint8Array(MIB);
  for (let written = 0; written < bytes; written += chunk.length) {
    for (let i = 0; i < chunk.length; i += 65536) {
      crypto.getRandomValues(chunk.subarray(i, i + 65536));
    }
    const part = chunk.subarray(0, Math.min(chunk.length, bytes - written));
    for (let done = 0; done < part.length;) done += await file.write(part.subarray(done));
  }
}

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}
