// restore_command for a restore from the object store: fetch one WAL segment
// (or history file) into the path PostgreSQL gives. Exit 1 when the store
// does not have it (the normal end of archive recovery), quietly; any other
// failure exits 126, which makes PostgreSQL stop recovery with an error
// instead of taking it for the end of the archive and promoting early.
import { rmSync } from 'node:fs';
import { command } from './lib/cli.ts';
import { RemoteStore, remoteSettings } from './lib/backup/remote.ts';
import { badInput } from './lib/errors.ts';
import { WAL_NAME_RE, walPath, walStoredForms } from './lib/backup/layout.ts';
import { settingsFromEnv } from './lib/settings.ts';
import { unpackWal } from './lib/backup/wal-store.ts';
import { dirname, join } from 'node:path';

const usage = `Usage: edupulse-db wal:fetch <file> <path>

Used as restore_command ("... wal:fetch %f %p") by restores from the object
store (EDUPULSE_REPO_MODE=copy|remote with EDUPULSE_S3_*). Exit 0 when the
file was written to <path>, 1 when the store does not hold it, 126 on any
other failure (bad arguments, settings, or the store unreachable): PostgreSQL
then ends recovery with an error rather than promoting at a segment it could
not fetch.`;

await command(
  { name: 'wal:fetch', usage, positionals: { min: 2, max: 2, name: 'argument' }, errorExitCode: 126 },
  async ({ args }) => {
    const [file, path] = args._;
    if (!file || !path || !WAL_NAME_RE.test(file))
      throw badInput('needs a WAL file name and a target path: wal:fetch <file> <path>');
    const settings = remoteSettings();
    if (!settings) throw badInput('needs EDUPULSE_REPO_MODE=copy or remote and EDUPULSE_S3_*');
    const store = new RemoteStore(settings);
    try {
      // Compressed as the archive stores it, or plain in a store written before compression.
      const identity = settingsFromEnv().backup.encryption.identityFile;
      for (const stored of walStoredForms(file)) {
        if (!(await store.head(walPath(stored)))) continue;
        // Named to end as the stored name does: unpackWal decompresses by the .zst suffix.
        const download = join(dirname(path), `.download-${process.pid}-${stored}`);
        try {
          await store.download(walPath(stored), download);
          await unpackWal(download, path, { identityFile: identity });
        } catch (err) {
          rmSync(path, { force: true });
          throw err;
        } finally {
          rmSync(download, { force: true });
        }
        return 0;
      }
      return 1;
    } finally {
      store.close();
    }
  },
);
