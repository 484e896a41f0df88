// npm run bench:upload: our verified upload (streamed hashing, multipart,
// size and ETag checked after) against a bare @aws-sdk/lib-storage upload of
// the same 1 GB file to a local S3 server (s3rver), side by side in one run.
import { createReadStream, mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { RemoteStore } from '../ops-scripts/lib/backup/remote.ts';
import { freePort } from '../test/harness.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const MB = Number(process.env.BENCH_MB ?? 1024);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), 'edupulse-upload-'));
const file = join(dir, 'backup.bin');
const fd = openSync(file, 'w');
for (let i = 0; i < MB; i++) writeSync(fd, randomBytes(1048576));
closeSync(fd);
const port = await freePort();
const server = new S3rver({ port, address: '127.0.0.1', silent: true, directory: join(dir, 's3') });
await server.run();
const endpoint = `http://127.0.0.1:${port}`;
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
const client = new S3Client({
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
await client.send(new CreateBucketCommand({ Bucket: 'edupulse-bench' }));
const store = new RemoteStore({
  endpoint,
  region: 'us-east-1',
  bucket: 'edupulse-bench',
  prefix: 'bench/',
  mode: 'copy',
});
const bare: number[] = [],
  ours: number[] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    let t0 = performance.now();
    await new Upload({
      client,
      params: {
        Bucket: 'edupulse-bench',
        Key: `bare/${round}`,
        Body: createReadStream(file, { highWaterMark: 1 << 20 }),
      },
      partSize: 8 * 1048576,
      queueSize: 4,
    }).done();
    bare.push((performance.now() - t0) / 1000);
    t0 = performance.now();
    await store.upload(file, `ours/${round}`);
    ours.push((performance.now() - t0) / 1000);
    console.log(`round ${round + 1}: bare ${bare[round]!.toFixed(2)}s, ours ${ours[round]!.toFixed(2)}s`);
  }
  const b = median(bare),
    o = median(ours);
  console.log(
    `${MB} MB: bare lib-storage ${(MB / b).toFixed(0)} MB/s, ours (hashing + verify) ${(MB / o).toFixed(0)} MB/s, ratio ${(b / o).toFixed(3)}x (target >= 0.95x)`,
  );
} finally {
  store.close();
  client.destroy();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
