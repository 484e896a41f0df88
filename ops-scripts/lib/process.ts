// Is a process alive? kill(pid, 0) alone says yes for a zombie: a killed
// daemon whose parent (here PID 1 of a container or VM) has not reaped it
// yet. So the state in /proc counts too.
import { readdirSync, readFileSync } from 'node:fs';

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** The command line of a live process, or undefined. */
export function processCommand(pid: number): string | undefined {
  if (!processAlive(pid)) return undefined;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return undefined;
  }
}

/**
 * Kills (SIGKILL) every process whose command line names `path`: what a dead
 * job left behind still writing there (pg_basebackup's WAL streamer is a
 * forked child that outlives its parent). Returns the pids killed.
 */
export function killProcessesNaming(path: string): number[] {
  const killed: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmd = processCommand(Number(entry));
    if (cmd && cmd.split(' ').some((arg) => arg === path || arg.startsWith(`${path}/`))) {
      try {
        process.kill(Number(entry), 'SIGKILL');
        killed.push(Number(entry));
      } catch {
        /* gone */
      }
    }
  }
  return killed;
}
