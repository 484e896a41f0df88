// A physical backup: pg_basebackup as the backup login, tar format,
// compressed, WAL streamed into the backup (self-contained), a manifest with
// SHA-256 checksums. It is marked complete (backup.json) only after it was
// verified against its manifest as a stream (stream-verify.ts: every file's
// size and SHA-256, the manifest's own checksum, the WAL it needs parsed by
// pg_waldump), without an extracted copy on disk; PostgreSQL 15's
// pg_verifybackup reads plain format only, so it runs in backup:verify --deep.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { failed } from '../errors.ts';
import { onInterrupt } from '../interrupt.ts';
import { pgEnv } from '../pg-password.ts';
import { run, tail, type RunResult } from '../run.ts';
import { withClient } from '../db.ts';
import type { BackupContext } from './context.ts';
import { beginBackup, recordHead } from './begin-backup.ts';
import { sha256File, type BackupRecord, type ChecksumFailure } from './repository.ts';
import { checkManifestChecksum, hashBaseTarWhileWritten, STREAM_VERIFY_TOOL, streamVerify } from './stream-verify.ts';
import { segmentName, segnoOfLsn } from './wal.ts';
import { unpackWal, zstdFile } from './wal-store.ts';
import { encryptFile } from './crypt.ts';
import { canIncremental, incrementalParent } from './incremental.ts';
import { ensurePrivateDir } from '../files.ts';

export interface PhysicalOptions {
  compression: string;
  checkpoint: 'fast' | 'spread';
  label?: string;
  /** An incremental on top of the newest physical backup where the server can (PostgreSQL 17+); else a full one. */
  incremental?: boolean;
  /** zstd level of the streamed WAL (pg_wal.tar.zst) when the backup is compressed; the archive's level. */
  walZstdLevel?: number;
  /** pg_basebackup --max-rate, e.g. 10M: throttles the transfer. */
  maxRate?: string;
  /** Read from this standby instead of the primary (same cluster, same timeline; the WAL it streams is the primary's). */
  fromStandby?: { name: string; port: number };
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

interface Manifest {
  Files: Array<{ Path: string; Size: number }>;
  'WAL-Ranges': Array<{ Timeline: number; 'Start-LSN': string; 'End-LSN': string }>;
}

/**
 * pg_basebackup exited non-zero: if only because pages failed their checksum (it reads and sends
 * every file, warns per page, then fails at the very end, leaving its manifest as
 * backup_manifest.tmp), the backup is kept: the manifest must pass its own checksum here and the
 * whole backup the stream check after; the failures are named (file, block, relation). Decided so
 * because one bad page (already bad on the server) should not leave the night without any backup;
 * the job still exits 1 and health goes critical. Any other failure is the command's failure.
 */
async function acceptChecksumFailures(
  ctx: BackupContext,
  dir: string,
  taken: RunResult,
  seg: number,
): Promise<ChecksumFailure[]> {
  const failures: ChecksumFailure[] = [
    ...taken.stderr.matchAll(/checksum verification failed in file "(?:\.\/)?([^"]+)", block (\d+)/g),
  ].map((m) => ({
    file: m[1]!,
    block: Number(m[2]),
  }));
  const tmp = join(dir, 'backup_manifest.tmp');
  const manifestOk = existsSync(tmp) && checkManifestChecksum(readFileSync(tmp, 'utf8')) === undefined;
  if (!failures.length || !/checksum error occurred/.test(taken.stderr) || !manifestOk) {
    const shown = tail(taken.stderr || taken.stdout);
    throw failed(`pg_basebackup exited with code ${taken.code}${shown ? `:\n${shown}` : ''}`);
  }
  renameSync(tmp, join(dir, 'backup_manifest'));
  // pg_basebackup stopped its WAL stream at the error, so pg_wal.tar is cut short; the WAL the backup
  // needs is the archive's (archived now, bounded): pg_wal.tar is rebuilt from it, then checked by
  // pg_waldump in the stream check like any other.
  const range = (JSON.parse(readFileSync(join(dir, 'backup_manifest'), 'utf8')) as Manifest)['WAL-Ranges'][0]!;
  // The segments from the backup's start to its end must be in the archive: a switch sends the last
  // one now if it is still the current one (a no-op otherwise); then wait (bounded) for the files.
  await withClient(ctx.admin, (c) => c.query('SELECT pg_switch_wal()'));
  const names: string[] = [];
  for (let n = segnoOfLsn(range['Start-LSN'], seg); n <= segnoOfLsn(range['End-LSN'], seg); n++) {
    names.push(segmentName(range.Timeline, n, seg));
  }
  const deadline = Date.now() + 90_000;
  for (;;) {
    const absent = names.filter((name) => !ctx.repo.walStoredPath(name));
    if (!absent.length) break;
    if (Date.now() > deadline)
      throw failed(
        `WAL segment ${absent[0]} the backup needs did not reach the archive within 90 s`,
        'see status (archiver)',
      );
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const f of readdirSync(dir).filter((x) => /^pg_wal\.tar/.test(x))) rmSync(join(dir, f));
  // The archive stores segments compressed: they go into the tar as the server wrote them.
  const plain = join(dir, '.pg_wal');
  ensurePrivateDir(plain, ctx.as);
  try {
    for (const name of names)
      await unpackWal(ctx.repo.walStoredPath(name)!, join(plain, name), {
        as: ctx.as,
        identityFile: ctx.settings.backup.encryption.identityFile,
      });
    await run('tar', ['-c', '-f', join(dir, 'pg_wal.tar'), '-C', plain, ...names], {
      as: ctx.as,
      dieWithParent: true,
    });
  } finally {
    rmSync(plain, { recursive: true, force: true });
  }
  for (const f of failures) {
    const m = /^base\/(\d+)\/(\d+)/.exec(f.file);
    if (!m) continue;
    const relation = await withClient(ctx.admin, async (c) => {
      const db = (await c.query('SELECT datname FROM pg_database WHERE oid = $1', [m[1]])).rows[0]?.datname as
        string | undefined;
      if (!db) return undefined;
      return withClient(
        { ...ctx.admin, database: db },
        async (d) =>
          (await d.query('SELECT pg_filenode_relation(0, $1)::regclass::text AS r', [m[2]])).rows[0]?.r as
            string | undefined,
      );
    }).catch(() => undefined);
    if (relation) f.relation = relation;
  }
  ctx.logger.log({
    event: 'warn',
    message: `${failures.length} page(s) failed their checksum: ${failures.map((f) => `${f.relation ?? f.file} block ${f.block}`).join(', ')}`,
  });
  return failures;
}

export async function takePhysicalBackup(ctx: BackupContext, opts: PhysicalOptions): Promise<BackupRecord> {
  const begun = await beginBackup(ctx, 'physical', { compressed: opts.compression !== 'none' });
  const { id, dir, t0, facts } = begun;
  const verifyDir = join(ctx.repo.kindDir('physical'), `.verify-${id}`);
  // Interrupted before its record is written, the half-taken backup goes now rather than at the next run.
  let recorded = false;
  const forget = onInterrupt(() => {
    if (!recorded) rmSync(dir, { recursive: true, force: true });
    rmSync(verifyDir, { recursive: true, force: true });
  });
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
      // A checksum failure makes pg_basebackup exit 1 at the very end; without this it would delete a backup
      // that is otherwise complete (see checksumFailures below).
      '--no-clean',
      '-l',
      opts.label ?? `edupulse-db ${id}`,
      '-P',
    ];
    if (opts.compression !== 'none') args.push(`--compress=${opts.compression}`);
    // Capability-checked: PostgreSQL 15/16 have no incremental backups, so the request takes a full one.
    const parent =
      opts.incremental && canIncremental(facts.major) ? incrementalParent(ctx.repo.list('physical'), facts) : undefined;
    if (parent) args.push(`--incremental=${join(ctx.repo.backupDir('physical', parent.id), 'backup_manifest')}`);
    if (opts.maxRate) args.push(`--max-rate=${opts.maxRate}`);
    // base.tar is hashed as pg_basebackup writes it, so its verification overlaps the transfer.
    let writing = true;
    const hashing = hashBaseTarWhileWritten(dir, () => writing).then(
      (h) => h,
      (err: unknown) => {
        ctx.logger.log({ event: 'warn', message: `hashing base.tar while written: ${(err as Error).message}` });
        return undefined;
      },
    );
    const taken = await run(ctx.pg.bin('pg_basebackup'), args, {
      nothrow: true,
      as: ctx.as,
      env: pgEnv(opts.fromStandby ? { ...ctx.backupLogin, port: opts.fromStandby.port } : ctx.backupLogin),
      logger: ctx.logger,
      dieWithParent: true,
      onStderr: (chunk) => {
        const m = /(\d+)\/(\d+) kB/.exec(chunk.split('\r').filter(Boolean).pop() ?? '');
        if (m) opts.onProgress?.(Number(m[1]) * 1024, Number(m[2]) * 1024);
      },
    }).finally(() => {
      writing = false;
    });
    const hashed = await hashing;
    const checksumFailures =
      taken.code === 0 ? [] : await acceptChecksumFailures(ctx, dir, taken, facts.walSegmentBytes);
    // pg_basebackup compresses base.tar (server-side) but streams pg_wal.tar as it is: compress it like the archive.
    if (opts.compression !== 'none' && existsSync(join(dir, 'pg_wal.tar')))
      await zstdFile(join(dir, 'pg_wal.tar'), opts.walZstdLevel ?? 1, ctx.as);
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
      hashed,
    });
    if (verified.problems.length) {
      throw failed(`backup ${id} does not match its manifest:\n${verified.problems.slice(0, 10).join('\n')}`);
    }
    const verifySeconds = (performance.now() - v0) / 1000;
    // Encryption at rest: the verified tar files become age files; the manifest holds names, sizes and checksums only.
    const { recipients } = ctx.settings.backup.encryption;
    if (recipients.length)
      for (const name of readdirSync(dir).filter((f) => /^(base|pg_wal)\.tar/.test(f)))
        await encryptFile(join(dir, name), recipients, ctx.as);

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
      ...recordHead(begun, 'physical', opts.label),
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
        ...(parent ? { incremental: { parent: parent.id } } : {}),
        ...(opts.fromStandby ? { fromStandby: opts.fromStandby } : {}),
      },
      sizes: { rawBytes, storedBytes: files.reduce((s, f) => s + f.bytes, 0) },
      throughputMBps: rawBytes / 1048576 / backupSeconds,
      files,
      verification: { tool: STREAM_VERIFY_TOOL, ok: true, seconds: verifySeconds },
      ...(checksumFailures.length ? { checksumFailures } : {}),
      ...(recipients.length ? { encryption: { tool: 'age' as const, recipients } } : {}),
    };
    ctx.repo.writeRecord(record);
    recorded = true;
    return record;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    forget();
    rmSync(verifyDir, { recursive: true, force: true });
  }
}
