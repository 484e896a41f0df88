// npm run monitoring:dashboard: the Grafana dashboard, as importable JSON.
import { command } from './lib/cli.ts';
import { settingsFromEnv } from './lib/settings.ts';
import { renderDashboard } from '../monitoring/dashboard.ts';

const usage = `Usage: edupulse-db monitoring:dashboard

Prints the Grafana dashboard (JSON) for the metrics the jobs write: backup
ages, runs, sizes and durations, WAL waiting for the archiver, the last proven
restore, drill RTO and RPO, vacuum and transaction-id age, health checks.
Import it in Grafana (Dashboards > Import) and choose the Prometheus data
source; thresholds are those of infra/settings.ts.`;

await command({ name: 'monitoring:dashboard', usage }, async ({ out }) => {
  out(renderDashboard(settingsFromEnv()));
});
