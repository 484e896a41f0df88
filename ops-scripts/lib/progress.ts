// A progress bar on a terminal (done and total, rate, ETA); silent without one.
export interface Progress {
  tick(n: number): void;
  /** Sets the amount done (for tools that report totals so far). */
  set(done: number): void;
  done(): void;
}

export function progressBar(total: number, unit: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { tick() {}, set() {}, done() {} };
  const started = performance.now();
  let doneCount = 0, last = 0;
  const draw = () => {
    const secs = (performance.now() - started) / 1000;
    const rate = doneCount / Math.max(secs, 1e-3);
    const frac = Math.min(1, doneCount / Math.max(total, 1));
    const width = 30, filled = Math.round(frac * width);
    const eta = rate > 0 ? Math.max(0, (total - doneCount) / rate) : 0;
    stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ` +
      `${doneCount.toLocaleString()} ${unit}  ${Math.round(rate).toLocaleString()} ${unit}/s  ETA ${eta.toFixed(0)}s  `);
  };
  return {
    tick(n) {
      doneCount += n;
      const now = performance.now();
      if (now - last > 100) { last = now; draw(); }
    },
    set(n) { this.tick(n - doneCount); },
    done() { draw(); stream.write('\n'); },
  };
}
