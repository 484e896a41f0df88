// What every backup starts with: a new id (by time; suffixed if a backup of
// that second exists), its private directory, and the server's identity.
import { existsSync } from 'node:fs';
import { withClient } from '../db.ts';
import { ensurePrivateDir } from '../files.ts';
import type { BackupContext } from './context.ts';
import { newBackupId, type BackupKind, type BackupRecord } from './repository.ts';

export interface ServerFacts {
  version: string;
  major: number;
  systemIdentifier: string;
  walSegmentBytes: number;
}

export async function serverFacts(ctx: BackupContext): Promise<ServerFacts> {
  return withClient(ctx.admin, async (c) => {
    const { rows } = await c.query(`SELECT current_setting('server_version') AS version,
        current_setting('server_version_num')::int / 10000 AS major,
        (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
        (SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 ELSE 1 END
           FROM pg_settings WHERE name = 'wal_segment_size')::float8 AS seg`);
    const r = rows[0];
    return { version: r.version, major: r.major, systemIdentifier: r.sysid, walSegmentBytes: r.seg };
  });
}

export interface BackupStart {
  id: string;
  dir: string;
  started: Date;
  t0: number;
  facts: ServerFacts;
}

export async function beginBackup(ctx: BackupContext, kind: BackupKind): Promise<BackupStart> {
  const started = new Date();
  const t0 = performance.now();
  const facts = await serverFacts(ctx);
  let id = newBackupId(started);
  for (let n = 2; existsSync(ctx.repo.backupDir(kind, id)); n++) id = `${newBackupId(started)}-${n}`;
  const dir = ctx.repo.backupDir(kind, id);
  ensurePrivateDir(dir, ctx.as);
  return { id, dir, started, t0, facts };
}

/** The fields every backup.json starts with, as the backup finishes. */
export function recordHead(b: BackupStart, kind: BackupKind, label: string | undefined) {
  return {
    format: 1,
    id: b.id,
    kind,
    label: label ?? `edupulse-db ${b.id}`,
    status: 'complete',
    startedAt: b.started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationSeconds: (performance.now() - b.t0) / 1000,
    server: b.facts,
  } satisfies Partial<BackupRecord>;
}
