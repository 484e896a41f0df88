// The thin command layer every job shares: flags parsed strictly (unknown
// ones, extra positionals and contradictions are bad input), --help, one
// wrapper that catches, prints once and sets the exit code.
//
// node:util parseArgs rather than minimist: positionals and values stay the
// strings typed (minimist turned the WAL name 000000010000000100000009 into a
// rounded number), a value that starts with a dash is refused rather than
// read as another flag, and it loads nothing, so `--help` answers fast.
import { parseArgs } from 'node:util';
import { check } from '../../infra/settings.ts';
import { badInput, describeError, exitCodeFor, ExitCode } from './errors.ts';
import { interruptedBy, interruptedJobName, onInterrupt } from './interrupt.ts';
import { acquireJobLocks, JOB_LOCKS } from './locks.ts';
import { stderrLogger, warningsLogger, type Logger } from './logger.ts';

export interface CommandSpec {
  name: string;
  /** The --help text; the README's usage section matches it. */
  usage: string;
  boolean?: string[];
  string?: string[];
  /** Booleans that default to true; `--no-<flag>` turns one off. */
  defaults?: Record<string, boolean>;
  /** How many positional arguments the job takes (default none). */
  positionals?: { min?: number; max: number; name?: string };
  /** Flags that contradict each other: giving both is bad input. */
  conflicts?: Array<[string, string]>;
  /**
   * The exit code for every error, in place of 1/2/3: a restore_command must
   * exit 126+ on anything but "not there", or PostgreSQL takes the failure for
   * the end of the archive and promotes early.
   */
  errorExitCode?: number;
}

/** Parsed flags by name, and the positionals in `_`; every value is the string typed. */
export type Args = { _: string[]; [flag: string]: any };

export interface CommandIO {
  args: Args;
  json: boolean;
  logger: Logger;
  out(text: string): void;
}

/**
 * What a job returns: its result (printed as JSON with --json), how it reads
 * as text for people, and the exit code it means. The layer renders it.
 */
export interface Outcome<T = unknown> {
  result: T;
  text: (result: T) => string;
  exitCode: number;
}

export function outcome<T>(result: T, text: (result: T) => string, exitCode: number = ExitCode.ok): Outcome<T> {
  return { result, text, exitCode };
}

const isOutcome = (v: unknown): v is Outcome => typeof v === 'object' && v !== null && 'result' in v && 'text' in v;

/** Flags and positionals from argv, validated against the spec; throws bad input. */
export function parseCommandArgs(spec: CommandSpec, argv: string[]): Args {
  const booleans = ['json', 'verbose', ...(spec.boolean ?? [])];
  const strings = spec.string ?? [];
  const options: Record<string, { type: 'boolean' | 'string'; multiple?: boolean; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const b of booleans) options[b] = { type: 'boolean' };
  for (const b of Object.keys(spec.defaults ?? {})) options[`no-${b}`] = { type: 'boolean' };
  for (const s of strings) options[s] = { type: 'string', multiple: true };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message = (err as Error).message;
    const option = /'(-[^' ]+)/.exec(message)?.[1];
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
      throw badInput(`unknown option ${option ?? message}`, `see ${spec.name} --help`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const value =
        /argument is ambiguous/.test(message) || /argument missing/.test(message)
          ? `${option ?? 'an option'} needs a value`
          : message;
      throw badInput(
        value,
        `give it as ${option ?? '--flag'} VALUE, or ${option ?? '--flag'}=VALUE when the value starts with a dash`,
      );
    }
    throw badInput(message, `see ${spec.name} --help`);
  }
  const args: Args = { _: parsed.positionals };
  for (const [k, v] of Object.entries(parsed.values)) {
    if (Array.isArray(v)) {
      if (v.length > 1) throw badInput(`--${k} given more than once`, 'give it once');
      args[k] = v[0];
    } else args[k] = v;
  }
  for (const b of booleans) args[b] = Boolean(args[b]);
  for (const [b, def] of Object.entries(spec.defaults ?? {})) {
    if (args[`no-${b}`] && parsed.values[b]) throw badInput(`--${b} and --no-${b} contradict each other`, 'give one');
    args[b] = args[`no-${b}`] ? false : parsed.values[b] === undefined ? def : Boolean(parsed.values[b]);
    delete args[`no-${b}`];
  }
  const { min = 0, max, name = 'argument' } = spec.positionals ?? { max: 0 };
  if (args._.length > max) {
    const extra = args._.slice(max)
      .map((a) => `"${a}"`)
      .join(' ');
    throw badInput(
      max === 0
        ? `takes no arguments, but was given ${extra}`
        : `takes at most ${max} ${name}${max > 1 ? 's' : ''}; extra: ${extra}`,
      `see ${spec.name} --help (a shell pattern such as prediction:* must be quoted or it is not a flag)`,
    );
  }
  if (args._.length < min)
    throw badInput(
      `needs ${min === max ? min : `at least ${min}`} ${name}${min > 1 ? 's' : ''}`,
      `see ${spec.name} --help`,
    );
  for (const [a, b] of spec.conflicts ?? []) {
    const given = (f: string) => args[f] !== undefined && args[f] !== false;
    if (given(a) && given(b)) throw badInput(`--${a} and --${b} contradict each other`, 'give one of them');
  }
  return args;
}

/** A PostgreSQL timeout flag (--lock-timeout 5s): bad input unless it has its unit and is on (see check.timeout). */
export function timeoutFlag(args: Args, flag: string): void {
  const raw = args[flag];
  if (raw === undefined) return;
  try {
    check.timeout(String(raw));
  } catch (err) {
    throw badInput(`--${flag} ${(err as Error).message}`, 'for example 5s, 500ms, 2min or 1h');
  }
}

export async function command(
  spec: CommandSpec,
  handler: (io: CommandIO) => Promise<Outcome<any> | number | void>,
  argv: string[] = process.argv.slice(2),
): Promise<void> {
  let code: number;
  try {
    // --help wins over anything else on the line, even a flag this job does not know.
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(spec.usage.trimEnd() + '\n');
      return;
    }
    const args = parseCommandArgs(spec, argv);
    const json = Boolean(args.json);
    const logger = json ? warningsLogger : stderrLogger({ verbose: Boolean(args.verbose) });
    // The locks ./locks.ts declares for this job, held while it runs; the holder is named by its command line.
    // Interrupted, the job undoes what it started and exits 128 + the signal (./interrupt.ts); its locks go last.
    interruptedJobName(spec.name);
    const locks = acquireJobLocks(
      spec.name,
      [spec.name, ...argv.filter((a) => a !== '--json')].join(' ').slice(0, 200),
    );
    let released = false;
    const release = () => {
      if (!released) locks();
      released = true;
    };
    if (JOB_LOCKS[spec.name]?.file?.length) onInterrupt(release);
    const out = (t: string) => process.stdout.write(t.endsWith('\n') ? t : t + '\n');
    try {
      const done = await handler({ args, json, logger, out });
      if (isOutcome(done)) {
        out(json ? JSON.stringify(done.result, null, 2) : done.text(done.result));
        code = done.exitCode;
      } else code = done ?? ExitCode.ok;
    } finally {
      release();
    }
  } catch (err) {
    // An interrupted job's children were killed on purpose: its handler says so and exits; no second story.
    if (interruptedBy()) return;
    process.stderr.write(`${spec.name}: ${describeError(err)}\n`);
    code = spec.errorExitCode ?? exitCodeFor(err);
  }
  process.exitCode = code;
}
