// PostgreSQL's client tools get the password in their own environment
// (PGPASSWORD), never on argv and never in a file: a passfile in a temp
// directory outlived a job killed with SIGKILL, leaving the backup login's
// password on disk. A process's environment is readable only by its own user
// and root (/proc/<pid>/environ is 0400) and goes with the process.
import type { PgConfig } from './db.ts';

/** The environment for a client tool connecting as `config` (pass it to run() as `env`). */
export function pgEnv(config: PgConfig): Record<string, string> {
  return {
    PGPASSWORD: String(config.password ?? ''),
    PGHOST: String(config.host),
    PGPORT: String(config.port),
    PGUSER: String(config.user),
    // A passfile or service file from the invoking user's environment must not override ours.
    PGPASSFILE: '/dev/null',
    PGSERVICEFILE: '/dev/null',
  };
}
