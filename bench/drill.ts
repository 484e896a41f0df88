// npm run bench:drill: the RTO proper (start of a drill to a promoted,
// queryable scratch server) from a base backup of at least 1 GB with at least
// 256 MB of WAL to replay, against the floor measured in the same run: plain
// tar extraction plus PostgreSQL's own replay to the same target, no toolkit.
// The drill's verification time is reported beside it, separately.
import { localRestoreCommand } from '../ops-scripts/lib/backup/wal-store.ts';
import { tarArgs } from '../ops-scripts/lib/backup/extract.ts';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { declarations } from '../roles/declarations.ts';
import { backupContext } from '../ops-scripts/lib/backup/context.ts';
import { runBackup } from '../ops-scripts/lib/backup/job.ts';
import { startCluster, stopCluster } from '../ops-scripts/lib/cluster.ts';
import { withClient } from '../ops-scripts/lib/db.ts';
import { drill } from '../ops-scripts/lib/drill/drill.ts';
import { archiveUpToNow } from '../ops-scripts/lib/restore/archive-now.ts';
import { ensurePrivateDir } from '../ops-scripts/lib/files.ts';
import { migratorConfig } from '../migrations/engine/migrate.ts';
import { freePort } from '../ops-scripts/lib/ports.ts';
import { restore } from '../ops-scripts/lib/restore/restore.ts';
import { run } from '../ops-scripts/lib/run.ts';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { seed } from '../ops-scripts/lib/seed/load.ts';
import { startTestStack } from '../test/harness.ts';

const STUDENTS = Number(process.env.BENCH_STUDENTS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const stack = await startTestStack();
try {
  const secrets = readSecrets(stack.ctx.paths.secretsFile)!;
  const owner = migratorConfig(stack.pg, secrets.roles[declarations.migrator]!);
  await seed(owner, { seed: 'bench', students: STUDENTS, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  const ctx = backupContext(stack.ctx, { ...process.env, ...stack.env });
  const backup = (await runBackup(ctx, { type: 'physical', keep: { physical: 1, logical: 1 } })).record;
  // WAL to replay: rewrite every grade (full-page images after the backup's checkpoint, then the rows).
  const walBytes = await withClient(stack.pg, async (c) => {
    const before = (await c.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l;
    await c.query('UPDATE grades SET grade_value = grade_value');
    return Number((await c.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS d', [before])).rows[0].d);
  });
  await withClient(stack.pg, (c) =>
    c.query("INSERT INTO edupulse_meta.drill_canaries (drill_id, side) VALUES ('bench', 'before')"),
  );
  await sleep(50);
  const target = await withClient(
    stack.pg,
    async (c) => (await c.query('SELECT clock_timestamp() AS t')).rows[0].t as Date,
  );
  await sleep(50);
  await withClient(stack.pg, (c) =>
    c.query("INSERT INTO edupulse_meta.drill_canaries (drill_id, side) VALUES ('bench', 'after')"),
  );
  await archiveUpToNow(stack.pg);
  console.log(
    `bench:drill: base backup ${(backup.sizes.rawBytes / 1048576).toFixed(0)} MB (${backup.physical!.compression}), ` +
      `${(walBytes / 1048576).toFixed(0)} MB of WAL to replay, target ${target.toISOString()}, ${ROUNDS} rounds`,
  );

  const floor: number[] = [],
    ours: number[] = [],
    verify: number[] = [];
  const breakdown: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Floor: tar, a minimal recovery configuration, pg_ctl start, wait for promotion.
    const dir = mkdtempSync(join(stack.ctx.paths.root, 'floor-'));
    ensurePrivateDir(dir, stack.ctx.as);
    const data = join(dir, 'data');
    const port = await freePort();
    const t0 = performance.now();
    ensurePrivateDir(data, stack.ctx.as);
    const bdir = ctx.repo.backupDir('physical', backup.id);
    await run('tar', ['-x', '-I', 'zstd', '-f', join(bdir, 'base.tar.zst'), '-C', data], { as: stack.ctx.as });
    ensurePrivateDir(join(data, 'pg_wal'), stack.ctx.as);
    const walTar = readdirSync(bdir).find((f) => f.startsWith('pg_wal.tar'))!;
    await run('tar', ['-x', ...tarArgs(walTar), '-f', join(bdir, walTar), '-C', join(data, 'pg_wal')], {
      as: stack.ctx.as,
    });
    writeFileSync(
      join(data, 'edupulse.conf'),
      `port = ${port}\nunix_socket_directories = ''\nlisten_addresses = '127.0.0.1'\narchive_mode = off\n` +
        `restore_command = '${localRestoreCommand(ctx.repo.walDir).replace(/'/g, "''")}'\nrecovery_target_time = '${target.toISOString().replace('T', ' ').replace('Z', '+00')}'\nrecovery_target_action = promote\n`,
    );
    writeFileSync(join(data, 'recovery.signal'), '');
    await run('chown', [
      '-R',
      `${stack.ctx.as?.uid ?? process.getuid!()}:${stack.ctx.as?.gid ?? process.getgid!()}`,
      data,
    ]);
    const spec = { pg: stack.ctx.pg, dataDir: data, logFile: join(dir, 'log'), port, as: stack.ctx.as };
    await startCluster(spec);
    const conn = { ...stack.pg, port, database: 'postgres' };
    while (
      await withClient(conn, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r).catch(
        () => true,
      )
    )
      await sleep(50);
    floor.push((performance.now() - t0) / 1000);
    await stopCluster(spec, 'immediate');
    rmSync(dir, { recursive: true, force: true });

    // Ours: the drill's restore (choose, extract, configure, start, wait for promotion), then its verification.
    const d0 = performance.now();
    const scratch = join(stack.ctx.paths.root, `ours-${round}`);
    const r = await restore(ctx, {
      target: { kind: 'time', time: target },
      to: join(scratch, 'data'),
      start: true,
      liveDataDir: stack.ctx.paths.dataDir,
      superuser: { user: secrets.postgres.superuser, password: secrets.postgres.password },
    });
    ours.push((performance.now() - d0) / 1000);
    breakdown.push(
      `choose ${r.timings.chooseSeconds.toFixed(2)}s, extract ${r.timings.extractSeconds.toFixed(2)}s, replay ${r.timings.replaySeconds?.toFixed(2)}s (${((r.replayedWalBytes ?? 0) / 1048576).toFixed(0)} MB), promote ${r.timings.promoteSeconds?.toFixed(2)}s`,
    );
    await stopCluster(r.spec, 'immediate');
    rmSync(scratch, { recursive: true, force: true });
    const full = await drill(ctx, {
      targetTime: { time: target },
      scratchRoot: join(stack.ctx.paths.root, 'drills'),
      liveDataDir: stack.ctx.paths.dataDir,
      superuser: { user: secrets.postgres.superuser, password: secrets.postgres.password },
      database: 'edupulse',
    });
    verify.push(full.rto.verifySeconds ?? NaN);
    console.log(
      `round ${round + 1}: floor ${floor[round]!.toFixed(2)}s, ours ${ours[round]!.toFixed(2)}s (${breakdown[round]}); full drill ${
        full.passed
          ? 'passed'
          : `FAILED: ${full.checks
              .filter((c) => c.status !== 'passed')
              .map((c) => `${c.name}: ${c.detail}`)
              .join('; ')}`
      }, verification ${verify[round]!.toFixed(2)}s`,
    );
  }
  const f = median(floor),
    o = median(ours);
  console.log(
    `\nRTO proper: ours ${o.toFixed(2)}s vs floor ${f.toFixed(2)}s = ${(o / f).toFixed(3)}x (target <= 1.10x); verification ${median(verify).toFixed(2)}s beside it`,
  );
} finally {
  await stack.stop();
}
