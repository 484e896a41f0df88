// npm run apply: make the declared indexes and views real.
import { command, outcome, timeoutFlag } from './lib/cli.ts';
import { migratorTarget } from './lib/migrate-target.ts';
import { reconcile } from '../views/engine/index.ts';

const usage = `Usage: edupulse-db apply [--lock-timeout 5s] [--json]

Applies what \`plan\` shows: CREATE INDEX CONCURRENTLY for missing indexes; a
changed or invalid index is built concurrently under a temporary name and
swapped in; CREATE OR REPLACE VIEW (drop and create in one transaction when
the columns change); drops only objects edupulse-db created and no longer
declares. Every statement runs under lock_timeout. Runs as the owner role.
Exit 0 when every step succeeded, 1 otherwise.`;

await command({ name: 'apply', usage, string: ['lock-timeout'] }, async ({ args }) => {
  timeoutFlag(args, 'lock-timeout');
  const steps = await reconcile(migratorTarget(), { lockTimeout: args['lock-timeout'] as string | undefined });
  return outcome(
    { steps },
    () =>
      steps.length
        ? steps.map((s) => `${s.status.padEnd(7)} ${s.action}${s.detail ? `\n        ${s.detail}` : ''}`).join('\n')
        : 'indexes, views and partitions are as declared; nothing to do',
    steps.some((s) => s.status === 'failed') ? 1 : 0,
  );
});
