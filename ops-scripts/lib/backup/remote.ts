// The repository's second backend: an S3-compatible object store holding the
// same layout under a prefix (base/<id>/..., logical/<id>/..., wal/...).
// Credentials come from the AWS SDK's own chain (environment, profile,
// instance role), never from flags, and are never printed. Uploads are
// multipart (lib-storage, aborted on failure), hashed as they stream so the
// store's ETag can be checked without reading the file twice.
import { createReadStream, createWriteStream, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import type { S3Client } from '@aws-sdk/client-s3';
import { failed } from '../errors.ts';

// The SDK warns at every client that its releases after January 2027 need Node 22; the version here is pinned.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import type { RepoMode } from '../../../infra/settings.ts';
import { settingsFromEnv } from '../settings.ts';

export type { RepoMode };

export interface RemoteSettings {
  endpoint?: string;
  region: string;
  bucket: string;
  prefix: string;
  mode: RepoMode;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The remote settings from EDUPULSE_S3_* and EDUPULSE_REPO_MODE; undefined when the repository is local only. */
export function remoteSettings(env: Env = process.env): RemoteSettings | undefined {
  const { repoMode, store } = settingsFromEnv(env).backup;
  return store ? { ...store, mode: repoMode } : undefined;
}

const PART = 8 * 1024 * 1024;

/**
 * The ETags a store may give a file uploaded in PART-sized parts: the MD5 of
 * the whole (single part, or stores like s3rver) or AWS's MD5 of the part
 * MD5s. Computed in a worker thread while the upload streams, so the check
 * costs no time on the uploading thread.
 */
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { createReadStream } = require('node:fs');
const whole = createHash('md5'); let part = createHash('md5'); let partBytes = 0; const parts = [];
const PART = workerData.part;
const wantWhole = workerData.scheme !== 'parts', wantParts = workerData.scheme !== 'whole';
createReadStream(workerData.path, { highWaterMark: 1 << 20 }).on('data', (chunk) => {
  if (wantWhole) whole.update(chunk);
  let off = 0;
  while (wantParts && off < chunk.length) {
    const take = Math.min(PART - partBytes, chunk.length - off);
    part.update(chunk.subarray(off, off + take)); partBytes += take; off += take;
    if (partBytes === PART) { parts.push(part.digest()); part = createHash('md5'); partBytes = 0; }
  }
}).on('end', () => {
  const out = [];
  if (wantWhole) out.push(whole.digest('hex'));
  if (wantParts) {
    if (partBytes > 0 || parts.length === 0) parts.push(part.digest());
    out.push(parts.length > 1 ? createHash('md5').update(Buffer.concat(parts)).digest('hex') + '-' + parts.length : parts.length === 1 && !wantWhole ? parts[0].toString('hex') : undefined);
  }
  parentPort.postMessage(out.filter(Boolean));
}).on('error', (e) => { throw e; });
`;

/** Which ETag the store gives multipart uploads: learned from the first verified upload, then only that one is computed. */
type EtagScheme = 'whole' | 'parts' | undefined;

function expectedEtags(path: string, scheme: EtagScheme): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(HASH_WORKER, { eval: true, workerData: { path, part: PART, scheme } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

/** The AWS SDK is loaded on first use (it takes longer to load than a job's own start): --help and local-only runs skip it. */
const loadSdk = async () => ({
  ...(await import('@aws-sdk/client-s3')),
  Upload: (await import('@aws-sdk/lib-storage')).Upload,
});
type Sdk = Awaited<ReturnType<typeof loadSdk>>;

export class RemoteStore {
  private scheme: EtagScheme;
  private sdk?: Sdk;
  private s3?: S3Client;
  constructor(readonly settings: RemoteSettings) {}

  /** The SDK and the client, made on first use. */
  private async api(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.sdk ??= await loadSdk();
    this.s3 ??= new this.sdk.S3Client({
      endpoint: this.settings.endpoint,
      region: this.settings.region,
      forcePathStyle: Boolean(this.settings.endpoint),
      // Checksums only where S3 requires them: S3-compatible stores differ in what they accept.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 5,
    });
    return { sdk: this.sdk, client: this.s3 };
  }

  key(rel: string): string {
    return `${this.settings.prefix}${rel}`;
  }

  private wrap(what: string, err: unknown): never {
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    throw failed(
      `object store ${this.settings.endpoint ?? 's3'} bucket ${this.settings.bucket}: ${what} failed: ${e.name ?? ''} ${e.message ?? ''}`.trim(),
      'check that the store is up and the credentials allow it; the next run retries',
    );
  }

  /** Uploads a file; then checks the stored size and ETag against what was sent. */
  async upload(localPath: string, rel: string): Promise<{ key: string; bytes: number; etag: string }> {
    const key = this.key(rel);
    const size = statSync(localPath).size;
    // A single-part upload's ETag is the file's MD5 everywhere; only multipart ones differ between stores.
    const expected = expectedEtags(localPath, size <= PART ? 'whole' : this.scheme);
    try {
      const { sdk, client } = await this.api();
      const body = createReadStream(localPath, { highWaterMark: 1 << 20 });
      await new sdk.Upload({
        client,
        params: { Bucket: this.settings.bucket, Key: key, Body: body },
        partSize: PART,
        queueSize: 4,
        leavePartsOnError: false,
      }).done();
    } catch (err) {
      await expected.catch(() => {});
      this.wrap(`upload of ${rel}`, err);
    }
    const etags = await expected;
    const head = await this.head(rel);
    const etag = (head?.etag ?? '').replace(/"/g, '');
    if (!head || head.bytes !== size || !etags.includes(etag)) {
      throw failed(
        `upload of ${rel} did not verify: the store holds ${head ? `${head.bytes} bytes, ETag ${etag}` : 'nothing'}, sent ${size} bytes, ETag ${etags.join(' or ')}`,
      );
    }
    if (size > PART) this.scheme = etag.includes('-') ? 'parts' : 'whole';
    return { key, bytes: head.bytes, etag };
  }

  async putText(rel: string, text: string): Promise<void> {
    try {
      const { sdk, client } = await this.api();
      await client.send(
        new sdk.PutObjectCommand({
          Bucket: this.settings.bucket,
          Key: this.key(rel),
          Body: text,
          ContentType: 'application/json',
        }),
      );
    } catch (err) {
      this.wrap(`writing ${rel}`, err);
    }
  }

  async getText(rel: string): Promise<string | undefined> {
    try {
      const { sdk, client } = await this.api();
      const r = await client.send(new sdk.GetObjectCommand({ Bucket: this.settings.bucket, Key: this.key(rel) }));
      return await r.Body!.transformToString();
    } catch (err) {
      if ((this.sdk && err instanceof this.sdk.NoSuchKey) || (err as { name?: string }).name === 'NoSuchKey')
        return undefined;
      return this.wrap(`reading ${rel}`, err);
    }
  }

  async head(rel: string): Promise<{ bytes: number; etag: string } | undefined> {
    try {
      const { sdk, client } = await this.api();
      const r = await client.send(new sdk.HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.key(rel) }));
      return { bytes: r.ContentLength ?? 0, etag: r.ETag ?? '' };
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || (err as { name?: string }).name === 'NotFound') return undefined;
      return this.wrap(`looking up ${rel}`, err);
    }
  }

  /** Object names (relative to the prefix) under `rel`, with their sizes. */
  async list(rel: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    let token: string | undefined;
    try {
      const { sdk, client } = await this.api();
      do {
        const r = await client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.settings.bucket,
            Prefix: this.key(rel),
            ContinuationToken: token,
          }),
        );
        for (const o of r.Contents ?? []) out.set(o.Key!.slice(this.settings.prefix.length), o.Size ?? 0);
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      this.wrap(`listing ${rel}`, err);
    }
    return out;
  }

  /** Like list, with each object's last-modified time. */
  async listDetailed(rel: string): Promise<Map<string, { bytes: number; modified: string }>> {
    const out = new Map<string, { bytes: number; modified: string }>();
    let token: string | undefined;
    try {
      const { sdk, client } = await this.api();
      do {
        const r = await client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.settings.bucket,
            Prefix: this.key(rel),
            ContinuationToken: token,
          }),
        );
        for (const o of r.Contents ?? [])
          out.set(o.Key!.slice(this.settings.prefix.length), {
            bytes: o.Size ?? 0,
            modified: (o.LastModified ?? new Date(0)).toISOString(),
          });
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      this.wrap(`listing ${rel}`, err);
    }
    return out;
  }

  async download(rel: string, localPath: string): Promise<void> {
    mkdirSync(dirname(localPath), { recursive: true, mode: 0o700 });
    try {
      const { sdk, client } = await this.api();
      const r = await client.send(new sdk.GetObjectCommand({ Bucket: this.settings.bucket, Key: this.key(rel) }));
      await pipeline(r.Body as NodeJS.ReadableStream, createWriteStream(localPath, { mode: 0o600 }));
    } catch (err) {
      this.wrap(`download of ${rel}`, err);
    }
  }

  async remove(rels: string[]): Promise<void> {
    for (let i = 0; i < rels.length; i += 1000) {
      try {
        const { sdk, client } = await this.api();
        await client.send(
          new sdk.DeleteObjectsCommand({
            Bucket: this.settings.bucket,
            Delete: { Objects: rels.slice(i, i + 1000).map((r) => ({ Key: this.key(r) })) },
          }),
        );
      } catch (err) {
        this.wrap('deleting objects', err);
      }
    }
  }

  close(): void {
    this.s3?.destroy();
  }
}
