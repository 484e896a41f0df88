// npm run bench:startup: how long a job takes to start, side by side in one
// run: `node -e 0` (the floor), `edupulse-db status --help` from the compiled
// build, the same through tsx (what every job paid before the build), and the
// per-segment WAL command PostgreSQL runs as restore_command (`wal:fetch` of a
// segment the store does not hold, against a local S3 server: the SDK load and
// one request, which is also what recovery pays at the end of the archive).
// Median of 10 runs each.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { PROJECT_ROOT } from '../ops-scripts/lib/state.ts';
import { freePort } from '../test/harness.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const bin = join(PROJECT_ROOT, 'bin', 'edupulse-db.js');

const build = spawnSync(process.execPath, [join(PROJECT_ROOT, 'tools/build.js')], { stdio: 'inherit' });
if (build.status !== 0) throw new Error('build failed');

/** Asynchronous: the S3 server answering wal:fetch runs in this process. */
async function time(args: string[], env: Record<string, string> = {}, expect = 0): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    out.push((performance.now() - t0) / 1000);
    if (code !== expect) throw new Error(`${args.join(' ')} exited ${code}: ${stderr}`);
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'edupulse-startup-'));
const port = await freePort();
const server = new S3rver({ port, address: '127.0.0.1', silent: true, directory: join(dir, 's3') });
await server.run();
try {
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
  client.destroy();
  const s3env = {
    EDUPULSE_REPO_MODE: 'copy',
    EDUPULSE_S3_ENDPOINT: endpoint,
    EDUPULSE_S3_BUCKET: 'bench',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const rows: Array<[string, number[]]> = [
    ['node -e 0', await time(['-e', '0'])],
    ['edupulse-db status --help (compiled)', await time([bin, 'status', '--help'])],
    [
      'status --help through tsx (before the build)',
      await time(['--import', 'tsx', join(PROJECT_ROOT, 'ops-scripts', 'status.ts'), '--help']),
    ],
    [
      'edupulse-db wal:fetch <missing segment> (compiled, one S3 request)',
      await time([bin, 'wal:fetch', '0000000100000000000000FF', join(dir, 'x')], s3env, 1),
    ],
    [
      'wal:fetch <missing segment> through tsx',
      await time(
        [
          '--import',
          'tsx',
          join(PROJECT_ROOT, 'ops-scripts', 'wal-fetch.ts'),
          '0000000100000000000000FF',
          join(dir, 'x'),
        ],
        s3env,
        1,
      ),
    ],
  ];
  const floor = median(rows[0]![1]);
  console.log(`| command | median | x node -e 0 | runs |\n|---|---|---|---|`);
  for (const [name, xs] of rows) {
    console.log(
      `| ${name} | ${median(xs).toFixed(3)} s | ${(median(xs) / floor).toFixed(2)}x | ${xs.map((x) => x.toFixed(3)).join(' ')} |`,
    );
  }
  const bin1 = median(rows[1]![1]);
  console.log(
    `\ntarget: bin <= 0.35 s and <= 2.5x node -e 0: ${bin1 <= 0.35 && bin1 / floor <= 2.5 ? 'met' : 'NOT met'} (${bin1.toFixed(3)} s, ${(bin1 / floor).toFixed(2)}x)`,
  );
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
