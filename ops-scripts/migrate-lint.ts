// npm run migrate:lint: flag dangerous migration patterns before they run.
import { existsSync, statSync } from 'node:fs';
import { command, outcome } from './lib/cli.ts';
import { badInput } from './lib/errors.ts';
import { MIGRATIONS_DIR } from '../migrations/engine/migrate.ts';
import { lintMigrations, RULES } from './lib/migration-lint.ts';

const usage = `Usage: edupulse-db migrate:lint [<dir>] [--json]

Renders each migration's up() to SQL with node-pg-migrate (applies nothing) and
flags squawk's dangerous patterns: ${Object.keys(RULES).join(', ')}.
A reviewed exception is a comment in the migration:
  // migrate-lint: allow <rule> -- <why it is safe here>
Exit 0 when nothing unallowed is found, 1 otherwise.`;

await command({ name: 'migrate:lint', usage, positionals: { max: 1, name: 'directory' } }, async ({ args }) => {
  const dir = args._[0] ?? MIGRATIONS_DIR;
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw badInput(
      `${dir} is not a directory of migrations`,
      'give the folder that holds them, or nothing for migrations/',
    );
  const findings = await lintMigrations(dir);
  const bad = findings.filter((f) => !f.allowed);
  return outcome(
    { findings },
    () =>
      [
        ...findings.map(
          (f) => `${f.allowed ? 'allowed' : 'ERROR  '} ${f.migration}: ${f.rule}\n  ${f.statement}\n  ${f.message}`,
        ),
        bad.length ? `${bad.length} problem(s) in ${dir}` : `migrations in ${dir}: no problems`,
      ].join('\n'),
    bad.length ? 1 : 0,
  );
});
