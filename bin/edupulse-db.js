#!/usr/bin/env node
// The one command-line entry for cron lines, systemd units, restore_command
// and people: `edupulse-db <job> [flags]` runs the job with the same flags as
// `npm run <job> -- [flags]` (a job named a:b lives in ops-scripts/a-b.ts).
//
// It runs the compiled JavaScript in dist/ (built by `npm ci` through the
// prepare script, or `npm run build`), which starts in a fraction of the time
// tsx needs; when a source file is newer than the build (a checkout being
// edited), it runs the TypeScript source through tsx instead, so a stale build
// never runs.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildIsFresh } from '../tools/fresh.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = join(root, 'ops-scripts');
const jobs = readdirSync(sources)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3).replace(/-/g, ':'))
  .sort();
const [job, ...rest] = process.argv.slice(2);

if (!job || job === '--help' || job === '-h') {
  process.stdout.write(
    `Usage: edupulse-db <job> [flags]   (edupulse-db <job> --help for each)\n\nJobs: ${jobs.join(', ')}\n`,
  );
  process.exit(job ? 0 : 2);
}
const file = `${job.replace(/:/g, '-')}`;
if (!/^[a-z:-]+$/.test(job) || !existsSync(join(sources, `${file}.ts`))) {
  process.stderr.write(`edupulse-db: unknown job "${job}"\n  hint: one of ${jobs.join(', ')}\n`);
  process.exit(2);
}

const fresh = buildIsFresh(root);
const script = fresh ? join(root, 'dist', 'ops-scripts', `${file}.js`) : join(sources, `${file}.ts`);
process.argv = [process.argv[0], script, ...rest];
if (!fresh) (await import('tsx/esm/api')).register();
await import(pathToFileURL(script).href);
