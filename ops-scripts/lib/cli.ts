// The thin command layer every job shares: flags (unknown ones are bad
// input), --help, one wrapper that catches, prints once and sets the exit code.
import { minimist } from 'zx';
import { badInput, describeError, exitCodeFor, ExitCode } from './errors.ts';
import { silentLogger, stderrLogger, type Logger } from './logger.ts';

export interface CommandSpec {
  name: string;
  /** The --help text; the README's usage section matches it. */
  usage: string;
  boolean?: string[];
  string?: string[];
  defaults?: Record<string, unknown>;
  /**
   * The exit code for every error, in place of 1/2/3: a restore_command must
   * exit 126+ on anything but "not there", or PostgreSQL takes the failure for
   * the end of the archive and promotes early.
   */
  errorExitCode?: number;
}

export interface CommandIO {
  /** Positionals (`args._`) are always strings. */
  args: minimist.ParsedArgs & { _: string[] };
  json: boolean;
  logger: Logger;
  out(text: string): void;
}

export async function command(spec: CommandSpec, handler: (io: CommandIO) => Promise<number | void>,
  argv: string[] = process.argv.slice(2)): Promise<void> {
  const booleans = ['help', 'json', 'verbose', ...(spec.boolean ?? [])];
  const strings = spec.string ?? [];
  let code: number;
  try {
    const unknown: string[] = [];
    // Positionals stay strings: minimist would turn a WAL name such as
    // 000000010000000100000009 (or a numeric backup id) into a rounded number.
    const args = minimist(argv, {
      boolean: booleans, string: ['_', ...strings], alias: { h: 'help' }, default: spec.defaults ?? {},
      unknown: (a) => { if (a.startsWith('-')) unknown.push(a); return !a.startsWith('-'); },
    });
    if (args.help) {
      process.stdout.write(spec.usage.trimEnd() + '\n');
      return;
    }
    if (unknown.length) throw badInput(`${spec.name}: unknown option ${unknown.join(', ')}`, `see ${spec.name} --help`);
    const repeated = strings.filter((f) => Array.isArray(args[f]));
    if (repeated.length) throw badInput(`${spec.name}: --${repeated[0]} given more than once`, 'give it once');
    const json = Boolean(args.json);
    const logger = json ? silentLogger : stderrLogger({ verbose: Boolean(args.verbose) });
    code = (await handler({ args: args as CommandIO['args'], json, logger, out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n') })) ?? ExitCode.ok;
  } catch (err) {
    process.stderr.write(`${spec.name}: ${describeError(err)}\n`);
    code = spec.errorExitCode ?? exitCodeFor(err);
  }
  process.exitCode = code;
}
