// Runs a job's command the way a user does (a child process, through the
// bin, from the compiled JavaScript when it is fresh), for tests of exit codes
// and output.
import { spawn } from 'node:child_process';
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

/**
 * Runs a job and interrupts it as a user or a supervisor would, at a moment the test chooses: once `when()`
 * holds (polled every 5 ms) the job is frozen (SIGSTOP) so it cannot finish in between, sent `signal`, and let
 * go (SIGCONT). Resolves with its exit code and output; rejects if `when()` never held before the job ended.
 */
export function interruptJob(
  job: string,
  args: string[],
  env: Record<string, string | undefined>,
  when: () => boolean,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<RunResult & { interrupted: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'edupulse-db.js'), job, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...env },
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let interrupted = false;
    const poll = setInterval(() => {
      if (interrupted || !when()) return;
      interrupted = true;
      clearInterval(poll);
      child.kill('SIGSTOP');
      child.kill(signal);
      child.kill('SIGCONT');
    }, 5);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearInterval(poll);
      if (!interrupted)
        reject(new Error(`${job} ended (${code ?? sig}) before the moment to interrupt it:\n${stderr}`));
      else resolve({ code: code ?? 128, stdout, stderr, interrupted });
    });
  });
}
