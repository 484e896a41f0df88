// Dynamic resources for what lives inside the database: the migrations
// (node-pg-migrate's runner) and the declared indexes and views (the reconcile
// engine). They call the same modules the local stack runs and the tests run
// against real servers. Providers are closure-serialized by Pulumi, so they
// hold no live object: clients are made inside each method, and the modules
// are imported there by absolute URL.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pulumi from '@pulumi/pulumi';

const MIGRATE_MODULE = new URL('../migrations/engine/migrate.ts', import.meta.url).href;
const RECONCILE_MODULE = new URL('../views/engine/index.ts', import.meta.url).href;

/** How a dynamic provider reaches the database as the migrator (which becomes the owner role). */
export interface OwnerConnection { host: string; port: number; database: string; migratorPassword: string; sslmode?: string; lockTimeout?: string }

async function ownerConfig(c: OwnerConnection) {
  const { migratorConfig } = (await import(MIGRATE_MODULE)) as typeof import('../migrations/engine/migrate.ts');
  return migratorConfig({ host: c.host, port: c.port, database: c.database, ssl: c.sslmode && c.sslmode !== 'disable' ? { rejectUnauthorized: c.sslmode === 'verify-full' } : undefined }, c.migratorPassword, { lockTimeout: c.lockTimeout });
}

/** A hash of the files of a directory: a change means there is something to apply. */
export function hashDir(dir: string, match: RegExp): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).filter((n) => match.test(n)).sort()) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex').slice(0, 16);
}

interface MigrationsInputs { connection: OwnerConnection; migrationsHash: string }

export const migrationsProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: MigrationsInputs) {
    const { migrate } = (await import(MIGRATE_MODULE)) as typeof import('../migrations/engine/migrate.ts');
    const ran = await migrate(await ownerConfig(inputs.connection), { direction: 'up' });
    return { id: `migrations-${inputs.connection.database}`, outs: { ...inputs, applied: ran.map((m) => m.name) } };
  },
  async diff(_id: string, olds: MigrationsInputs, news: MigrationsInputs) {
    const changes = olds.migrationsHash !== news.migrationsHash || JSON.stringify(olds.connection) !== JSON.stringify(news.connection);
    return { changes };
  },
  async update(_id: string, _olds: MigrationsInputs, news: MigrationsInputs) {
    const { migrate } = (await import(MIGRATE_MODULE)) as typeof import('../migrations/engine/migrate.ts');
    const ran = await migrate(await ownerConfig(news.connection), { direction: 'up' });
    return { outs: { ...news, applied: ran.map((m) => m.name) } };
  },
  // Destroying the stack does not roll the schema back: the data stays with it.
  async delete() {},
};

export class Migrations extends pulumi.dynamic.Resource {
  declare readonly applied: pulumi.Output<string[]>;
  constructor(name: string, args: { connection: pulumi.Input<OwnerConnection>; migrationsHash: string }, opts?: pulumi.CustomResourceOptions) {
    super(migrationsProvider, name, { ...args, applied: undefined }, { ...opts, additionalSecretOutputs: ['connection'] });
  }
}

interface ObjectsInputs { connection: OwnerConnection; declarationsHash: string }

async function apply(c: OwnerConnection, declaredNothing = false): Promise<string[]> {
  const { reconcile } = (await import(RECONCILE_MODULE)) as typeof import('../views/engine/index.ts');
  const steps = await reconcile(await ownerConfig(c), declaredNothing ? { declared: { indexes: [], views: [] } } : {});
  const bad = steps.filter((s) => s.status === 'failed');
  if (bad.length) throw new Error(`indexes and views: ${bad.map((s) => `${s.action}: ${s.detail}`).join('; ')}`);
  return steps.map((s) => s.action);
}

export const objectsProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: ObjectsInputs) {
    return { id: `objects-${inputs.connection.database}`, outs: { ...inputs, applied: await apply(inputs.connection) } };
  },
  /** Changed declarations, or drift in the live catalog (the engine's plan is not empty). */
  async diff(_id: string, olds: ObjectsInputs, news: ObjectsInputs) {
    if (olds.declarationsHash !== news.declarationsHash) return { changes: true };
    const { planReconcile } = (await import(RECONCILE_MODULE)) as typeof import('../views/engine/index.ts');
    const { withClient } = await import(new URL('../ops-scripts/lib/db.ts', import.meta.url).href) as typeof import('../ops-scripts/lib/db.ts');
    const actions = await withClient(await ownerConfig(news.connection), (c) => planReconcile(c));
    return { changes: actions.length > 0 };
  },
  async update(_id: string, _olds: ObjectsInputs, news: ObjectsInputs) {
    return { outs: { ...news, applied: await apply(news.connection) } };
  },
  /** Removes only the indexes and views the engine created (its marker comment). */
  async delete(_id: string, olds: ObjectsInputs) {
    await apply(olds.connection, true);
  },
};

export class IndexesAndViews extends pulumi.dynamic.Resource {
  declare readonly applied: pulumi.Output<string[]>;
  constructor(name: string, args: { connection: pulumi.Input<OwnerConnection>; declarationsHash: string }, opts?: pulumi.CustomResourceOptions) {
    super(objectsProvider, name, { ...args, applied: undefined }, { ...opts, additionalSecretOutputs: ['connection'] });
  }
}
