// A recovery drill: restore into a scratch cluster at a target time, prove the
// data, measure RTO and RPO, tear the scratch cluster down.
//
// Exactness is proven with canary rows on the live server: one committed just
// before the target, one just after (then the WAL is switched and archived).
// Every canary committed at or before the target must be in the restored
// cluster, every one after it must not. "It started" is not verification.
import { existsSync, rmSync } from 'node:fs';
import { onInterrupt } from '../interrupt.ts';
import { join } from 'node:path';
import { clusterRunning, postmasterPid, stopCluster } from '../cluster.ts';
import { withClient, type PgConfig } from '../db.ts';
import { describeError } from '../errors.ts';
import { ensurePrivateDir } from '../files.ts';
import { pgEnv } from '../pg-password.ts';
import { processAlive } from '../process.ts';
import { run } from '../run.ts';
import type { BackupContext } from '../backup/context.ts';
import { newBackupId } from '../backup/repository.ts';
import { auditRoles } from '../../../roles/engine/index.ts';
import { writeCanary } from '../restore/restore-points.ts';
import { restore, type RestoreOptions, type RestoreResult } from '../restore/restore.ts';
import { exactMicros, isoOf, type TargetTime } from '../restore/target.ts';
import { archiveUpToNow } from '../restore/archive-now.ts';
import type { Catalog } from '../restore/catalog.ts';
import type { StepStatus } from '../logger.ts';

export interface DrillOptions {
  /** Default: a point the drill makes between two canaries, just now. */
  targetTime?: TargetTime;
  backupId?: string;
  keep?: boolean;
  scratchRoot: string;
  liveDataDir: string;
  superuser: { user: string; password: string };
  database: string;
  /** Where backups and WAL come from (default: the local repository). */
  catalog?: Catalog;
  /** Where a failed restore's server log is kept. */
  logDir?: string;
  /** Run after the target's WAL is archived locally (e.g. push it to the object store). */
  afterArchive?: () => Promise<void>;
  /** Hears the restore's progress (extract, replay). */
  onProgress?: RestoreOptions['onProgress'];
}

export interface DrillCheck {
  name: string;
  status: StepStatus | 'passed';
  detail: string;
}

export interface DrillReport {
  id: string;
  /** A recovery drill (restore to a target) or a failover drill (drill --failover); absent: recovery. */
  kind?: 'recovery' | 'failover';
  startedAt: string;
  target: string;
  backupId?: string;
  checks: DrillCheck[];
  rto: {
    totalSeconds: number;
    chooseSeconds?: number;
    extractSeconds?: number;
    replaySeconds?: number;
    promoteSeconds?: number;
    verifySeconds?: number;
    /** Failover drills: primary death to the failed probe, promotion, pooler and standbys repointed, first write. */
    detectSeconds?: number;
    repointSeconds?: number;
    firstWriteSeconds?: number;
  };
  rpoSeconds?: number;
  replayedWalBytes?: number;
  lastReplayedCommit?: string | null;
  passed: boolean;
  kept?: { dataDir: string; port: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A canary inserted this close before the target might still commit after it: not judged. */
const AMBIGUOUS_MS = 25;

async function placeTarget(admin: PgConfig, drillId: string): Promise<Date> {
  await writeCanary(admin, drillId, 'before');
  await sleep(AMBIGUOUS_MS * 2);
  const target = await withClient(
    admin,
    async (c) => (await c.query('SELECT clock_timestamp() AS t')).rows[0].t as Date,
  );
  await sleep(AMBIGUOUS_MS * 2);
  await writeCanary(admin, drillId, 'after');
  return target;
}

async function checkCanaries(live: PgConfig, restored: PgConfig, target: Date): Promise<DrillCheck> {
  const liveRows = await withClient(
    live,
    async (c) =>
      (await c.query('SELECT id::text, committed_at FROM edupulse_meta.drill_canaries')).rows as Array<{
        id: string;
        committed_at: Date;
      }>,
  );
  const restoredIds = new Set(
    await withClient(restored, async (c) =>
      (await c.query('SELECT id::text FROM edupulse_meta.drill_canaries')).rows.map((r) => r.id as string),
    ),
  );
  const t = target.getTime();
  const before = liveRows.filter((r) => r.committed_at.getTime() <= t - AMBIGUOUS_MS);
  const after = liveRows.filter((r) => r.committed_at.getTime() > t);
  const missing = before.filter((r) => !restoredIds.has(r.id));
  const leaked = after.filter((r) => restoredIds.has(r.id));
  // No canary on one side is no evidence either way: "not proven" by canaries (the WAL evidence check still judges).
  if (!before.length || !after.length) {
    return {
      name: 'data exactness (canaries)',
      status: 'skipped',
      detail: `not proven by canaries: none committed ${!before.length ? 'before' : 'after'} the target (the WAL evidence below judges)`,
    };
  }
  const ok = !missing.length && !leaked.length;
  const detail =
    `${before.length} canaries committed before the target present${
      missing.length
        ? `, but ${missing.length} MISSING (ids ${missing
            .slice(0, 5)
            .map((r) => r.id)
            .join(', ')})`
        : ''
    }; ` +
    `${after.length} committed after it absent${
      leaked.length
        ? `, but ${leaked.length} PRESENT (ids ${leaked
            .slice(0, 5)
            .map((r) => r.id)
            .join(', ')})`
        : ''
    }`;
  return { name: 'data exactness (canaries)', status: ok ? 'passed' : 'failed', detail };
}

/**
 * Exactness from the archived WAL itself, for any target: the last
 * transaction the restored server replayed must be the last one the archive
 * holds at or before the target (pg_waldump, in WAL order, before the first
 * one after it), to the microsecond.
 */
export function checkWalEvidence(
  r: Pick<RestoreResult, 'walEvidence' | 'lastReplayedMicros'>,
  target: TargetTime,
): DrillCheck {
  const name = 'data exactness (WAL evidence)';
  const ev = r.walEvidence;
  if (!ev) return { name, status: 'skipped', detail: 'not a time target' };
  const t = exactMicros(target);
  const secs = (us: bigint) => (Number(us) / 1e6).toFixed(6);
  const after = ev.after
    ? `; the first after it (${ev.after.time}, LSN ${ev.after.lsn}, ${secs(BigInt(ev.after.micros) - t)}s after the target) was not replayed`
    : '; nothing after it was archived';
  if (!ev.atOrBefore) {
    return r.lastReplayedMicros === null || r.lastReplayedMicros === undefined
      ? {
          name,
          status: 'passed',
          detail: `no transaction ended between the end of the backup and the target, and none was replayed${after}`,
        }
      : {
          name,
          status: 'failed',
          detail: `the archive holds no transaction at or before the target, yet one ending at ${r.lastReplayedMicros}us was replayed`,
        };
  }
  const last = BigInt(ev.atOrBefore.micros);
  if (r.lastReplayedMicros !== undefined && r.lastReplayedMicros !== null && BigInt(r.lastReplayedMicros) === last) {
    return {
      name,
      status: 'passed',
      detail: `the last transaction replayed is the last the archived WAL holds at or before the target (ended ${ev.atOrBefore.time}, LSN ${ev.atOrBefore.lsn}, ${secs(t - last)}s before it)${after}`,
    };
  }
  return {
    name,
    status: 'failed',
    detail: `the last transaction replayed (${r.lastReplayedMicros ?? 'none'}us) is not the last the archive holds at or before the target (${ev.atOrBefore.time}, ${last}us, LSN ${ev.atOrBefore.lsn})`,
  };
}

async function checkIndexes(r: RestoreResult, restored: PgConfig): Promise<DrillCheck> {
  const bin = r.spec.pg.bin('pg_amcheck');
  if (existsSync(bin)) {
    const out = await run(bin, ['--install-missing', '-d', String(restored.database)], {
      env: pgEnv(restored),
      nothrow: true,
    });
    const count = await withClient(restored, async (c) =>
      Number(
        (
          await c.query(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree'",
          )
        ).rows[0].count,
      ),
    );
    return out.code === 0
      ? {
          name: 'structural integrity (pg_amcheck)',
          status: 'passed',
          detail: `heap and all ${count} btree indexes checked, no corruption`,
        }
      : {
          name: 'structural integrity (pg_amcheck)',
          status: 'failed',
          detail: (out.stdout + out.stderr).trim().split('\n').slice(0, 8).join('; '),
        };
  }
  return withClient(restored, async (c) => {
    await c.query('CREATE EXTENSION IF NOT EXISTS amcheck');
    const { rows } =
      await c.query(`SELECT c.oid::regclass::text AS idx FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND i.indisvalid`);
    for (const r2 of rows) await c.query('SELECT bt_index_check($1::regclass, true)', [r2.idx]);
    return { name: 'structural integrity (amcheck)', status: 'passed', detail: `${rows.length} btree indexes checked` };
  });
}

export async function drill(ctx: BackupContext, opts: DrillOptions): Promise<DrillReport> {
  const t0 = performance.now();
  const id = `drill-${newBackupId()}`;
  const checks: DrillCheck[] = [];
  const report: DrillReport = {
    id,
    startedAt: new Date().toISOString(),
    target: '',
    checks,
    rto: { totalSeconds: 0 },
    passed: false,
  };
  const scratch = join(opts.scratchRoot, id);
  let restored: RestoreResult | undefined;
  /** The scratch cluster stopped (killed if it will not stop) and removed. */
  const teardown = async () => {
    if (restored && (await clusterRunning(restored.spec)))
      await stopCluster(restored.spec, 'immediate').catch(() => {});
    const pid = restored ? postmasterPid(restored.dataDir) : undefined;
    if (pid && processAlive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(scratch, { recursive: true, force: true });
  };
  // Interrupted, even with --keep: a drill that did not finish keeps nothing (the restore undoes its own part).
  const forget = onInterrupt(teardown);
  try {
    const target: TargetTime = opts.targetTime ?? { time: await placeTarget(ctx.admin, id) };
    if (opts.targetTime) await writeCanary(ctx.admin, id, 'after');
    report.target = isoOf(target);
    await archiveUpToNow(ctx.admin);
    await opts.afterArchive?.();
    ensurePrivateDir(opts.scratchRoot, ctx.as);
    const r0 = performance.now();
    restored = await restore(ctx, {
      reader: 'drill',
      target: { kind: 'time', ...target },
      to: join(scratch, 'data'),
      backupId: opts.backupId,
      start: true,
      liveDataDir: opts.liveDataDir,
      superuser: opts.superuser,
      catalog: opts.catalog,
      logDir: opts.logDir,
      onProgress: opts.onProgress,
    });
    const restoreSeconds = (performance.now() - r0) / 1000;
    report.backupId = restored.backup.id;
    report.replayedWalBytes = restored.replayedWalBytes;
    report.lastReplayedCommit = restored.lastReplayedCommit;
    checks.push({
      name: 'restore and promote',
      status: 'passed',
      detail: `backup ${restored.backup.id}, promoted in ${restoreSeconds.toFixed(1)}s on port ${restored.port}`,
    });
    const v0 = performance.now();
    const conn: PgConfig = {
      host: '127.0.0.1',
      port: restored.port,
      user: opts.superuser.user,
      password: opts.superuser.password,
      database: opts.database,
      application_name: 'edupulse-db drill',
    };
    const last = restored.lastReplayedCommit ? new Date(restored.lastReplayedCommit) : undefined;
    // To the microsecond where the server said it (a target may be finer than a millisecond).
    const lastUs =
      restored.lastReplayedMicros != null
        ? BigInt(restored.lastReplayedMicros)
        : last && BigInt(last.getTime()) * 1000n;
    if (last && lastUs !== undefined && lastUs <= exactMicros(target)) {
      report.rpoSeconds = Number(exactMicros(target) - lastUs) / 1e6;
      checks.push({
        name: 'target reached',
        status: 'passed',
        detail: `last replayed commit ${last.toISOString()}, ${report.rpoSeconds.toFixed(3)}s before the target`,
      });
    } else {
      checks.push({
        name: 'target reached',
        status: 'failed',
        detail: last ? `last replayed commit ${last.toISOString()} is after the target` : 'no transaction was replayed',
      });
    }
    for (const check of [
      () => checkCanaries(ctx.admin, conn, target.time),
      async () => checkWalEvidence(restored!, target),
      () => checkIndexes(restored!, conn),
      async (): Promise<DrillCheck> => {
        const diffs = await withClient(conn, (c) => auditRoles(c));
        return {
          name: 'roles and grants as declared',
          status: diffs.length ? 'failed' : 'passed',
          detail: diffs.length
            ? diffs
                .slice(0, 5)
                .map((d) => `${d.kind} ${d.role}: ${d.what}`)
                .join('; ')
            : 'audit clean',
        };
      },
    ]) {
      try {
        checks.push(await check());
      } catch (err) {
        checks.push({ name: 'verification', status: 'failed', detail: describeError(err) });
      }
    }
    report.rto = {
      totalSeconds: 0,
      chooseSeconds: restored.timings.chooseSeconds,
      extractSeconds: restored.timings.extractSeconds,
      replaySeconds: restored.timings.replaySeconds,
      promoteSeconds: restored.timings.promoteSeconds,
      verifySeconds: (performance.now() - v0) / 1000,
    };
  } catch (err) {
    checks.push({
      name: restored ? 'verification' : 'restore and promote',
      status: 'failed',
      detail: describeError(err),
    });
  } finally {
    forget();
    if (restored && opts.keep) {
      report.kept = { dataDir: restored.dataDir, port: restored.port };
    } else await teardown();
    report.rto.totalSeconds = (performance.now() - t0) / 1000;
    // A check that could not judge ("not proven") does not fail the drill; exactness must still be proven by one of them.
    report.passed =
      checks.length > 0 &&
      checks.every((c) => c.status === 'passed' || c.status === 'skipped') &&
      checks.some((c) => c.name.startsWith('data exactness') && c.status === 'passed');
  }
  return report;
}
