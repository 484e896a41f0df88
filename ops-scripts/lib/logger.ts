// One logger with typed events. Jobs emit events; the command layer decides
// where they go (stderr for people, a log file, nowhere in tests).
export type LogEvent =
  | { event: 'step'; step: string; status: StepStatus; detail?: string }
  | { event: 'command.run'; command: string }
  | { event: 'cluster.init'; dataDir: string }
  | { event: 'cluster.start'; dataDir: string; port: number }
  | { event: 'cluster.stop'; dataDir: string; mode: string }
  | { event: 'cluster.recovered'; dataDir: string; reason: string }
  | { event: 'redis.start'; port: number }
  | { event: 'redis.stop'; port: number }
  | { event: 'install'; packages: string[] }
  | { event: 'warn'; message: string };

export type StepStatus = 'done' | 'skipped' | 'failed';

export interface Logger {
  log(entry: LogEvent): void;
}

export const silentLogger: Logger = { log() {} };

function formatEntry(entry: LogEvent): string {
  switch (entry.event) {
    case 'step':
      return `${entry.status.padEnd(7)} ${entry.step}${entry.detail ? `: ${entry.detail}` : ''}`;
    case 'command.run':
      return `$ ${entry.command}`;
    case 'warn':
      return `warning: ${entry.message}`;
    default: {
      const { event, ...rest } = entry;
      return `${event} ${Object.entries(rest)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ')}`;
    }
  }
}

/** Writes each event as one line; `verbose` adds the low-level events (commands run). */
export function streamLogger(write: (line: string) => void, opts: { verbose?: boolean } = {}): Logger {
  return {
    log(entry) {
      if (!opts.verbose && entry.event !== 'step' && entry.event !== 'warn' && entry.event !== 'install') return;
      write(formatEntry(entry));
    },
  };
}

export const stderrLogger = (opts: { verbose?: boolean } = {}): Logger =>
  streamLogger((line) => process.stderr.write(line + '\n'), opts);

/** Warnings only, to stderr: with --json, stdout holds the report alone and a warning still reaches the log. */
export const warningsLogger: Logger = {
  log(entry) {
    if (entry.event === 'warn') process.stderr.write(formatEntry(entry) + '\n');
  },
};
