#!/usr/bin/env node
// The one command-line entry for cron lines, systemd units and people:
// `edupulse-db <job> [flags]` runs ops-scripts/<job>.ts with the same flags
// as `npm run <job> -- [flags]` (a job named a:b lives in a-b.ts).
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

const scripts = join(dirname(fileURLToPath(import.meta.url)), '..', 'ops-scripts');
const jobs = readdirSync(scripts).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3).replace(/-/g, ':')).sort();
const [job, ...rest] = process.argv.slice(2);

if (!job || job === '--help' || job === '-h') {
  process.stdout.write(`Usage: edupulse-db <job> [flags]   (edupulse-db <job> --help for each)\n\nJobs: ${jobs.join(', ')}\n`);
  process.exit(job ? 0 : 2);
}
const script = join(scripts, `${job.replace(/:/g, '-')}.ts`);
if (!/^[a-z:-]+$/.test(job) || !existsSync(script)) {
  process.stderr.write(`edupulse-db: unknown job "${job}"\n  hint: one of ${jobs.join(', ')}\n`);
  process.exit(2);
}
process.argv = [process.argv[0], script, ...rest];
register();
await import(pathToFileURL(script).href);
