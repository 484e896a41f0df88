// The lock table: jobs that name the same lock exclude each other (exit 3,
// the holder named), others run side by side, and a lock whose directory does
// not exist yet is not taken (a refused job makes no directory).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExitCode, exitCodeFor } from '../../ops-scripts/lib/errors.ts';
import { acquireJobLocks } from '../../ops-scripts/lib/locks.ts';
import { statePaths } from '../../ops-scripts/lib/state.ts';

function withState(fn: (paths: ReturnType<typeof statePaths>) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'edupulse-locks-'));
  try {
    const paths = statePaths({ EDUPULSE_STATE_DIR: root });
    mkdirSync(paths.repoDir);
    fn(paths);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function refusal(fn: () => unknown): { code: number; message: string } | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return { code: exitCodeFor(err), message: (err as Error).message };
  }
}

test('jobs sharing a lock exclude each other, naming the holder; the release lets the next one in', () =>
  withState((paths) => {
    for (const [a, b] of [
      ['backup', 'backup:prune'],
      ['up', 'down'],
      ['drill', 'drill'],
    ] as const) {
      const release = acquireJobLocks(a, `${a} --json`, paths);
      const r = refusal(() => acquireJobLocks(b, b, paths));
      assert.is(r?.code, ExitCode.refused, `${b} while ${a} runs`);
      assert.match(r!.message, new RegExp(`${a} --json is already running \\(pid ${process.pid}`));
      release();
      acquireJobLocks(b, b, paths)();
    }
  }));

test('jobs with different locks run side by side; an unlisted job takes none', () =>
  withState((paths) => {
    const releases = ['up', 'backup', 'drill'].map((j) => acquireJobLocks(j, j, paths));
    assert.is(
      refusal(() => acquireJobLocks('restore', 'restore', paths)()),
      undefined,
    );
    assert.is(
      refusal(() => acquireJobLocks('status', 'status', paths)()),
      undefined,
    );
    assert.equal(
      readdirSync(paths.root)
        .filter((f) => f.endsWith('.lock'))
        .sort(),
      ['drill.lock', 'up.lock'],
    );
    assert.ok(existsSync(join(paths.repoDir, '.backup.lock')));
    for (const release of releases) release();
    assert.equal(
      readdirSync(paths.root).filter((f) => f.endsWith('.lock')),
      [],
      'released locks leave no file',
    );
  }));

test('a lock whose directory does not exist is not taken, and the directory is not made', () => {
  const paths = statePaths({ EDUPULSE_STATE_DIR: join(tmpdir(), 'edupulse-locks-never-made') });
  acquireJobLocks('backup', 'backup', paths)();
  assert.not.ok(existsSync(paths.root));
});

test.run();
