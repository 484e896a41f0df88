// The backup repository on disk (its layout: ./layout.ts).
// backup.json is written last (temp file, fsync, rename): a directory without
// it is not a backup. Directories 0700, files 0600.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { badInput } from '../errors.ts';
import { ensurePrivateDir, writeFileAtomic } from '../files.ts';
import type { OsUser } from '../run.ts';
import type { Fingerprints } from './fingerprint.ts';
import { HISTORY_RE, parseHistory, type HistoryEntry } from './wal.ts';
import { backupPath, LAYOUT, walIndex, walStoredForms } from './layout.ts';

export const BACKUP_KINDS = ['physical', 'logical'] as const;
export type BackupKind = (typeof BACKUP_KINDS)[number];

export interface ChecksumFailure {
  /** The file in the data directory, e.g. base/16384/16579. */
  file: string;
  block: number;
  /** The relation it belongs to, when the server could name it. */
  relation?: string;
}

export interface BackupFile {
  name: string;
  bytes: number;
  sha256: string;
}

export interface BackupRecord {
  format: 1;
  id: string;
  kind: BackupKind;
  label: string;
  status: 'complete';
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  server: { version: string; major: number; systemIdentifier: string; walSegmentBytes: number };
  physical?: {
    startLsn: string;
    stopLsn: string;
    timeline: number;
    startSegment: string;
    stopSegment: string;
    /** When pg_basebackup ended: the earliest time a restore from this backup can reach. */
    endedAt: string;
    compression: string;
    checkpoint: string;
    walIncluded: boolean;
    /** An incremental backup (PostgreSQL 17+, incremental.ts): the backup it builds on. */
    incremental?: { parent: string };
    /** Taken from a standby (backup --from-standby) to keep the load off the primary: its name and port. */
    fromStandby?: { name: string; port: number };
  };
  logical?: { database: string; tool: 'pg_dump -Fc'; entries: number; tables: Fingerprints };
  sizes: { rawBytes: number; storedBytes: number };
  throughputMBps: number;
  files: BackupFile[];
  verification: { tool: string; ok: boolean; seconds: number };
  /**
   * Pages whose checksum failed while the backup read them (the same pages are damaged on the
   * server): the backup is still complete and restorable, the job exits 1 and health goes critical.
   */
  checksumFailures?: ChecksumFailure[];
  /** Encrypted at rest (crypt.ts): the stored tar files / dump are age files for these recipients. */
  encryption?: { tool: 'age'; recipients: string[] };
}

export const RECORD_FILE = LAYOUT.record;

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Ids sort by time: 20261124T231500Z. */
export function newBackupId(now = new Date()): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

export class LocalRepository {
  constructor(
    readonly root: string,
    readonly owner?: OsUser,
  ) {}

  get walDir(): string {
    return join(this.root, LAYOUT.wal);
  }
  kindDir(kind: BackupKind): string {
    return join(this.root, LAYOUT.kinds[kind]);
  }
  backupDir(kind: BackupKind, id: string): string {
    return join(this.root, backupPath(kind, id));
  }

  /** Creates the layout; a repository path that is a file is bad input. */
  ensureLayout(): void {
    for (const p of [this.root, this.walDir, this.kindDir('physical'), this.kindDir('logical')]) {
      if (existsSync(p) && !statSync(p).isDirectory()) {
        throw badInput(`the backup repository path ${p} is not a directory`, 'point EDUPULSE_REPO_DIR at a directory');
      }
    }
    for (const p of [this.root, this.walDir, this.kindDir('physical'), this.kindDir('logical')])
      ensurePrivateDir(p, this.owner);
  }

  private entries(kind: BackupKind): string[] {
    const dir = this.kindDir(kind);
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  }

  /** Every complete backup (backup.json present), oldest first. */
  list(kind?: BackupKind): BackupRecord[] {
    const out: BackupRecord[] = [];
    for (const k of kind ? [kind] : BACKUP_KINDS) {
      for (const id of this.entries(k)) {
        const f = join(this.backupDir(k, id), RECORD_FILE);
        if (existsSync(f)) out.push(JSON.parse(readFileSync(f, 'utf8')) as BackupRecord);
      }
    }
    return out.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  }

  /** Directories without backup.json: runs that did not finish. */
  partials(): Array<{ kind: BackupKind; id: string }> {
    return BACKUP_KINDS.flatMap((kind) =>
      this.entries(kind)
        .filter((id) => !existsSync(join(this.backupDir(kind, id), RECORD_FILE)))
        .map((id) => ({ kind, id })),
    );
  }

  find(id: string): BackupRecord | undefined {
    return this.list().find((r) => r.id === id);
  }

  writeRecord(r: BackupRecord): void {
    writeFileAtomic(join(this.backupDir(r.kind, r.id), RECORD_FILE), JSON.stringify(r, null, 2) + '\n', {
      mode: 0o600,
      owner: this.owner,
    });
  }

  remove(kind: BackupKind, id: string): void {
    // backup.json goes first: a half-removed backup is then no longer listed as one.
    rmSync(join(this.backupDir(kind, id), RECORD_FILE), { force: true });
    rmSync(this.backupDir(kind, id), { recursive: true, force: true });
  }

  /** The archived WAL files by name, each with the stored name holding it (layout.ts walIndex). */
  walIndex(): Map<string, string> {
    return walIndex(existsSync(this.walDir) ? readdirSync(this.walDir) : []);
  }

  /** The archived WAL file names (segments whether stored compressed or not, history files), sorted. */
  walFiles(): string[] {
    return [...this.walIndex().keys()].sort();
  }

  /** Where the archived WAL file `name` is stored, if it is. */
  walStoredPath(name: string): string | undefined {
    for (const f of walStoredForms(name)) if (existsSync(join(this.walDir, f))) return join(this.walDir, f);
    return undefined;
  }

  histories(): Map<number, HistoryEntry[]> {
    const out = new Map<number, HistoryEntry[]>();
    for (const f of this.walFiles()) {
      const m = HISTORY_RE.exec(f);
      if (m) out.set(parseInt(m[1]!, 16), parseHistory(readFileSync(join(this.walDir, f), 'utf8')));
    }
    return out;
  }
}
