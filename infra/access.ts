// Roles, memberships, grants and default privileges as @pulumi/postgresql
// resources, mapped from roles/declarations.ts (nothing restated here), with
// login passwords from random.RandomPassword, kept as secrets.
import * as postgresql from '@pulumi/postgresql';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import type { Grant, RoleDeclarations } from '../roles/declarations.ts';

export interface DatabaseAccessArgs {
  declarations: RoleDeclarations;
  database: string;
  host: pulumi.Input<string>;
  port: pulumi.Input<number>;
  username: string;
  password: pulumi.Input<string>;
  sslmode: string;
}

export class DatabaseAccess extends pulumi.ComponentResource {
  readonly provider: postgresql.Provider;
  readonly database: postgresql.Database;
  readonly roles: Record<string, postgresql.Role> = {};
  readonly passwords: Record<string, pulumi.Output<string>> = {};
  /** What must exist before migrations run: roles, the database, CONNECT, USAGE, default privileges. */
  readonly ready: pulumi.Resource[] = [];

  constructor(name: string, args: DatabaseAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super('edupulse:infra:DatabaseAccess', name, {}, opts);
    const d = args.declarations;
    this.provider = new postgresql.Provider(`${name}-provider`, {
      host: args.host, port: args.port, username: args.username, password: args.password,
      sslmode: args.sslmode, superuser: true, database: 'postgres',
    }, { parent: this });
    const res = { parent: this, provider: this.provider };
    for (const r of d.roles) {
      let password: pulumi.Output<string> | undefined;
      if (r.login) {
        password = new random.RandomPassword(`${name}-${r.name}-password`, { length: 32, special: false }, { parent: this }).result;
        this.passwords[r.name] = pulumi.secret(password);
      }
      this.roles[r.name] = new postgresql.Role(`${name}-role-${r.name}`, {
        name: r.name, login: r.login, inherit: r.inherit, replication: r.replication ?? false,
        connectionLimit: r.connectionLimit, superuser: false, createDatabase: false, createRole: false,
        bypassRowLevelSecurity: false, password,
      }, res);
    }
    const memberships = d.roles.flatMap((r) => r.memberOf.map((group) => new postgresql.GrantRole(`${name}-member-${r.name}-${group}`, {
      role: r.name, grantRole: group,
    }, { ...res, dependsOn: [this.roles[r.name]!, ...(this.roles[group] ? [this.roles[group]!] : [])] })));
    this.database = new postgresql.Database(`${name}-database`, { name: args.database, owner: d.owner }, { ...res, dependsOn: [this.roles[d.owner]!] });
    const after = { ...res, dependsOn: [this.database, ...Object.values(this.roles)] };
    // PUBLIC keeps nothing on the database nor on schema public.
    const publicGrants = [
      new postgresql.Grant(`${name}-public-database`, { database: args.database, role: 'public', objectType: 'database', privileges: d.publicDatabasePrivileges }, after),
      ...Object.entries(d.publicSchemaPrivileges).map(([schema, privileges]) => new postgresql.Grant(`${name}-public-schema-${schema}`, {
        database: args.database, role: 'public', objectType: 'schema', schema, privileges,
      }, after)),
    ];
    const early = d.grants.filter((g) => g.on === 'database' || g.on === 'schema').map((g) => this.grant(name, args.database, g, after));
    const defaults = d.defaultPrivileges.map((p) => new postgresql.DefaultPrivileges(`${name}-default-${p.role}-${p.on}-${p.schema}`, {
      database: args.database, owner: p.owner, role: p.role, schema: p.schema, objectType: p.on, privileges: p.privileges,
    }, after));
    this.ready.push(this.database, ...Object.values(this.roles), ...memberships, ...publicGrants, ...early, ...defaults);
    this.registerOutputs({ database: this.database.name });
  }

  grant(name: string, database: string, g: Grant, opts: pulumi.CustomResourceOptions): postgresql.Grant {
    return new postgresql.Grant(`${name}-grant-${g.role}-${g.on}${'schema' in g ? `-${g.schema}` : ''}`, {
      database, role: g.role, objectType: g.on, privileges: g.privileges,
      ...(g.on === 'database' ? {} : { schema: g.schema }),
      // An empty object list means every table (or sequence) of the schema.
      ...(g.on === 'table' || g.on === 'sequence' ? { objects: [] } : {}),
    }, { ...opts, parent: this, provider: this.provider });
  }

  /** Table and sequence grants, once the objects they cover exist. */
  objectGrants(name: string, database: string, declarations: RoleDeclarations, dependsOn: pulumi.Resource[]): postgresql.Grant[] {
    return declarations.grants.filter((g) => g.on === 'table' || g.on === 'sequence')
      .map((g) => this.grant(name, database, g, { dependsOn: [...this.ready, ...dependsOn] }));
  }
}
