// Progress on a terminal (done and total, rate, ETA); silent without one, and
// the command layer never creates it for --json.
export interface Progress {
  tick(n: number): void;
  /** Sets the amount done (for tools that report totals so far). */
  set(done: number): void;
  done(): void;
}

const SILENT: Progress = { tick() {}, set() {}, done() {} };

export function progressBar(
  total: number,
  unit: string,
  stream: Pick<NodeJS.WriteStream, 'write' | 'isTTY'> = process.stderr,
  label = '',
): Progress {
  if (!stream.isTTY) return SILENT;
  const started = performance.now();
  let doneCount = 0,
    last = 0;
  const draw = () => {
    const secs = (performance.now() - started) / 1000;
    const rate = doneCount / Math.max(secs, 1e-3);
    const frac = Math.min(1, doneCount / Math.max(total, 1));
    const width = 30,
      filled = Math.round(frac * width);
    const eta = rate > 0 ? Math.max(0, (total - doneCount) / rate) : 0;
    stream.write(
      `\r${label ? `${label} ` : ''}[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ` +
        `${doneCount.toLocaleString()} ${unit}  ${Math.round(rate).toLocaleString()} ${unit}/s  ETA ${eta.toFixed(0)}s  `,
    );
  };
  return {
    tick(n) {
      doneCount += n;
      const now = performance.now();
      if (now - last > 100) {
        last = now;
        draw();
      }
    },
    set(n) {
      this.tick(n - doneCount);
    },
    done() {
      draw();
      stream.write('\n');
    },
  };
}

/** One step of a job with phases (a restore: extract, then replay), reported as it goes. */
export interface PhaseProgress {
  phase: string;
  done: number;
  total: number;
  unit: string;
}

/**
 * A bar per phase: a new phase ends the previous bar and starts its own.
 * Returns the callback to hand to the job and `end` to close the last bar.
 */
export function phasedProgress(stream: Pick<NodeJS.WriteStream, 'write' | 'isTTY'> = process.stderr): {
  report(p: PhaseProgress): void;
  end(): void;
} {
  let current: { phase: string; bar: Progress } | undefined;
  return {
    report(p) {
      if (!stream.isTTY) return;
      if (current?.phase !== p.phase) {
        current?.bar.done();
        current = { phase: p.phase, bar: progressBar(p.total, p.unit, stream, p.phase.padEnd(8)) };
      }
      current.bar.set(Math.min(p.done, p.total));
    },
    end() {
      current?.bar.done();
      current = undefined;
    },
  };
}
