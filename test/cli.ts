// Runs a job's command the way a user does (a child process, through the
// bin, from the compiled JavaScript when it is fresh), for tests of exit codes
// and output.
import { join } from 'node:path';
import { run, type RunResult } from '../ops-scripts/lib/run.ts';
import { PROJECT_ROOT } from '../ops-scripts/lib/state.ts';

export function runJob(job: string, args: string[], env: Record<string, string | undefined> = {}): Promise<RunResult> {
  return run(process.execPath, [join(PROJECT_ROOT, 'bin', 'edupulse-db.js'), job, ...args], {
    env: { NO_COLOR: '1', ...env },
    nothrow: true,
    cwd: PROJECT_ROOT,
  });
}

const shellQuote = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;

/**
 * The same, on a terminal: util-linux `script` gives the job a pseudo-terminal
 * (stdout and stderr both go to it, so both arrive in stdout).
 */
export function runJobOnTerminal(
  job: string,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<RunResult> {
  const line = [process.execPath, join(PROJECT_ROOT, 'bin', 'edupulse-db.js'), job, ...args].map(shellQuote).join(' ');
  return run('script', ['-q', '-e', '-c', line, '/dev/null'], {
    env: { NO_COLOR: '1', ...env },
    nothrow: true,
    cwd: PROJECT_ROOT,
  });
}
