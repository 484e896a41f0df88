// Roles, memberships, grants and default privileges as @pulumi/postgresql
// resources, mapped from roles/declarations.ts (nothing restated here), with
// login passwords from random.RandomPassword, kept as secrets.
import * as postgresql from '@pulumi/postgresql';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import type { Grant, RoleDeclarations } from '../roles/declarations.ts';
import { IndexesAndViews, Migrations, PoolerAuth } from './sql-objects.ts';
import { POOLER_AUTH_MARK, POOLER_SCHEMA } from './pgbouncer.ts';

export interface DatabaseAccessArgs {
  declarations: RoleDeclarations;
  database: string;
  host: pulumi.Input<string>;
  port: pulumi.Input<number>;
  username: string;
  password: pulumi.Input<string>;
  sslmode: string;
  /**
   * Whether the admin login is a superuser: true for our container, false for
   * a managed server (RDS, Cloud SQL, Azure), whose admin is not one. The
   * provider then does not read pg_authid, and attributes only a superuser
   * can give (REPLICATION) are left out, with a warning.
   */
  superuser: boolean;
  /** Adopt the existing database (managed servers usually have it) rather than create it. */
  adoptDatabase?: boolean;
  /**
   * What must be up before the provider connects (the container, healthy).
   * On the provider itself: a component's dependsOn does not reach its
   * children, and everything here connects through the provider.
   */
  serverReady?: pulumi.Resource[];
  /** The schema on top: migrations (as the migrator), then indexes and views, then the table and sequence grants. */
  schema: { migrationsHash: string; declarationsHash: string; lockTimeout: string };
  /**
   * PgBouncer's lookup function (pgbouncer.get_auth, reading pg_authid: a superuser only), made after the
   * roles and before the pooler login's grant on its schema. Without it (a managed server) that grant is
   * left out: there is no schema for it.
   */
  poolerAuth?: boolean;
}

export class DatabaseAccess extends pulumi.ComponentResource {
  readonly provider: postgresql.Provider;
  readonly database: postgresql.Database;
  readonly roles: Record<string, postgresql.Role> = {};
  readonly passwords: Record<string, pulumi.Output<string>> = {};
  /** What must exist before migrations run: roles, the database, CONNECT, USAGE, default privileges. */
  readonly ready: pulumi.Resource[] = [];
  readonly migrations: Migrations;
  readonly objects: IndexesAndViews;
  /** PgBouncer's lookup function, when made (args.poolerAuth). */
  readonly poolerAuth?: PoolerAuth;

  constructor(name: string, args: DatabaseAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super('edupulse:infra:DatabaseAccess', name, {}, opts);
    const d = args.declarations;
    this.provider = new postgresql.Provider(
      `${name}-provider`,
      {
        host: args.host,
        port: args.port,
        username: args.username,
        password: args.password,
        sslmode: args.sslmode,
        superuser: args.superuser,
        database: 'postgres',
      },
      { parent: this, dependsOn: args.serverReady ?? [] },
    );
    const res = { parent: this, provider: this.provider };
    for (const r of d.roles) {
      let password: pulumi.Output<string> | undefined;
      if (r.login) {
        password = new random.RandomPassword(
          `${name}-${r.name}-password`,
          { length: 32, special: false },
          { parent: this },
        ).result;
        this.passwords[r.name] = pulumi.secret(password);
      }
      const replication = (r.replication ?? false) && args.superuser;
      if (r.replication && !args.superuser) {
        pulumi.log.warn(
          `role ${r.name}: REPLICATION needs a superuser to grant; on a managed server grant the provider's replication role instead (RDS: rds_replication), or take physical backups with the provider's own snapshots`,
          this,
        );
      }
      // Memberships are declared on the Role itself: the provider's Role update revokes every membership
      // not in \`roles\` (postgresql provider, resource_postgresql_role.go, setRoleMemberships), so a
      // separate GrantRole would be dropped by the next change to the role (a password rotation, say).
      // Roles are declared in order: a group of ours comes before its members.
      this.roles[r.name] = new postgresql.Role(
        `${name}-role-${r.name}`,
        {
          name: r.name,
          login: r.login,
          inherit: r.inherit,
          replication,
          connectionLimit: r.connectionLimit,
          superuser: false,
          createDatabase: false,
          createRole: false,
          bypassRowLevelSecurity: false,
          password,
          roles: r.memberOf,
        },
        { ...res, dependsOn: r.memberOf.flatMap((g) => (this.roles[g] ? [this.roles[g]!] : [])) },
      );
    }
    // retainOnDelete: `pulumi destroy` (or a replacement) forgets the database instead of running DROP DATABASE.
    this.database = new postgresql.Database(
      `${name}-database`,
      { name: args.database, owner: d.owner },
      {
        ...res,
        dependsOn: [this.roles[d.owner]!],
        retainOnDelete: true,
        ...(args.adoptDatabase ? { import: args.database } : {}),
      },
    );
    const after = { ...res, dependsOn: [this.database, ...Object.values(this.roles)] };
    // PUBLIC keeps nothing on the database nor on schema public.
    const publicGrants = [
      new postgresql.Grant(
        `${name}-public-database`,
        { database: args.database, role: 'public', objectType: 'database', privileges: d.publicDatabasePrivileges },
        after,
      ),
      ...Object.entries(d.publicSchemaPrivileges).map(
        ([schema, privileges]) =>
          new postgresql.Grant(
            `${name}-public-schema-${schema}`,
            {
              database: args.database,
              role: 'public',
              objectType: 'schema',
              schema,
              privileges,
            },
            after,
          ),
      ),
    ];
    if (args.poolerAuth)
      this.poolerAuth = new PoolerAuth(
        `${name}-pooler-auth`,
        {
          connection: pulumi
            .all([args.host, args.port])
            .apply(([host, port]) => ({ host, port, user: args.username, sslmode: args.sslmode })),
          password: pulumi.secret(args.password),
          database: args.database,
          mark: POOLER_AUTH_MARK,
        },
        { parent: this, dependsOn: [this.database, this.roles[d.pooler]!] },
      );
    const early = d.grants
      .filter((g) => g.on === 'database' || g.on === 'schema')
      .filter((g) => !('schema' in g && g.schema === POOLER_SCHEMA) || this.poolerAuth)
      .map((g) =>
        this.grant(
          name,
          args.database,
          g,
          'schema' in g && g.schema === POOLER_SCHEMA
            ? { ...after, dependsOn: [...after.dependsOn, this.poolerAuth!] }
            : after,
        ),
      );
    const defaults = d.defaultPrivileges.map(
      (p) =>
        new postgresql.DefaultPrivileges(
          `${name}-default-${p.role}-${p.on}-${p.schema}`,
          {
            database: args.database,
            owner: p.owner,
            role: p.role,
            schema: p.schema,
            objectType: p.on,
            privileges: p.privileges,
          },
          after,
        ),
    );
    this.ready.push(this.database, ...Object.values(this.roles), ...publicGrants, ...early, ...defaults);

    const connection = pulumi.secret(
      pulumi.all([args.host, args.port, this.passwords[d.migrator]!]).apply(([host, port, pw]) => ({
        host,
        port,
        database: args.database,
        migratorPassword: pw,
        sslmode: args.sslmode,
        lockTimeout: args.schema.lockTimeout,
      })),
    );
    // Top-level resources before they were children here: the alias keeps their URNs, so no replacement.
    const child = { parent: this, aliases: [{ parent: pulumi.rootStackResource }] };
    this.migrations = new Migrations(
      'migrations',
      { connection, migrationsHash: args.schema.migrationsHash },
      { ...child, dependsOn: this.ready },
    );
    this.objects = new IndexesAndViews(
      'indexes-and-views',
      { connection, declarationsHash: args.schema.declarationsHash },
      { ...child, dependsOn: [this.migrations] },
    );
    this.objectGrants(name, args.database, d, [this.migrations, this.objects]);
    this.registerOutputs({ database: this.database.name, appliedMigrations: this.migrations.applied });
  }

  grant(name: string, database: string, g: Grant, opts: pulumi.CustomResourceOptions): postgresql.Grant {
    return new postgresql.Grant(
      `${name}-grant-${g.role}-${g.on}${'schema' in g ? `-${g.schema}` : ''}`,
      {
        database,
        role: g.role,
        objectType: g.on,
        privileges: g.privileges,
        ...(g.on === 'database' ? {} : { schema: g.schema }),
        // An empty object list means every table (or sequence) of the schema.
        ...(g.on === 'table' || g.on === 'sequence' ? { objects: [] } : {}),
      },
      { ...opts, parent: this, provider: this.provider },
    );
  }

  /** Table and sequence grants, once the objects they cover exist. */
  private objectGrants(
    name: string,
    database: string,
    declarations: RoleDeclarations,
    dependsOn: pulumi.Resource[],
  ): postgresql.Grant[] {
    return declarations.grants
      .filter((g) => g.on === 'table' || g.on === 'sequence')
      .map((g) => this.grant(name, database, g, { dependsOn: [...this.ready, ...dependsOn] }));
  }
}
