// A logical drill: restore the newest (or a given) pg_dump into a scratch
// database, then compare every table's row count and fingerprint with those
// taken in the dump's own snapshot. The scratch database is always dropped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decryptFile, requireIdentity } from '../backup/crypt.ts';
import { withClient, quoteIdent, type PgConfig } from '../db.ts';
import { badInput, describeError } from '../errors.ts';
import { onInterrupt } from '../interrupt.ts';
import { pgEnv } from '../pg-password.ts';
import { run } from '../run.ts';
import type { BackupContext } from '../backup/context.ts';
import { compareFingerprints, fingerprintTables } from '../backup/fingerprint.ts';
import { newBackupId } from '../backup/repository.ts';
import { DUMP_FILE } from '../backup/take-logical-backup.ts';
import type { DrillReport } from './drill.ts';

export async function logicalDrill(
  ctx: BackupContext,
  opts: { backupId?: string; superuser: { user: string; password: string } },
): Promise<DrillReport> {
  const t0 = performance.now();
  const dumps = ctx.repo.list('logical').filter((r) => r.logical?.tables);
  const dump = opts.backupId ? dumps.find((r) => r.id === opts.backupId) : dumps[dumps.length - 1];
  if (!dump) {
    throw badInput(
      opts.backupId
        ? `no logical backup with id ${opts.backupId} (with table fingerprints)`
        : 'the repository holds no logical backup with table fingerprints',
      'take one with `npm run backup -- --type logical`',
    );
  }
  // An encrypted dump needs the identity: refused (exit 2) before the scratch database exists.
  const identity = dump.encryption
    ? requireIdentity(ctx.settings.backup.encryption.identityFile, `logical backup ${dump.id}`)
    : undefined;
  const id = `drill-${newBackupId()}`;
  const scratch = `edupulse_drill_${id.slice(6).toLowerCase()}`;
  const admin: PgConfig = {
    ...ctx.admin,
    user: opts.superuser.user,
    password: opts.superuser.password,
    database: 'postgres',
  };
  const report: DrillReport = {
    id,
    startedAt: new Date().toISOString(),
    target: `logical backup ${dump.id}`,
    backupId: dump.id,
    checks: [],
    rto: { totalSeconds: 0 },
    passed: false,
  };
  const dumpFile = join(ctx.repo.backupDir('logical', dump.id), dump.files[0]!.name);
  // pg_restore -j needs a seekable file: an encrypted dump is decrypted into a private temp directory, removed after.
  const plainDir = identity ? mkdtempSync(join(tmpdir(), 'edupulse-dump-')) : undefined;
  /** The scratch database dropped and the decrypted dump removed: after the drill, or when it is interrupted. */
  const teardown = async () => {
    await withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(scratch)} WITH (FORCE)`)).catch(
      () => {},
    );
    if (plainDir) rmSync(plainDir, { recursive: true, force: true });
  };
  const forget = onInterrupt(teardown);
  try {
    const r0 = performance.now();
    const plain = plainDir ? join(plainDir, DUMP_FILE) : dumpFile;
    if (plainDir) await decryptFile(dumpFile, plain, identity!);
    await withClient(admin, (c) => c.query(`CREATE DATABASE ${quoteIdent(scratch)}`));
    const restored = await run(
      ctx.pg.bin('pg_restore'),
      // Triggers off while data loads: derived tables (latest_predictions) come from the dump as they were.
      ['--exit-on-error', '--disable-triggers', '-j', '2', '-d', scratch, plain],
      { env: pgEnv(admin), nothrow: true, dieWithParent: true },
    );
    report.rto.extractSeconds = (performance.now() - r0) / 1000;
    if (restored.code !== 0) {
      report.checks.push({
        name: 'pg_restore into a scratch database',
        status: 'failed',
        detail: restored.stderr.trim().split('\n').slice(-5).join('; '),
      });
    } else {
      report.checks.push({
        name: 'pg_restore into a scratch database',
        status: 'passed',
        detail: `${scratch} in ${report.rto.extractSeconds.toFixed(1)}s`,
      });
      const v0 = performance.now();
      const actual = await withClient({ ...admin, database: scratch }, (c) => fingerprintTables(c));
      const problems = compareFingerprints(dump.logical!.tables, actual);
      const rows = Object.values(actual).reduce((s, t) => s + t.rows, 0);
      report.checks.push(
        problems.length
          ? { name: 'row counts and fingerprints', status: 'failed', detail: problems.slice(0, 5).join('; ') }
          : {
              name: 'row counts and fingerprints',
              status: 'passed',
              detail: `${Object.keys(actual).length} tables, ${rows} rows, identical to the dump's snapshot`,
            },
      );
      report.rto.verifySeconds = (performance.now() - v0) / 1000;
    }
  } catch (err) {
    report.checks.push({ name: 'logical drill', status: 'failed', detail: describeError(err) });
  } finally {
    forget();
    await teardown();
    report.rto.totalSeconds = (performance.now() - t0) / 1000;
    report.passed = report.checks.length > 0 && report.checks.every((c) => c.status === 'passed');
  }
  return report;
}
