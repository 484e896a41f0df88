// Verifying a base backup without an extracted copy: the manifest's own
// checksum, then base.tar read once as a stream (decompressed by the same tool
// that compressed it, in its own process) with every member's size and SHA-256
// checked against the manifest, while the stored file's own SHA-256 (the one
// backup.json records) is taken from the same read. The WAL the backup needs
// is checked by pg_waldump, as pg_verifybackup checks it; only pg_wal.tar (a
// few segments) is unpacked for that. `backup:verify --deep` still extracts
// everything and runs pg_verifybackup.
import { spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { failed } from '../errors.ts';
import { run, type OsUser } from '../run.ts';
import { ensurePrivateDir } from '../files.ts';

/** How backup.json names this verification. */
export const STREAM_VERIFY_TOOL = 'manifest stream check (SHA-256 per file, pg_waldump)';

export interface ManifestFile {
  Path: string;
  Size: number;
  'Checksum-Algorithm'?: string;
  Checksum?: string;
}

export interface BackupManifest {
  Files: ManifestFile[];
  'WAL-Ranges': Array<{ Timeline: number; 'Start-LSN': string; 'End-LSN': string }>;
  'Manifest-Checksum': string;
}

/** Files pg_verifybackup does not expect the manifest to list (they are written or changed after it). */
const NOT_IN_MANIFEST = new Set(['backup_manifest', 'postgresql.auto.conf', 'standby.signal', 'recovery.signal']);

/** The manifest's own SHA-256 covers every byte before its last line (the one holding that checksum). */
export function checkManifestChecksum(text: string): string | undefined {
  const at = text.lastIndexOf('"Manifest-Checksum"');
  if (at < 0) return 'the manifest has no Manifest-Checksum';
  const expected = (JSON.parse(text) as BackupManifest)['Manifest-Checksum'];
  const actual = createHash('sha256').update(text.slice(0, at)).digest('hex');
  return actual === expected ? undefined : `the manifest's checksum is ${actual}, it says ${expected}`;
}

/** The tool that decompresses a stored tar, reading stdin: zstd, lz4, gzip, or none. */
function decompressor(file: string): string[] | undefined {
  if (file.endsWith('.zst')) return ['zstd', '-dcq'];
  if (file.endsWith('.lz4')) return ['lz4', '-dcq'];
  if (file.endsWith('.gz')) return ['gzip', '-dc'];
  return undefined;
}

const octal = (b: Buffer) => parseInt(b.toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);

/**
 * A streaming reader of tar members: calls `onFile(path, size)` for each regular file, feeds its
 * bytes to the hash it returns, and `onEnd(path, hash)` when the member ends.
 */
class TarReader {
  /** A header split across chunks waits here (never more than 511 bytes). */
  private rest: Buffer = Buffer.alloc(0);
  private member: { path: string; left: number; pad: number; hash?: Hash } | undefined;
  ended = false;

  constructor(
    private onFile: (path: string, size: number) => Hash | undefined,
    private onEnd: (path: string, size: number, hash?: Hash) => void,
  ) {}

  write(chunk: Buffer): void {
    // Data is hashed straight from the chunk: nothing is copied but a split header.
    const data = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = Buffer.alloc(0);
    let off = 0;
    while (!this.ended && off < data.length) {
      const m = this.member;
      if (m) {
        if (m.left > 0) {
          const n = Math.min(m.left, data.length - off);
          m.hash?.update(data.subarray(off, off + n));
          off += n;
          m.left -= n;
          if (m.left > 0) return;
        }
        const p = Math.min(m.pad, data.length - off);
        off += p;
        m.pad -= p;
        if (m.pad > 0) return;
        if (m.path) this.onEnd(m.path, 0, m.hash);
        this.member = undefined;
        continue;
      }
      if (data.length - off < 512) {
        this.rest = Buffer.from(data.subarray(off));
        return;
      }
      const h = data.subarray(off, off + 512);
      off += 512;
      if (h.every((b) => b === 0)) {
        this.ended = true;
        return;
      }
      const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      const prefix = h.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
      const size = octal(h.subarray(124, 136));
      const type = String.fromCharCode(h[156]!);
      const path = (prefix ? `${prefix}/${name}` : name).replace(/^\.\//, '');
      const regular = type === '0' || type === '\0';
      this.member = {
        path: regular ? path : '',
        left: size,
        pad: (512 - (size % 512)) % 512,
        hash: regular ? this.onFile(path, size) : undefined,
      };
    }
  }
}

/**
 * Streams `file` (a stored tar, compressed or not) through the tar reader; returns the stored
 * file's own SHA-256.
 */
async function streamTar(file: string, reader: TarReader, growing?: () => boolean): Promise<string> {
  const stored = createHash('sha256');
  const tool = decompressor(file);
  const input = growing ? readGrowing(file, growing) : createReadStream(file, { highWaterMark: 1 << 20 });
  if (!tool) {
    for await (const chunk of input) {
      stored.update(chunk as Buffer);
      reader.write(chunk as Buffer);
    }
    return stored.digest('hex');
  }
  const child = spawn(tool[0]!, tool.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
  const fed = (async () => {
    try {
      for await (const chunk of input) {
        stored.update(chunk as Buffer);
        if (!child.stdin.write(chunk)) await new Promise((r) => child.stdin.once('drain', r));
      }
    } finally {
      child.stdin.end();
    }
  })();
  for await (const chunk of child.stdout) reader.write(chunk as Buffer);
  await fed;
  const code = await exited;
  if (code !== 0) throw failed(`${tool[0]} could not decompress ${file} (exit ${code}): ${stderr.trim()}`);
  return stored.digest('hex');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads a file while another process is still writing it: to its end once `growing()` says the writer is done. */
async function* readGrowing(path: string, growing: () => boolean): AsyncGenerator<Buffer> {
  const fd = await open(path, 'r');
  try {
    for (let pos = 0; ;) {
      // Sampled before the read: a read that finds nothing after the writer finished is the true end.
      const more = growing();
      const buf = Buffer.allocUnsafe(1 << 20);
      const { bytesRead } = await fd.read(buf, 0, buf.length, pos);
      if (bytesRead > 0) {
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
      } else if (!more) return;
      else await sleep(20);
    }
  } finally {
    await fd.close();
  }
}

/** Every regular member of a base.tar, hashed as it was read: size and SHA-256 by path. */
export interface HashedTar {
  file: string;
  /** The stored file's own SHA-256. */
  stored: string;
  members: Map<string, { size: number; sha256: string }>;
  /** Whether the tar's end-of-archive marker was read. */
  ended: boolean;
}

/**
 * Hashes base.tar* in `dir` while pg_basebackup still writes it (until `growing()` is false), so
 * verification overlaps the transfer; streamVerify then compares the result with the manifest.
 * Undefined when no base.tar appeared (the backup failed before sending it).
 */
export async function hashBaseTarWhileWritten(dir: string, growing: () => boolean): Promise<HashedTar | undefined> {
  let file: string | undefined;
  for (;;) {
    const more = growing();
    file = existsSync(dir) ? readdirSync(dir).find((f) => /^base\.tar(\.\w+)?$/.test(f)) : undefined;
    if (file || !more) break;
    await sleep(20);
  }
  if (!file) return undefined;
  const members = new Map<string, { size: number; sha256: string }>();
  const sizes = new Map<string, number>();
  const reader = new TarReader(
    (path, size) => {
      sizes.set(path, size);
      return createHash('sha256');
    },
    (path, _size, hash) => members.set(path, { size: sizes.get(path)!, sha256: hash!.digest('hex') }),
  );
  const stored = await streamTar(join(dir, file), reader, growing);
  return { file, stored, members, ended: reader.ended };
}

export interface StreamVerifyResult {
  /** SHA-256 of each stored file, by name (taken from the same read). */
  stored: Record<string, string>;
  checkedFiles: number;
  problems: string[];
}

/**
 * Checks a tar-format base backup in `dir` against its backup_manifest without extracting the data
 * files; `scratch` receives only pg_wal.tar's contents for pg_waldump.
 */
export async function streamVerify(
  dir: string,
  manifestText: string,
  opts: { pgWaldump: string; scratch: string; as?: OsUser; hashed?: HashedTar },
): Promise<StreamVerifyResult> {
  const problems: string[] = [];
  const manifestProblem = checkManifestChecksum(manifestText);
  if (manifestProblem) problems.push(manifestProblem);
  const manifest = JSON.parse(manifestText) as BackupManifest;
  const expected = new Map(manifest.Files.map((f) => [f.Path, f]));
  const seen = new Set<string>();
  const stored: Record<string, string> = {};
  const names = readdirSync(dir);
  const base = names.find((f) => /^base\.tar(\.\w+)?$/.test(f));
  if (!base) throw failed(`no base.tar file in ${dir}`);

  // A member as the tar holds it, against the manifest: whether its checksum is to be compared...
  const member = (path: string, size: number): boolean => {
    const m = expected.get(path);
    if (!m) {
      if (!NOT_IN_MANIFEST.has(path) && !path.startsWith('pg_wal/'))
        problems.push(`${path}: in the backup but not in the manifest`);
      return false;
    }
    seen.add(path);
    if (m.Size !== size) problems.push(`${path}: ${size} bytes, the manifest says ${m.Size}`);
    return m['Checksum-Algorithm'] === 'SHA256';
  };
  // ...and its SHA-256 against the manifest's.
  const compare = (path: string, actual: string) => {
    const m = expected.get(path);
    if (m?.Checksum && actual !== m.Checksum)
      problems.push(`${path}: SHA-256 ${actual}, the manifest says ${m.Checksum}`);
  };
  let ended: boolean;
  if (opts.hashed && opts.hashed.file === base) {
    // Hashed while pg_basebackup wrote it (hashBaseTarWhileWritten): only the comparison is left.
    for (const [path, h] of opts.hashed.members) if (member(path, h.size)) compare(path, h.sha256);
    stored[base] = opts.hashed.stored;
    ended = opts.hashed.ended;
  } else {
    const reader = new TarReader(
      (path, size) => (member(path, size) ? createHash('sha256') : undefined),
      (path, _size, hash) => hash && compare(path, hash.digest('hex')),
    );
    stored[base] = await streamTar(join(dir, base), reader);
    ended = reader.ended;
  }
  if (!ended) problems.push(`${base} ends before the tar's end-of-archive marker`);
  for (const path of expected.keys())
    if (!seen.has(path)) problems.push(`${path}: in the manifest but not in the backup`);

  // The WAL the backup needs: every record from its start to its end, read by pg_waldump.
  const wal = names.find((f) => /^pg_wal\.tar(\.\w+)?$/.test(f));
  if (!wal) problems.push('no pg_wal.tar: the backup does not hold the WAL it needs');
  else {
    const walDir = join(opts.scratch, 'pg_wal');
    ensurePrivateDir(opts.scratch, opts.as);
    ensurePrivateDir(walDir, opts.as);
    try {
      const walReader = new TarReader(
        () => undefined,
        () => {},
      );
      stored[wal] = await streamTar(join(dir, wal), walReader);
      const tool = decompressor(wal);
      await run('tar', ['-x', ...(tool ? ['-I', tool[0]!] : []), '-f', join(dir, wal), '-C', walDir], {
        as: opts.as,
        dieWithParent: true,
      });
      for (const r of manifest['WAL-Ranges']) {
        const check = await run(
          opts.pgWaldump,
          ['-q', '-t', String(r.Timeline), '-s', r['Start-LSN'], '-e', r['End-LSN'], '-p', walDir],
          { as: opts.as, nothrow: true, dieWithParent: true },
        );
        if (check.code !== 0)
          problems.push(
            `WAL ${r['Start-LSN']}..${r['End-LSN']} does not parse: ${check.stderr.trim().split('\n').pop()}`,
          );
      }
    } finally {
      rmSync(opts.scratch, { recursive: true, force: true });
    }
  }
  return { stored, checkedFiles: seen.size, problems };
}
