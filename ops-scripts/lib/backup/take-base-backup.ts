// A physical backup: pg_basebackup as the backup login, tar format,
// compressed, WAL streamed into the backup (self-contained), a manifest with
// SHA-256 checksums. It is marked complete (backup.json) only after it was
// verified against its manifest as a stream (stream-verify.ts: every file's
// size and SHA-256, the manifest's own checksum, the WAL it needs parsed by
// pg_waldump), without an extracted copy on disk; PostgreSQL 15's
// pg_verifybackup reads plain format only, so it runs in backup:verify --deep.
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { failed } from '../errors.ts';
import { pgEnv } from '../pg-password.ts';
import { run } from '../run.ts';
import type { BackupContext } from './context.ts';
import { beginBackup } from './begin-backup.ts';
import { sha256File, type BackupRecord } from './repository.ts';
import { STREAM_VERIFY_TOOL, streamVerify } from './stream-verify.ts';
import { segmentName, segnoOfLsn } from './wal.ts';

export interface PhysicalOptions {
  compression: string;
  checkpoint: 'fast' | 'spread';
  label?: string;
  /** pg_basebackup --max-rate, e.g. 10M: throttles the transfer. */
  maxRate?: string;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

interface Manifest {
  Files: Array<{ Path: string; Size: number }>;
  'WAL-Ranges': Array<{ Timeline: number; 'Start-LSN': string; 'End-LSN': string }>;
}

export async function takePhysicalBackup(ctx: BackupContext, opts: PhysicalOptions): Promise<BackupRecord> {
  const { id, dir, started, t0, facts } = await beginBackup(ctx, 'physical');
  const verifyDir = join(ctx.repo.kindDir('physical'), `.verify-${id}`);
  try {
    const args = [
      '-D',
      dir,
      '-Ft',
      '-X',
      'stream',
      '-c',
      opts.checkpoint,
      '--manifest-checksums=SHA256',
      '-l',
      opts.label ?? `edupulse-db ${id}`,
      '-P',
    ];
    if (opts.compression !== 'none') args.push(`--compress=${opts.compression}`);
    if (opts.maxRate) args.push(`--max-rate=${opts.maxRate}`);
    await run(ctx.pg.bin('pg_basebackup'), args, {
      as: ctx.as,
      env: pgEnv(ctx.backupLogin),
      logger: ctx.logger,
      dieWithParent: true,
      onStderr: (chunk) => {
        const m = /(\d+)\/(\d+) kB/.exec(chunk.split('\r').filter(Boolean).pop() ?? '');
        if (m) opts.onProgress?.(Number(m[1]) * 1024, Number(m[2]) * 1024);
      },
    });
    const manifestText = readFileSync(join(dir, 'backup_manifest'), 'utf8');
    const manifest = JSON.parse(manifestText) as Manifest;
    const range = manifest['WAL-Ranges'][0]!;
    const backupSeconds = (performance.now() - t0) / 1000;
    const endedAt = new Date().toISOString();

    const v0 = performance.now();
    const verified = await streamVerify(dir, manifestText, {
      pgWaldump: ctx.pg.bin('pg_waldump'),
      scratch: verifyDir,
      as: ctx.as,
    });
    if (verified.problems.length) {
      throw failed(`backup ${id} does not match its manifest:\n${verified.problems.slice(0, 10).join('\n')}`);
    }
    const verifySeconds = (performance.now() - v0) / 1000;

    // The tar files' SHA-256 came from the verifying read; only what it did not read is read again.
    const files = await Promise.all(
      readdirSync(dir)
        .sort()
        .map(async (name) => ({
          name,
          bytes: statSync(join(dir, name)).size,
          sha256: verified.stored[name] ?? (await sha256File(join(dir, name))),
        })),
    );
    const rawBytes = manifest.Files.reduce((s, f) => s + f.Size, 0);
    const seg = facts.walSegmentBytes;
    const record: BackupRecord = {
      format: 1,
      id,
      kind: 'physical',
      label: opts.label ?? `edupulse-db ${id}`,
      status: 'complete',
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      durationSeconds: (performance.now() - t0) / 1000,
      server: facts,
      physical: {
        startLsn: range['Start-LSN'],
        stopLsn: range['End-LSN'],
        timeline: range.Timeline,
        startSegment: segmentName(range.Timeline, segnoOfLsn(range['Start-LSN'], seg), seg),
        stopSegment: segmentName(range.Timeline, segnoOfLsn(range['End-LSN'], seg), seg),
        endedAt,
        compression: opts.compression,
        checkpoint: opts.checkpoint,
        walIncluded: true,
      },
      sizes: { rawBytes, storedBytes: files.reduce((s, f) => s + f.bytes, 0) },
      throughputMBps: rawBytes / 1048576 / backupSeconds,
      files,
      verification: { tool: STREAM_VERIFY_TOOL, ok: true, seconds: verifySeconds },
    };
    ctx.repo.writeRecord(record);
    return record;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    rmSync(verifyDir, { recursive: true, force: true });
  }
}
