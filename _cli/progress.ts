// Copyright 2026 the aesm authors. MIT license.
/**
 * A transfer's progress: a bar on stderr when it is a terminal, and the
 * summary line with the rate either way. Private to the CLI.
 *
 * @module
 */

const BAR_WIDTH = 24;
const REDRAW_MS = 100;
const encoder = new TextEncoder();

/** Sizes as people read them: `512 B`, `48.0 MiB`, `1.00 GiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** One transfer's progress, from the offset it started (or resumed) at. */
export class Progress {
  #label: string;
  #total: number;
  #from = 0;
  #done = 0;
  #started = performance.now();
  #drawn = -Infinity;
  #terminal = Deno.stderr.isTerminal();

  /**
   * Tracks a transfer of `total` bytes.
   *
   * @param label What moves, such as the file's name.
   * @param total Its size in bytes.
   */
  constructor(label: string, total: number) {
    this.#label = label;
    this.#total = total;
  }

  /** Starts the clock, with `offset` bytes already there (a resumed transfer). */
  start(offset: number): void {
    this.#from = this.#done = offset;
    this.#started = performance.now();
  }

  /** Counts `bytes` more; redraws the bar at most every 100 ms. */
  add(bytes: number): void {
    this.#done += bytes;
    const now = performance.now();
    if (!this.#terminal || now - this.#drawn < REDRAW_MS) return;
    this.#drawn = now;
    const share = this.#total === 0 ? 1 : this.#done / this.#total;
    const filled = Math.round(share * BAR_WIDTH);
    write(
      `\r${this.#label} ${(share * 100).toFixed(0).padStart(3)}% ` +
        `[${"#".repeat(filled)}${" ".repeat(BAR_WIDTH - filled)}] ` +
        `${formatSize(this.#done)} / ${formatSize(this.#total)}  ${this.rate()} \x1b[K`,
    );
  }

  /** Clears the bar, if one was drawn. */
  clear(): void {
    if (this.#terminal && this.#drawn !== -Infinity) write("\r\x1b[K");
    this.#drawn = -Infinity;
  }

  /** The size of the whole transfer. */
  get total(): number {
    return this.#total;
  }

  /** Where `start()` started. */
  get offset(): number {
    return this.#from;
  }

  /** The bytes moved since `start()`. */
  get moved(): number {
    return this.#done - this.#from;
  }

  /** Seconds since `start()`. */
  get seconds(): number {
    return (performance.now() - this.#started) / 1000;
  }

  /** The rate since `start()`, in MB/s (10^6 bytes a second). */
  rate(): string {
    return `${(this.moved / 1e6 / Math.max(this.seconds, 1e-3)).toFixed(1)} MB/s`;
  }

  /** The summary: size moved, time, rate, and where it resumed if it did. */
  summary(): string {
    const resumed = this.#from > 0 ? `, resumed at ${formatSize(this.#from)}` : "";
    return `${formatSize(this.moved)} in ${this.seconds.toFixed(2)} s, ${this.rate()}${resumed}`;
  }
}

function write(text: string): void {
  const bytes = encoder.encode(text);
  for (let done = 0; done < bytes.length;) done += Deno.stderr.writeSync(bytes.subarray(done));
}
