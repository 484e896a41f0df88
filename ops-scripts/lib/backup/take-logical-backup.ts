// A logical backup: pg_dump -Fc of the application database as the backup
// login (the documented nightly dump; compression built in), checked with
// pg_restore --list before it is marked complete.
import { rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { encryptFile } from './crypt.ts';
import { withClient } from '../db.ts';
import { failed } from '../errors.ts';
import { onInterrupt } from '../interrupt.ts';
import { fingerprintTables } from './fingerprint.ts';
import { pgEnv } from '../pg-password.ts';
import { run } from '../run.ts';
import type { BackupContext } from './context.ts';
import { sha256File, type BackupRecord } from './repository.ts';
import { beginBackup, recordHead } from './begin-backup.ts';

export const DUMP_FILE = 'dump.pgdump';

export async function takeLogicalBackup(ctx: BackupContext, opts: { label?: string } = {}): Promise<BackupRecord> {
  const database = String(ctx.backupLogin.database);
  // pg_dump's custom format is compressed.
  const begun = await beginBackup(ctx, 'logical', { compressed: true, database });
  const { dir, t0 } = begun;
  // Interrupted before its record is written, the half-taken dump goes now rather than at the next run.
  let recorded = false;
  const forget = onInterrupt(() => {
    if (!recorded) rmSync(dir, { recursive: true, force: true });
  });
  try {
    const file = join(dir, DUMP_FILE);
    // The dump is made from a snapshot exported here, in which every table is also fingerprinted:
    // a restore of the dump can then be checked against exactly the data it holds.
    const tables = await withClient({ ...ctx.backupLogin, database }, async (c) => {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const snapshot = (await c.query('SELECT pg_export_snapshot() AS s')).rows[0].s as string;
        const fingerprints = await fingerprintTables(c);
        await run(ctx.pg.bin('pg_dump'), ['-Fc', '-d', database, '-f', file, `--snapshot=${snapshot}`], {
          as: ctx.as,
          env: pgEnv(ctx.backupLogin),
          logger: ctx.logger,
          dieWithParent: true,
        });
        return fingerprints;
      } finally {
        await c.query('COMMIT').catch(() => {});
      }
    });
    const dumpSeconds = (performance.now() - t0) / 1000;
    const v0 = performance.now();
    const list = await run(ctx.pg.bin('pg_restore'), ['--list', file], {
      as: ctx.as,
      nothrow: true,
      dieWithParent: true,
    });
    if (list.code !== 0)
      throw failed(`pg_restore --list could not read the dump of ${database}:\n${list.stderr.trim()}`);
    const entries = list.stdout.split('\n').filter((l) => l.trim() && !l.startsWith(';')).length;
    const rawBytes = statSync(file).size;
    // Encryption at rest: the checked dump becomes an age file.
    const { recipients } = ctx.settings.backup.encryption;
    const stored = recipients.length ? await encryptFile(file, recipients, ctx.as) : file;
    const bytes = statSync(stored).size;
    const record: BackupRecord = {
      ...recordHead(begun, 'logical', opts.label),
      logical: { database, tool: 'pg_dump -Fc', entries, tables },
      sizes: { rawBytes, storedBytes: bytes },
      throughputMBps: rawBytes / 1048576 / dumpSeconds,
      files: [{ name: basename(stored), bytes, sha256: await sha256File(stored) }],
      ...(recipients.length ? { encryption: { tool: 'age' as const, recipients } } : {}),
      verification: { tool: 'pg_restore --list', ok: entries > 0, seconds: (performance.now() - v0) / 1000 },
    };
    ctx.repo.writeRecord(record);
    recorded = true;
    return record;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    forget();
  }
}
