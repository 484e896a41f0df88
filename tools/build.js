// npm run build (and `npm ci`, through prepare): compile the TypeScript the
// jobs, the Pulumi providers and restore_command run into dist/, fresh each
// time, then stamp it. bin/edupulse-db.js runs dist/ only while no source is
// newer than the stamp. `--no-check` emits without type checking (the test
// command has just type-checked the whole tree).
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { BUILD_STAMP } from './fresh.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
const args = [
  tsc,
  '-p',
  join(root, 'tsconfig.build.json'),
  ...(process.argv.includes('--no-check') ? ['--noCheck'] : []),
];
const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
if (r.status !== 0) process.exit(r.status ?? 1);
writeFileSync(join(root, 'dist', BUILD_STAMP), `${new Date().toISOString()}\n`);
