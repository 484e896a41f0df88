// A job interrupted (Ctrl-C, SIGTERM from a supervisor, SIGHUP when its
// terminal goes) undoes what it started, as it does when it fails, instead of
// dying mid-way: a restore would otherwise leave a half-extracted data
// directory (or a server replaying into it), a drill its scratch cluster.
//
// On the first signal the programs it runs that die with it (run's
// dieWithParent) are killed first, so nothing still writes into what is
// removed; then each undo step registered with onInterrupt runs, newest first,
// within a bound; then the job exits 128 + the signal's number (130, 143, 129).
// A second signal exits at once.
import type { ChildProcess } from 'node:child_process';

type Undo = () => Promise<void> | void;

const undos: Undo[] = [];
const children = new Set<{ child: ChildProcess; group: boolean }>();
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
/** How long the undo steps may take before the job exits anyway. */
const UNDO_BOUND_MS = 60_000;
let interrupted: NodeJS.Signals | undefined;

/**
 * Registers an undo step for an interruption; returns its removal (call it once the step is no longer needed).
 * The signal handlers are installed with the first step: a job with nothing to undo (wal:fetch, run by the
 * server's restore_command) keeps the default, so the server still sees it die by the signal.
 */
export function onInterrupt(undo: Undo): () => void {
  installHandlers();
  undos.push(undo);
  return () => {
    const i = undos.lastIndexOf(undo);
    if (i >= 0) undos.splice(i, 1);
  };
}

/** A running child that dies with the job (in a process group of its own when `group`); forgotten when it closes. */
export function trackChild(child: ChildProcess, group: boolean): void {
  const entry = { child, group };
  children.add(entry);
  child.once('close', () => children.delete(entry));
}

/** The signal that interrupted this job, if one did (a step still running can stop early). */
export const interruptedBy = (): NodeJS.Signals | undefined => interrupted;

/**
 * Before a job records its outcome (a drill's history, metrics): an interrupted job records nothing, so this
 * never returns once a signal came, and the handler's exit ends the job.
 */
export function haltIfInterrupted(): Promise<void> {
  return interrupted ? new Promise<void>(() => {}) : Promise.resolve();
}

function killChildren(): Promise<void> {
  const closing = [...children].map(
    ({ child, group }) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('close', () => resolve());
        try {
          if (group && child.pid) process.kill(-child.pid, 'SIGKILL');
          else child.kill('SIGKILL');
        } catch {
          resolve();
        }
      }),
  );
  return Promise.race([Promise.all(closing).then(() => {}), new Promise<void>((r) => setTimeout(r, 5_000))]);
}

async function undoAll(): Promise<void> {
  await killChildren();
  for (const undo of [...undos].reverse()) {
    try {
      await undo();
    } catch (err) {
      process.stderr.write(`  undo step failed: ${(err as Error).message}\n`);
    }
  }
}

let jobName = 'edupulse-db';
let installed = false;

/** The job's name for the interruption's message (cli.ts sets it). */
export function interruptedJobName(job: string): void {
  jobName = job;
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  for (const [signal, n] of Object.entries(SIGNALS) as Array<[NodeJS.Signals, number]>) {
    process.on(signal, () => {
      if (interrupted) process.exit(128 + n);
      interrupted = signal;
      process.stderr.write(`${jobName}: interrupted by ${signal}; undoing what it started\n`);
      const bound = setTimeout(() => {
        process.stderr.write(`${jobName}: undo did not finish within ${UNDO_BOUND_MS / 1000} s; exiting\n`);
        process.exit(128 + n);
      }, UNDO_BOUND_MS);
      void undoAll().finally(() => {
        clearTimeout(bound);
        process.exit(128 + n);
      });
    });
  }
}
