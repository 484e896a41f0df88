// npm run health: Postgres, Redis and backup checks, graded against settings.
import { standbyNames } from './lib/standby.ts';
import { command, outcome } from './lib/cli.ts';
import { connections } from './lib/connection.ts';
import { table } from './lib/format.ts';
import { LocalRepository } from './lib/backup/repository.ts';
import {
  poolerChecks,
  postgresChecks,
  redisChecks,
  repositoryChecks,
  healthSamples,
  type Check,
} from './lib/maintenance/health.ts';
import { renderMetrics, writeMetricsFile } from './lib/metrics.ts';
import { declarations } from '../roles/declarations.ts';
import { writeFileAtomic } from './lib/files.ts';
import { healthRecordPath } from './lib/report/report.ts';
import { readSecrets } from './lib/secrets.ts';
import { settingsFromEnv } from './lib/settings.ts';
import { statePaths } from './lib/state.ts';
import { resolveStack } from './lib/stack-context.ts';
import { silentLogger } from './lib/logger.ts';

const usage = `Usage: edupulse-db health [--json | --prometheus]

Postgres (as the monitoring login): SELECT 1 latency, version, uptime,
connections used vs max_connections, longest transaction, blocked queries,
archiver failing since its last success, transaction-id age of the oldest
database, database size, row estimates of the five tables, and (as the
reporting login) the latency of the high/critical latest-predictions query;
each standby's replay lag (critical when one is not streaming) and, with the
pooler on, the clients PgBouncer holds waiting for a server connection.
Redis: authenticated PING latency, used_memory vs maxmemory, evicted keys,
prediction:* keys, persistence status. Backups: age of the newest physical
backup, logical dump and passing drill. Each ok / warn / critical against the
thresholds in infra/settings.ts. Exit 0 when nothing is critical, 1 otherwise.

  --prometheus   print Prometheus text
  --textfile     also write it to <metrics dir>/edupulse_health.prom, and the
                 result to <state>/health.json (what report shows)`;

await command(
  { name: 'health', usage, boolean: ['prometheus', 'textfile'], conflicts: [['json', 'prometheus']] },
  async ({ args, out }) => {
    const settings = settingsFromEnv(process.env);
    const th = settings.maintenance.health;
    const conn = connections();
    const paths = statePaths();
    const roles = readSecrets(paths.secretsFile)?.roles ?? {};
    const login = (user: string) => (roles[user] ? { ...conn.pg, user, password: roles[user] } : undefined);
    const [pg, redis] = await Promise.all([
      postgresChecks(
        login(declarations.monitor) ?? conn.pg,
        login(declarations.reporting),
        th,
        standbyNames(settings.postgres.standbys, paths.primaryNode),
      ),
      redisChecks(conn.redis, settings.redis.cacheKeyPrefix, th),
    ]);
    // The pooler's admin console is reached as the servers' OS user on the local stack's socket.
    const pooler =
      settings.pooler.enabled && conn.source === 'local-stack'
        ? await poolerChecks(await resolveStack({ logger: silentLogger }), th)
        : [];
    const checks: Check[] = [
      ...pg.checks,
      ...pooler,
      ...redis,
      ...repositoryChecks(new LocalRepository(paths.repoDir), th, pg.bornAt),
    ];
    const critical = checks.some((c) => c.level === 'critical');
    const status = critical ? 'critical' : checks.some((c) => c.level === 'warn') ? 'warn' : 'ok';
    if (args.textfile) {
      writeMetricsFile(paths.metricsDir, 'edupulse_health.prom', healthSamples(checks));
      // The record the report is rendered from (owner-only: details name hosts and roles).
      writeFileAtomic(
        healthRecordPath(paths),
        JSON.stringify({ at: new Date().toISOString(), status, checks }, null, 2),
        { mode: 0o600 },
      );
    }
    // --prometheus is its own format (it conflicts with --json): printed here, not rendered by the layer.
    if (args.prometheus) {
      out(renderMetrics(healthSamples(checks)));
      return critical ? 1 : 0;
    }
    return outcome(
      { status, checks },
      () =>
        table([
          ['COMPONENT', 'CHECK', 'LEVEL', 'DETAIL'],
          ...checks.map((c) => [c.component, c.name, c.level.toUpperCase(), c.detail]),
        ]),
      critical ? 1 : 0,
    );
  },
);
