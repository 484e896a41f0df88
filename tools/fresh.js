// Whether dist/ (built by tools/build.js) is as new as the TypeScript it is
// made from. The bin runs dist/ only while it is; the Pulumi program, run
// from dist/, refuses to run otherwise. One definition for both.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The stamp tools/build.js writes last, inside dist/. */
export const BUILD_STAMP = '.built';
/** The folders whose .ts and .sql files dist/ is built from. */
export const SOURCE_DIRS = ['ops-scripts', 'infra', 'roles', 'views', 'migrations', 'monitoring'];

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts') || e.name.endsWith('.sql')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** True when <root>/dist exists, is stamped, and no source is newer than the stamp. */
export function buildIsFresh(root) {
  const stamp = join(root, 'dist', BUILD_STAMP);
  if (!existsSync(stamp)) return false;
  const built = statSync(stamp).mtimeMs;
  return SOURCE_DIRS.every((d) => !existsSync(join(root, d)) || newestSource(join(root, d)) <= built);
}
