// PostgreSQL's client tools take the password from a passfile (0600, in a
// private temp dir, removed afterwards), named by PGPASSFILE: never argv.
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PgConfig } from './db.ts';
import type { OsUser } from './run.ts';

const esc = (v: string) => v.replace(/([\\:])/g, '\\$1');

export async function withPassfile<T>(config: PgConfig, as: OsUser | undefined, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-pass-'));
  const file = join(dir, 'pgpass');
  try {
    writeFileSync(file, `${esc(String(config.host))}:${config.port}:*:${esc(String(config.user))}:${esc(String(config.password ?? ''))}\n`, { mode: 0o600 });
    if (as) { chownSync(dir, as.uid, as.gid); chownSync(file, as.uid, as.gid); }
    return await fn({ PGPASSFILE: file, PGHOST: String(config.host), PGPORT: String(config.port), PGUSER: String(config.user) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
