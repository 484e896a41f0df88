// backup:verify: the stored files against the SHA-256 sums in backup.json,
// the manifest against its own checksum, and the WAL archive from the base
// backup's start to the newest segment without a gap (timeline-aware).
// --deep also re-runs pg_verifybackup on an extracted copy.
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../run.ts';
import type { BackupContext } from './context.ts';
import { extractBaseBackup } from './extract.ts';
import { requireIdentity } from './crypt.ts';
import { chainProblems } from './incremental.ts';
import { checkManifestChecksum } from './stream-verify.ts';
import { sha256File, type BackupRecord } from './repository.ts';
import { checkArchive, parseSegment } from './wal.ts';

export interface VerifyResult {
  id: string;
  kind: string;
  ok: boolean;
  problems: string[];
  newestWal?: string;
}

/** The manifest's last line holds the SHA-256 of everything before it. */
function manifestIntact(path: string): boolean {
  return checkManifestChecksum(readFileSync(path, 'utf8')) === undefined;
}

export function archiveStatus(ctx: BackupContext, r: BackupRecord) {
  const seg = r.server.walSegmentBytes;
  const start = parseSegment(r.physical!.startSegment, seg)!;
  return checkArchive(ctx.repo.walFiles(), ctx.repo.histories(), start, seg);
}

export async function verifyBackup(
  ctx: BackupContext,
  r: BackupRecord,
  opts: { deep?: boolean } = {},
): Promise<VerifyResult> {
  const dir = ctx.repo.backupDir(r.kind, r.id);
  const problems: string[] = [];
  for (const f of r.files) {
    const path = join(dir, f.name);
    if (!existsSync(path)) {
      problems.push(`${f.name} is missing`);
      continue;
    }
    if (statSync(path).size !== f.bytes)
      problems.push(`${f.name} has ${statSync(path).size} bytes, ${f.bytes} recorded`);
    else if ((await sha256File(path)) !== f.sha256) problems.push(`${f.name} does not match its SHA-256 checksum`);
  }
  let newestWal: string | undefined;
  if (r.kind === 'physical') {
    const manifest = join(dir, 'backup_manifest');
    if (existsSync(manifest) && !manifestIntact(manifest))
      problems.push('backup_manifest does not match its own checksum');
    problems.push(...chainProblems(ctx.repo.list('physical'), r));
    const archive = archiveStatus(ctx, r);
    newestWal = archive.newest?.name;
    if (archive.missing.length) {
      problems.push(
        `WAL archive has a gap after ${newestWal ?? r.physical!.startSegment}: missing ${archive.missing.slice(0, 5).join(', ')}${archive.missing.length > 5 ? ` and ${archive.missing.length - 5} more` : ''}`,
      );
    }
    if (opts.deep && !problems.length) {
      const target = join(ctx.repo.kindDir('physical'), `.verify-${r.id}`);
      try {
        const identityFile = r.encryption
          ? requireIdentity(ctx.settings.backup.encryption.identityFile, `backup ${r.id}`)
          : undefined;
        await extractBaseBackup(dir, target, { as: ctx.as, withManifest: true, identityFile });
        const v = await run(ctx.pg.bin('pg_verifybackup'), ['-q', target], { as: ctx.as, nothrow: true });
        if (v.code !== 0) problems.push(`pg_verifybackup: ${v.stderr.trim()}`);
      } finally {
        rmSync(target, { recursive: true, force: true });
      }
    }
  }
  return { id: r.id, kind: r.kind, ok: problems.length === 0, problems, newestWal };
}
