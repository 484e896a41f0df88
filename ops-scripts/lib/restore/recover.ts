// Waiting for a restored cluster to recover (start it, follow the replay,
// stop waiting once it is promoted or paused at the target), then measuring
// what it replayed.
import { readFileSync } from 'node:fs';
import { parseLsn } from '../backup/wal.ts';
import { postmasterPid, startCluster, type ClusterSpec } from '../cluster.ts';
import { withClient, type PgConfig } from '../db.ts';
import { describeError, failed } from '../errors.ts';
import { processAlive } from '../process.ts';
import { tail } from '../run.ts';
import type { PhaseProgress } from '../progress.ts';

/** Seconds between two log lines' timestamps ("2026-11-24 23:04:28.997 UTC ..."), when both are there. */
function logTimes(log: string): { redoDone?: number; ready?: number } {
  const at = (re: RegExp) => {
    const lines = log.split('\n').filter((l) => re.test(l));
    const m = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) (\w+)/.exec(lines[lines.length - 1] ?? '');
    return m ? Date.parse(`${m[1]!.replace(' ', 'T')}Z`) : undefined;
  };
  return {
    redoDone: at(/redo done at|recovery stopping|pausing at the end of recovery/),
    ready: at(/database system is ready to accept connections/),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RecoveryOutcome {
  promoted: boolean;
  paused: boolean;
  replaySeconds?: number;
  promoteSeconds?: number;
  replayedWalBytes: number;
  lastReplayedCommit: string | null;
  lastReplayedMicros: string | null;
}

/** Starts the configured cluster and waits (bounded) until recovery ends at the target. */
export async function awaitRecovery(
  spec: ClusterSpec,
  superuser: { user: string; password: string },
  opts: {
    pause?: boolean;
    timeoutSeconds?: number;
    replayFrom: bigint;
    replayTo: bigint;
    startLsn: string;
    onProgress?: (p: PhaseProgress) => void;
  },
): Promise<RecoveryOutcome> {
  const to = spec.dataDir;
  const port = spec.port;
  const { replayFrom, replayTo } = opts;
  const result: RecoveryOutcome = {
    promoted: false,
    paused: false,
    replayedWalBytes: 0,
    lastReplayedCommit: null,
    lastReplayedMicros: null,
  };
  const s0 = Date.now();
  await startCluster(spec, { timeoutSeconds: opts.timeoutSeconds ?? 3600 });
  const admin: PgConfig = {
    host: '127.0.0.1',
    port,
    user: superuser.user,
    password: superuser.password,
    database: 'postgres',
    application_name: 'edupulse-db restore',
  };
  const deadline = Date.now() + (opts.timeoutSeconds ?? 3600) * 1000;
  let refusals = 0,
    lastRefusal = '';
  for (;;) {
    const pid = postmasterPid(to);
    if (!pid || !processAlive(pid)) {
      throw failed(
        `the restored server stopped during recovery:\n${tail(readFileSync(spec.logFile, 'utf8'), 12)}`,
        `see ${spec.logFile}`,
      );
    }
    const state = await withClient(
      admin,
      async (c) =>
        (
          await c.query(
            `SELECT pg_is_in_recovery() AS recovering, CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS pause,
          pg_last_wal_replay_lsn()::text AS replayed`,
          )
        ).rows[0],
    ).catch((err: unknown) => {
      // "Starting up" (57P03) or not listening yet is waited out; anything else, persistently, is a failure.
      const transient =
        (err as { code?: string }).code === '57P03' ||
        /ECONNREFUSED|starting up|not yet accepting/i.test(String((err as Error).message));
      refusals = transient ? 0 : refusals + 1;
      lastRefusal = describeError(err);
      return undefined;
    });
    if (refusals >= 30)
      throw failed(
        `the restored server is running but refuses connections: ${lastRefusal}\n${tail(readFileSync(spec.logFile, 'utf8'), 6)}`,
        `see ${spec.logFile}`,
      );
    if (state?.replayed && opts.onProgress) {
      const total = Number(replayTo - replayFrom);
      opts.onProgress({
        phase: 'replay',
        done: Math.min(total, Number(parseLsn(state.replayed) - replayFrom)),
        total,
        unit: 'WAL bytes',
      });
    }
    if (state && !state.recovering) {
      result.promoted = true;
      break;
    }
    if (state && opts.pause && state.pause === 'paused') {
      result.paused = true;
      break;
    }
    if (Date.now() > deadline)
      throw failed(`recovery did not finish within ${opts.timeoutSeconds ?? 3600}s`, `see ${spec.logFile}`);
    await sleep(100);
  }
  const times = logTimes(readFileSync(spec.logFile, 'utf8'));
  if (times.redoDone) result.replaySeconds = Math.max(0, (times.redoDone - s0) / 1000);
  if (times.redoDone && times.ready && result.promoted)
    result.promoteSeconds = Math.max(0, (times.ready - times.redoDone) / 1000);
  await withClient(admin, async (c) => {
    const { rows } = await c.query(
      `SELECT pg_wal_lsn_diff(coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn()), $1)::bigint AS bytes,
        pg_last_xact_replay_timestamp() AS last, (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint::text AS us`,
      [opts.startLsn],
    );
    result.replayedWalBytes = Number(rows[0].bytes);
    result.lastReplayedCommit = rows[0].last ? (rows[0].last as Date).toISOString() : null;
    result.lastReplayedMicros = rows[0].us ?? null;
  });
  return result;
}
