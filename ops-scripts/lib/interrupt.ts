// A job interrupted (Ctrl-C, SIGTERM from a supervisor, SIGHUP when its
// terminal goes) undoes what it started, as it does when it fails, instead of
// dying mid-way: a restore would otherwise leave a half-extracted data
// directory (or a server replaying into it), a drill its scratch cluster.
//
// On the first signal the programs it runs that die with it (run's
// dieWithParent) are killed first, so nothing still writes into what is
// removed (a job it runs, as the scheduler does, is sent SIGTERM and waited
// for); then each undo step registered with onInterrupt runs, newest first,
// within a bound; then the job exits 128 + the signal's number (130, 143, 129).
// A second signal exits at once.
import type { ChildProcess } from 'node:child_process';

type Undo = () => Promise<void> | void;

const undos: Undo[] = [];
const children = new Set<{ child: ChildProcess; how: boolean | 'forward' }>();
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

/**
 * A running child, forgotten when it closes. Interrupted, the job kills it (its process group when `how` is true),
 * or, with 'forward', sends it SIGTERM and waits for it (a job of its own, which undoes its own work).
 */
export function trackChild(child: ChildProcess, how: boolean | 'forward'): void {
  const entry = { child, how };
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

function stopChildren(): Promise<void> {
  const closing = [...children].map(
    ({ child, how }) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('close', () => resolve());
        try {
          if (how === 'forward') child.kill('SIGTERM');
          else if (how && child.pid) process.kill(-child.pid, 'SIGKILL');
          else child.kill('SIGKILL');
        } catch {
          resolve();
        }
      }),
  );
  // A forwarded job gets the time its own undo may take; a killed program is gone at once.
  const wait = [...children].some((c) => c.how === 'forward') ? UNDO_BOUND_MS - 5_000 : 5_000;
  return Promise.race([Promise.all(closing).then(() => {}), new Promise<void>((r) => setTimeout(r, wait))]);
}

async function undoAll(): Promise<void> {
  await stopChildren();
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
