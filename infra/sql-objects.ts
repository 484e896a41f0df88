// Dynamic resources for what lives inside the database: the migrations and
// the declared indexes and views, applied by the same engines the local stack
// runs (see sql-objects-impl.ts).
//
// Pulumi serializes each provider's methods as text and runs them in its
// dynamic-provider host: a plain `node` process (CommonJS, no TypeScript
// loader, no nodeargs), started by the engine as
// `node ./node_modules/@pulumi/pulumi/cmd/dynamic-provider` from the project
// directory. So the methods capture nothing but `implementation` below: no
// import.meta, no module bindings, no checkout path (state written from one
// checkout must work from another). They find the package from the host's own
// path and load its compiled JavaScript (dist/, built by `npm ci`).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import type { AdminConnection, OwnerConnection } from './sql-objects-impl.ts';

export type { AdminConnection, OwnerConnection };

/** The compiled implementation, found by walking up from the host's entry (or the current directory) to this package. */
async function implementation(): Promise<typeof import('./sql-objects-impl.ts')> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const url = await import('node:url');
  for (const start of [process.argv[1], process.cwd()]) {
    let dir = start ?? '';
    for (;;) {
      const pkg = path.join(dir, 'package.json');
      if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'edupulse-db') {
        const file = path.join(dir, 'dist', 'infra', 'sql-objects-impl.js');
        if (!fs.existsSync(file))
          throw new Error(`edupulse-db: ${file} is missing; run \`npm ci\` (or \`npm run build\`) in ${dir}`);
        return import(url.pathToFileURL(file).href);
      }
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new Error(
    'edupulse-db: the provider host found no edupulse-db package above its own path or the current directory; run pulumi in the project directory after `npm ci`',
  );
}

/** A hash of the files of a directory: a change means there is something to apply. */
export function hashDir(dir: string, match: RegExp): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir)
    .filter((n) => match.test(n))
    .sort())
    h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex').slice(0, 16);
}

interface MigrationsInputs {
  connection: OwnerConnection;
  migrationsHash: string;
}

export const migrationsProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: MigrationsInputs) {
    const impl = await implementation();
    return {
      id: `migrations-${inputs.connection.database}`,
      outs: { ...inputs, applied: await impl.applyMigrations(inputs.connection) },
    };
  },
  async diff(_id: string, olds: MigrationsInputs, news: MigrationsInputs) {
    const impl = await implementation();
    // In a preview, inputs not known yet: a change, and nothing to connect to.
    if (impl.hasUnknown(news)) return { changes: true };
    return {
      changes:
        olds.migrationsHash !== news.migrationsHash ||
        JSON.stringify(olds.connection) !== JSON.stringify(news.connection),
    };
  },
  async update(_id: string, _olds: MigrationsInputs, news: MigrationsInputs) {
    const impl = await implementation();
    return { outs: { ...news, applied: await impl.applyMigrations(news.connection) } };
  },
  // Destroying the stack does not roll the schema back: the data stays with it.
  async delete() {},
};

export class Migrations extends pulumi.dynamic.Resource {
  declare readonly applied: pulumi.Output<string[]>;
  constructor(
    name: string,
    args: { connection: pulumi.Input<OwnerConnection>; migrationsHash: string },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      migrationsProvider,
      name,
      { ...args, applied: undefined },
      { ...opts, additionalSecretOutputs: ['connection'] },
    );
  }
}

interface ObjectsInputs {
  connection: OwnerConnection;
  declarationsHash: string;
}

export const objectsProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: ObjectsInputs) {
    const impl = await implementation();
    return {
      id: `objects-${inputs.connection.database}`,
      outs: { ...inputs, applied: await impl.applyObjects(inputs.connection) },
    };
  },
  /** Changed declarations, or drift in the live catalog (the engine's plan is not empty). */
  async diff(_id: string, olds: ObjectsInputs, news: ObjectsInputs) {
    const impl = await implementation();
    if (impl.hasUnknown(news)) return { changes: true };
    if (olds.declarationsHash !== news.declarationsHash) return { changes: true };
    return { changes: await impl.objectsDrift(news.connection) };
  },
  async update(_id: string, _olds: ObjectsInputs, news: ObjectsInputs) {
    const impl = await implementation();
    return { outs: { ...news, applied: await impl.applyObjects(news.connection) } };
  },
  /** Removes only the indexes and views the engine created (its marker comment). */
  async delete(_id: string, olds: ObjectsInputs) {
    const impl = await implementation();
    await impl.applyObjects(olds.connection, true);
  },
};

export class IndexesAndViews extends pulumi.dynamic.Resource {
  declare readonly applied: pulumi.Output<string[]>;
  constructor(
    name: string,
    args: { connection: pulumi.Input<OwnerConnection>; declarationsHash: string },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(objectsProvider, name, { ...args, applied: undefined }, { ...opts, additionalSecretOutputs: ['connection'] });
  }
}

interface SuperuserInputs {
  connection: AdminConnection;
  password: string;
}

export const superuserPasswordProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: SuperuserInputs) {
    const impl = await implementation();
    await impl.checkSuperuser(inputs.connection, inputs.password);
    return { id: `superuser-${inputs.connection.user}`, outs: inputs };
  },
  async diff(_id: string, olds: SuperuserInputs, news: SuperuserInputs) {
    const impl = await implementation();
    if (impl.hasUnknown(news)) return { changes: true };
    return {
      changes: olds.password !== news.password || JSON.stringify(olds.connection) !== JSON.stringify(news.connection),
    };
  },
  /** A new password: set with ALTER ROLE, logged in with the old one. */
  async update(_id: string, olds: SuperuserInputs, news: SuperuserInputs) {
    const impl = await implementation();
    await impl.rotateSuperuser(news.connection, olds.password, news.password);
    return { outs: news };
  },
  // The role stays with the cluster.
  async delete() {},
};

/** The superuser's password, rotated in place (the container keeps running, its data untouched). */
export class SuperuserPassword extends pulumi.dynamic.Resource {
  constructor(
    name: string,
    args: { connection: pulumi.Input<AdminConnection>; password: pulumi.Input<string> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(superuserPasswordProvider, name, args, { ...opts, additionalSecretOutputs: ['password'] });
  }
}

interface PoolerAuthInputs {
  connection: AdminConnection;
  password: string;
  database: string;
  /** The definition's mark: a new one applies it again. */
  mark: string;
}

export const poolerAuthProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: PoolerAuthInputs) {
    const impl = await implementation();
    await impl.applyPoolerAuth(inputs.connection, inputs.password, inputs.database);
    return { id: `pooler-auth-${inputs.database}`, outs: inputs };
  },
  async diff(_id: string, olds: PoolerAuthInputs, news: PoolerAuthInputs) {
    const impl = await implementation();
    if (impl.hasUnknown(news)) return { changes: true };
    return { changes: JSON.stringify(olds) !== JSON.stringify(news) };
  },
  async update(_id: string, _olds: PoolerAuthInputs, news: PoolerAuthInputs) {
    const impl = await implementation();
    await impl.applyPoolerAuth(news.connection, news.password, news.database);
    return { outs: news };
  },
  async delete() {},
};

/** pgbouncer.get_auth, PgBouncer's auth_query target (infra/pgbouncer.ts), made as the superuser. */
export class PoolerAuth extends pulumi.dynamic.Resource {
  constructor(
    name: string,
    args: { connection: pulumi.Input<AdminConnection>; password: pulumi.Input<string>; database: string; mark: string },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(poolerAuthProvider, name, args, { ...opts, additionalSecretOutputs: ['password'] });
  }
}

interface SyncStandbysInputs {
  connection: AdminConnection;
  password: string;
  names: string[];
}

export const syncStandbysProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: SyncStandbysInputs) {
    const impl = await implementation();
    await impl.applySyncStandbys(inputs.connection, inputs.password, inputs.names);
    return { id: 'synchronous-standbys', outs: inputs };
  },
  async diff(_id: string, olds: SyncStandbysInputs, news: SyncStandbysInputs) {
    const impl = await implementation();
    if (impl.hasUnknown(news)) return { changes: true };
    return { changes: JSON.stringify(olds) !== JSON.stringify(news) };
  },
  async update(_id: string, _olds: SyncStandbysInputs, news: SyncStandbysInputs) {
    const impl = await implementation();
    await impl.applySyncStandbys(news.connection, news.password, news.names);
    return { outs: news };
  },
  // Back to asynchronous: a primary left waiting for standbys that are gone would stop every write.
  async delete(_id: string, olds: SyncStandbysInputs) {
    const impl = await implementation();
    await impl.applySyncStandbys(olds.connection, olds.password, []).catch(() => {});
  },
};

/** synchronous_standby_names on the primary, set only once the standbys stream. */
export class SyncStandbys extends pulumi.dynamic.Resource {
  constructor(
    name: string,
    args: { connection: pulumi.Input<AdminConnection>; password: pulumi.Input<string>; names: string[] },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(syncStandbysProvider, name, args, { ...opts, additionalSecretOutputs: ['password'] });
  }
}
