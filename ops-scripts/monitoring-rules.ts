// npm run monitoring:rules: the Prometheus alerting rules, rendered from the settings.
import { command } from './lib/cli.ts';
import { settingsFromEnv } from './lib/settings.ts';
import { renderRules } from '../monitoring/rules.ts';

const usage = `Usage: edupulse-db monitoring:rules

Prints the Prometheus alerting rules for the metrics the jobs write (backups,
drills, vacuum, the WAL archive, health), with the thresholds of
infra/settings.ts that health grades with. Save the output where Prometheus's
rule_files points; checked with promtool (check rules, test rules) by npm test.`;

await command({ name: 'monitoring:rules', usage }, async ({ out }) => {
  out(renderRules(settingsFromEnv()));
});
