// Running external programs: no shell, arguments as an array, optionally as
// the cluster's OS user. A failure names the command, its exit code and the
// tail of its stderr. Secrets go through the environment or files, never argv.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { failed } from './errors.ts';
import { trackChild } from './interrupt.ts';
import type { Logger } from './logger.ts';

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface RunOptions {
  as?: OsUser;
  env?: Record<string, string | undefined>;
  cwd?: string;
  input?: string;
  /** Do not throw on a non-zero exit; the caller reads `code`. */
  nothrow?: boolean;
  /** Detach stdio entirely (for daemons that fork). */
  ignoreOutput?: boolean;
  timeoutMs?: number;
  logger?: Logger;
  /** Called with stderr as it arrives (progress output). */
  onStderr?: (chunk: string) => void;
  /**
   * The program and everything it forks die with this process, so a job
   * killed mid-way (even by SIGKILL) leaves no orphan still writing into its
   * output or holding a replication connection. See GROUP_WRAPPER.
   */
  dieWithParent?: boolean;
  /**
   * A child that is itself a job (the scheduler's): when this job is interrupted it is sent SIGTERM and
   * waited for, so it undoes its own work (./interrupt.ts), instead of being killed or left running.
   */
  forwardInterrupt?: boolean;
}

const SETPRIV = '/usr/bin/setpriv';

/**
 * How a child and its whole process tree die with the job. The parent-death
 * signal (setpriv --pdeathsig) reaches only the direct child, and is cleared
 * in anything it forks: pg_basebackup's forked WAL streamer outlived a killed
 * backup, its replication slot and walsenders with it. So the child is a
 * small shell in a process group of its own (spawned detached), told by
 * SIGTERM when the job dies, which then kills its whole group; the program
 * runs inside it and its forks stay in the group.
 */
const GROUP_WRAPPER = 'trap "kill -KILL 0" TERM; "$@" & wait $!';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const TAIL_LINES = 15;

export function tail(text: string, lines = TAIL_LINES): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const shown = [cmd, ...args].join(' ');
  opts.logger?.log({ event: 'command.run', command: shown });
  const env: Record<string, string | undefined> = { ...process.env, ...opts.env };
  if (opts.as) {
    env.HOME = opts.as.home;
    env.USER = opts.as.name;
    env.LOGNAME = opts.as.name;
  }
  return new Promise((resolve, reject) => {
    // A program reading stdin keeps the simpler form: a background job's stdin is /dev/null.
    const group = Boolean(opts.dieWithParent && existsSync(SETPRIV) && opts.input === undefined);
    const [file, argv] = group
      ? [SETPRIV, ['--pdeathsig', 'TERM', '--', '/bin/sh', '-c', GROUP_WRAPPER, 'sh', cmd, ...args]]
      : opts.dieWithParent && existsSync(SETPRIV)
        ? [SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args]]
        : [cmd, args];
    const child = spawn(file, argv, {
      // A forwarded job in a session of its own: a terminal's Ctrl-C reaches the scheduler, which forwards it once.
      detached: group || Boolean(opts.forwardInterrupt),
      cwd: opts.cwd,
      env,
      uid: opts.as?.uid,
      gid: opts.as?.gid,
      stdio: [
        opts.input === undefined ? 'ignore' : 'pipe',
        opts.ignoreOutput ? 'ignore' : 'pipe',
        opts.ignoreOutput ? 'ignore' : 'pipe',
      ],
      timeout: opts.timeoutMs,
    });
    // Interrupted, the job kills these first (./interrupt.ts), before it undoes what they were writing.
    if (opts.dieWithParent || opts.forwardInterrupt) trackChild(child, opts.forwardInterrupt ? 'forward' : group);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      opts.onStderr?.(d);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    child.on('error', (err) => reject(failed(`could not run ${cmd}: ${err.message}`, undefined, err)));
    child.on('close', (code, signal) => {
      const result = { code: code ?? (signal ? 128 : 1), stdout, stderr };
      if (result.code !== 0 && !opts.nothrow) {
        const why = signal ? `was killed by ${signal}` : `exited with code ${result.code}`;
        const detail = tail(stderr || stdout);
        reject(failed(`${shown} ${why}${detail ? `:\n${detail}` : ''}`));
        return;
      }
      resolve(result);
    });
  });
}
