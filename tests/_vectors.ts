// Copyright 2026 the aesm authors. MIT license.
// Loads the public Noise test vectors kept beside the repository in ../shared/vectors/.

import { fromHex } from "../_crypto/bytes.ts";

export const VECTORS_DIR = new URL("../../shared/vectors/", import.meta.url);

export interface Vector {
  protocol_name: string;
  init_prologue: string;
  resp_prologue: string;
  init_static?: string;
  resp_static?: string;
  init_ephemeral?: string;
  resp_ephemeral?: string;
  init_remote_static?: string;
  resp_remote_static?: string;
  init_psks?: string[];
  resp_psks?: string[];
  handshake_hash?: string;
  messages: { payload: string; ciphertext: string }[];
}

export interface VectorFile {
  name: string;
  vectors: Vector[];
}

export async function loadVectorFiles(): Promise<VectorFile[]> {
  const files: VectorFile[] = [];
  for await (const entry of Deno.readDir(VECTORS_DIR)) {
    if (!entry.name.endsWith(".json")) continue;
    const text = await Deno.readTextFile(new URL(entry.name, VECTORS_DIR));
    files.push({ name: entry.name, vectors: JSON.parse(text).vectors });
  }
  return files.sort((a, b) => a.name.localeCompare(b.name));
}

export function hexOrUndefined(hex: string | undefined): Uint8Array | undefined {
  return hex === undefined ? undefined : fromHex(hex);
}
