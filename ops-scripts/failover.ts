// npm run failover: promote a standby of the local stack (switchover when the primary runs, failover when it is down).
import { command, outcome } from './lib/cli.ts';
import { badInput } from './lib/errors.ts';
import { failover } from './lib/failover.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db failover [--to <pgN>] [--force] [--max-lag-bytes N] [--json]

Promotes a standby of the local stack (pg_promote) and makes it the primary:
every job, and PgBouncer (reloaded, not restarted: clients keep the same
port), reach it from then on. When the old primary is running this is a
switchover: it is stopped cleanly first and the standby replays its last WAL,
so nothing is lost. When it is down this is a failover. Either way the old
primary is then rewound with pg_rewind and started as a standby of the new
one, or reported as needing a rebuild (remove its data directory and run up).
What happened is recorded in <state>/pg/topology.json.

  --to <pgN>          the standby to promote (default: the one furthest along)
  --force             promote even when the standby lags more than the limit,
                      or is not streaming (acknowledged commits may be lost)
  --max-lag-bytes N   the lag limit (default: the health check's warning
                      threshold, 16 MB)
  --json              print the result as JSON

Exit 2: no standby, or no such standby. Exit 3: the standby lags or is not
streaming (without --force), or is not running; nothing is changed then.`;

await command(
  { name: 'failover', usage, boolean: ['force'], string: ['to', 'max-lag-bytes'] },
  async ({ args, logger }) => {
    const raw = args['max-lag-bytes'];
    if (raw !== undefined && !/^\d+$/.test(String(raw)))
      throw badInput(`--max-lag-bytes "${raw}" is not a whole number of bytes`, 'for example --max-lag-bytes 16777216');
    const ctx = await resolveStack({ logger });
    const r = await failover(ctx, {
      ...(args.to !== undefined ? { to: String(args.to) } : {}),
      force: Boolean(args.force),
      ...(raw !== undefined ? { maxLagBytes: Number(raw) } : {}),
    });
    return outcome(r, () =>
      [
        `${r.kind}: ${r.to} is the primary (timeline ${r.timeline}) in place of ${r.from}` +
          (r.lagBytes !== null ? `; it was ${r.lagBytes} bytes behind` : ''),
        `  pgbouncer: ${r.pooler}`,
        `  ${r.from}: ${r.oldPrimary === 'rejoined' ? `rewound and streaming from ${r.to}` : (r.detail ?? 'needs a rebuild')}`,
        `  synchronous_standby_names: ${r.syncStandbys ? `'${r.syncStandbys}'` : "'' (asynchronous until a standby streams)"}`,
        `  took: stop old ${r.timings.stopOld} ms, promote ${r.timings.promote} ms, repoint ${r.timings.repoint} ms, rejoin ${r.timings.rejoin} ms`,
      ].join('\n'),
    );
  },
);
