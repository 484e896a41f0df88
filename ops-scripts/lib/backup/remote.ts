// The repository's second backend: an S3-compatible object store holding the
// same layout under a prefix (base/<id>/..., logical/<id>/..., wal/...).
// Credentials come from the AWS SDK's own chain (environment, profile,
// instance role), never from flags, and are never printed. Uploads are
// multipart (lib-storage, aborted on failure), hashed as they stream so the
// store's ETag can be checked without reading the file twice.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { badInput, failed } from '../errors.ts';

// The SDK warns at every client that its releases after January 2027 need Node 22; the version here is pinned.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export type RepoMode = 'local' | 'copy' | 'remote';

export interface RemoteSettings { endpoint?: string; region: string; bucket: string; prefix: string; mode: RepoMode }

type Env = Readonly<Record<string, string | undefined>>;

/** The remote settings from EDUPULSE_S3_* and EDUPULSE_REPO_MODE; undefined when the repository is local only. */
export function remoteSettings(env: Env = process.env): RemoteSettings | undefined {
  const mode = (env.EDUPULSE_REPO_MODE ?? 'local') as RepoMode;
  if (!['local', 'copy', 'remote'].includes(mode)) throw badInput(`EDUPULSE_REPO_MODE: unknown value "${mode}"`, 'use local, copy or remote');
  if (mode === 'local') return undefined;
  const bucket = env.EDUPULSE_S3_BUCKET;
  if (!bucket || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw badInput(`EDUPULSE_S3_BUCKET ${bucket ? `"${bucket}" is not a bucket name` : 'is required'} when EDUPULSE_REPO_MODE=${mode}`);
  }
  const prefix = (env.EDUPULSE_S3_PREFIX ?? 'edupulse/').replace(/^\/+/, '');
  return { endpoint: env.EDUPULSE_S3_ENDPOINT, region: env.EDUPULSE_S3_REGION ?? 'us-east-1', bucket, prefix: prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix, mode };
}

const PART = 8 * 1024 * 1024;

/** The ETags a store may give a file uploaded in PART-sized parts: MD5 of the whole, or AWS's MD5 of the part MD5s. */
class EtagHasher extends Transform {
  private whole = createHash('md5');
  private part = createHash('md5');
  private partBytes = 0;
  private parts: Buffer[] = [];
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: () => void) {
    this.whole.update(chunk);
    this.bytes += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(PART - this.partBytes, chunk.length - off);
      this.part.update(chunk.subarray(off, off + take));
      this.partBytes += take; off += take;
      if (this.partBytes === PART) { this.parts.push(this.part.digest()); this.part = createHash('md5'); this.partBytes = 0; }
    }
    this.push(chunk);
    cb();
  }
  expected(): string[] {
    const parts = this.partBytes > 0 || this.parts.length === 0 ? [...this.parts, this.part.digest()] : this.parts;
    const whole = this.whole.digest('hex');
    return parts.length > 1 ? [whole, `${createHash('md5').update(Buffer.concat(parts)).digest('hex')}-${parts.length}`] : [whole];
  }
}

export class RemoteStore {
  readonly client: S3Client;
  constructor(readonly settings: RemoteSettings) {
    this.client = new S3Client({
      endpoint: settings.endpoint, region: settings.region, forcePathStyle: Boolean(settings.endpoint),
      // Checksums only where S3 requires them: S3-compatible stores differ in what they accept.
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 5,
    });
  }

  key(rel: string): string { return `${this.settings.prefix}${rel}`; }

  private wrap(what: string, err: unknown): never {
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    throw failed(`object store ${this.settings.endpoint ?? 's3'} bucket ${this.settings.bucket}: ${what} failed: ${e.name ?? ''} ${e.message ?? ''}`.trim(),
      'check that the store is up and the credentials allow it; the next run retries');
  }

  /** Uploads a file; then checks the stored size and ETag against what was sent. */
  async upload(localPath: string, rel: string): Promise<{ key: string; bytes: number; etag: string }> {
    const hasher = new EtagHasher();
    const body = new PassThrough();
    const key = this.key(rel);
    try {
      const send = pipeline(createReadStream(localPath, { highWaterMark: 1 << 20 }), hasher, body);
      const up = new Upload({ client: this.client, params: { Bucket: this.settings.bucket, Key: key, Body: body }, partSize: PART, queueSize: 4, leavePartsOnError: false });
      await Promise.all([send, up.done()]);
    } catch (err) {
      this.wrap(`upload of ${rel}`, err);
    }
    const head = await this.head(rel);
    const etag = (head?.etag ?? '').replace(/"/g, '');
    if (!head || head.bytes !== statSync(localPath).size || !hasher.expected().includes(etag)) {
      throw failed(`upload of ${rel} did not verify: the store holds ${head ? `${head.bytes} bytes, ETag ${etag}` : 'nothing'}, sent ${hasher.bytes} bytes, ETag ${hasher.expected().join(' or ')}`);
    }
    return { key, bytes: head.bytes, etag };
  }

  async putText(rel: string, text: string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.settings.bucket, Key: this.key(rel), Body: text, ContentType: 'application/json' }));
    } catch (err) { this.wrap(`writing ${rel}`, err); }
  }

  async getText(rel: string): Promise<string | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.key(rel) }));
      return await r.Body!.transformToString();
    } catch (err) {
      if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return undefined;
      return this.wrap(`reading ${rel}`, err);
    }
  }

  async head(rel: string): Promise<{ bytes: number; etag: string } | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.key(rel) }));
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
      do {
        const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: this.key(rel), ContinuationToken: token }));
        for (const o of r.Contents ?? []) out.set(o.Key!.slice(this.settings.prefix.length), o.Size ?? 0);
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (err) { this.wrap(`listing ${rel}`, err); }
    return out;
  }

  /** Like list, with each object's last-modified time. */
  async listDetailed(rel: string): Promise<Map<string, { bytes: number; modified: string }>> {
    const out = new Map<string, { bytes: number; modified: string }>();
    let token: string | undefined;
    try {
      do {
        const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: this.key(rel), ContinuationToken: token }));
        for (const o of r.Contents ?? []) out.set(o.Key!.slice(this.settings.prefix.length), { bytes: o.Size ?? 0, modified: (o.LastModified ?? new Date(0)).toISOString() });
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (err) { this.wrap(`listing ${rel}`, err); }
    return out;
  }

  async download(rel: string, localPath: string): Promise<void> {
    mkdirSync(dirname(localPath), { recursive: true, mode: 0o700 });
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.key(rel) }));
      await pipeline(r.Body as NodeJS.ReadableStream, createWriteStream(localPath, { mode: 0o600 }));
    } catch (err) { this.wrap(`download of ${rel}`, err); }
  }

  async remove(rels: string[]): Promise<void> {
    for (let i = 0; i < rels.length; i += 1000) {
      try {
        await this.client.send(new DeleteObjectsCommand({ Bucket: this.settings.bucket, Delete: { Objects: rels.slice(i, i + 1000).map((r) => ({ Key: this.key(r) })) } }));
      } catch (err) { this.wrap('deleting objects', err); }
    }
  }

  close(): void { this.client.destroy(); }
}
