// Declarations against the live catalog, in both directions: what is missing
// and what a managed role holds beyond its declaration. Pure: each difference
// carries the statement that fixes it, so audit and apply are one computation.
import type { RoleDecl, RoleDeclarations } from '../declarations.ts';
import type { CatalogSnapshot, ObjectKind, RoleRow } from './catalog.ts';
import * as sql from './sql.ts';

export interface Difference {
  kind: 'missing' | 'extra';
  /** The role (or PUBLIC) concerned. */
  role: string;
  what: string;
  fix: string;
  /** The fix drops a role nobody declared: roles:apply runs it only when told (--drop-undeclared). */
  destructive?: boolean;
}

/** The order privileges are written in, so statements are stable. */
const ORDER = [
  'CONNECT',
  'CREATE',
  'TEMPORARY',
  'USAGE',
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'TRUNCATE',
  'REFERENCES',
  'TRIGGER',
];
const sorted = (ps: Iterable<string>) => [...new Set(ps)].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));

export const managedRoleNames = (d: RoleDeclarations) => d.roles.map((r) => r.name);

function attributeDiffs(decl: RoleDecl, row: RoleRow): Difference[] {
  const wanted: Array<[string, boolean, boolean]> = [
    ['LOGIN', decl.login, row.login],
    ['SUPERUSER', false, row.superuser],
    ['CREATEDB', false, row.createdb],
    ['CREATEROLE', false, row.createrole],
    ['INHERIT', decl.inherit, row.inherit],
    ['REPLICATION', decl.replication ?? false, row.replication],
    ['BYPASSRLS', false, row.bypassrls],
  ];
  const diffs: Difference[] = wanted
    .filter(([, want, has]) => want !== has)
    .map(([attr, want]) => ({
      kind: want ? 'missing' : 'extra',
      role: decl.name,
      what: want ? `lacks ${attr}` : `has ${attr}`,
      fix: sql.alterRole(decl),
    }));
  if (row.connlimit !== decl.connectionLimit) {
    const unlimited = (n: number) => (n < 0 ? Infinity : n);
    diffs.push({
      kind: unlimited(row.connlimit) > unlimited(decl.connectionLimit) ? 'extra' : 'missing',
      role: decl.name,
      what: `connection limit ${row.connlimit}, declared ${decl.connectionLimit}`,
      fix: sql.alterRole(decl),
    });
  }
  return diffs;
}

/** Declared privileges per object, for every object that exists. */
function declaredAcl(d: RoleDeclarations, snap: CatalogSnapshot): Map<string, Set<string>> {
  const wanted = new Map<string, Set<string>>();
  const add = (kind: ObjectKind, schema: string, name: string, role: string, privileges: readonly string[]) => {
    const k = key(kind, schema, name, role);
    const set = wanted.get(k) ?? new Set<string>();
    privileges.forEach((p) => set.add(p));
    wanted.set(k, set);
  };
  add('database', '', snap.database, 'PUBLIC', d.publicDatabasePrivileges);
  for (const [schema, privileges] of Object.entries(d.publicSchemaPrivileges)) {
    if (snap.schemas.includes(schema)) add('schema', schema, schema, 'PUBLIC', privileges);
  }
  for (const g of d.grants) {
    if (g.on === 'database') add('database', '', snap.database, g.role, g.privileges);
    else if (g.on === 'schema') {
      if (snap.schemas.includes(g.schema)) add('schema', g.schema, g.schema, g.role, g.privileges);
    } else
      for (const rel of snap.relations) {
        if (rel.schema === g.schema && rel.kind === g.on) add(rel.kind, rel.schema, rel.name, g.role, g.privileges);
      }
  }
  return wanted;
}

const SEP = '\u0000';
const key = (kind: ObjectKind, schema: string, name: string, role: string) => [kind, schema, name, role].join(SEP);
const describeObject = (kind: ObjectKind, schema: string, name: string) =>
  kind === 'database' || kind === 'schema' ? `${kind} ${name}` : `${kind} ${schema}.${name}`;

function aclDiffs(d: RoleDeclarations, snap: CatalogSnapshot): Difference[] {
  const wanted = declaredAcl(d, snap);
  const actual = new Map<string, Set<string>>();
  for (const e of snap.acl) {
    const k = key(e.kind, e.schema, e.name, e.grantee);
    actual.set(k, (actual.get(k) ?? new Set()).add(e.privilege));
  }
  // PUBLIC is judged only where something is declared for it; managed roles everywhere.
  const judged = (k: string) => !k.endsWith(`${SEP}PUBLIC`) || wanted.has(k);
  const diffs: Difference[] = [];
  for (const k of [...new Set([...wanted.keys(), ...actual.keys()])].sort()) {
    if (!judged(k)) continue;
    const [kind, schema, name, role] = k.split(SEP) as [ObjectKind, string, string, string];
    const want = wanted.get(k) ?? new Set<string>();
    const has = actual.get(k) ?? new Set<string>();
    const missing = sorted([...want].filter((p) => !has.has(p)));
    const extra = sorted([...has].filter((p) => !want.has(p)));
    const target = { kind, schema, name, role };
    if (missing.length)
      diffs.push({
        kind: 'missing',
        role,
        what: `${missing.join(', ')} on ${describeObject(kind, schema, name)}`,
        fix: sql.grant({ ...target, privileges: missing }),
      });
    if (extra.length)
      diffs.push({
        kind: 'extra',
        role,
        what: `${extra.join(', ')} on ${describeObject(kind, schema, name)}`,
        fix: sql.revoke({ ...target, privileges: extra }),
      });
  }
  return diffs;
}

function defaultAclDiffs(d: RoleDeclarations, snap: CatalogSnapshot): Difference[] {
  const k = (owner: string, schema: string, on: string, role: string) => [owner, schema, on, role].join(SEP);
  const wanted = new Map<string, Set<string>>();
  for (const p of d.defaultPrivileges) {
    const kk = k(p.owner, p.schema, p.on, p.role);
    wanted.set(kk, new Set([...(wanted.get(kk) ?? []), ...p.privileges]));
  }
  const actual = new Map<string, Set<string>>();
  for (const e of snap.defaultAcl) {
    const kk = k(e.owner, e.schema, e.on, e.grantee);
    actual.set(kk, (actual.get(kk) ?? new Set()).add(e.privilege));
  }
  const diffs: Difference[] = [];
  for (const kk of [...new Set([...wanted.keys(), ...actual.keys()])].sort()) {
    const [owner, schema, on, role] = kk.split(SEP) as [string, string, 'table' | 'sequence', string];
    const want = wanted.get(kk) ?? new Set<string>();
    const has = actual.get(kk) ?? new Set<string>();
    const missing = sorted([...want].filter((p) => !has.has(p)));
    const extra = sorted([...has].filter((p) => !want.has(p)));
    const where = `default privileges for ${on}s of ${owner}${schema ? ` in ${schema}` : ''}`;
    if (missing.length)
      diffs.push({
        kind: 'missing',
        role,
        what: `${missing.join(', ')} in ${where}`,
        fix: sql.grantDefault({ owner, schema, on, role, privileges: missing }),
      });
    if (extra.length)
      diffs.push({
        kind: 'extra',
        role,
        what: `${extra.join(', ')} in ${where}`,
        fix: sql.revokeDefault({ owner, schema, on, role, privileges: extra }),
      });
  }
  return diffs;
}

/** Every difference between the declarations and the catalog, in the order their fixes must run. */
export function diffRoles(d: RoleDeclarations, snap: CatalogSnapshot): Difference[] {
  const diffs: Difference[] = [];
  const rows = new Map(snap.roles.map((r) => [r.name, r]));
  for (const decl of d.roles) {
    const row = rows.get(decl.name);
    if (!row) diffs.push({ kind: 'missing', role: decl.name, what: 'role does not exist', fix: sql.createRole(decl) });
    else diffs.push(...attributeDiffs(decl, row));
  }
  if (snap.databaseOwner !== d.owner) {
    diffs.push({
      kind: 'missing',
      role: d.owner,
      what: `does not own database ${snap.database} (${snap.databaseOwner} does)`,
      fix: sql.alterDatabaseOwner(snap.database, d.owner),
    });
  }
  const declaredMemberships = new Set(d.roles.flatMap((r) => r.memberOf.map((m) => `${r.name}${SEP}${m}`)));
  const actualMemberships = new Set(snap.memberships.map((m) => `${m.member}${SEP}${m.role}`));
  for (const m of [...declaredMemberships].filter((x) => !actualMemberships.has(x))) {
    const [member, role] = m.split(SEP) as [string, string];
    diffs.push({
      kind: 'missing',
      role: member,
      what: `not a member of ${role}`,
      fix: sql.grantMembership(role, member),
    });
  }
  for (const m of [...actualMemberships].filter((x) => !declaredMemberships.has(x))) {
    const [member, role] = m.split(SEP) as [string, string];
    diffs.push({ kind: 'extra', role: member, what: `member of ${role}`, fix: sql.revokeMembership(role, member) });
  }
  const undeclared: Difference[] = snap.undeclared.map((r) => ({
    kind: 'extra',
    role: r.name,
    destructive: true,
    what: [
      r.login ? 'undeclared login role' : 'undeclared role',
      r.privileges ? `with ${r.privileges} privilege entries on ${snap.database}` : '',
    ]
      .filter(Boolean)
      .join(' '),
    // DROP OWNED revokes its privileges in this database (and drops what it owns here) so the role can go.
    fix: `${sql.dropOwned(r.name)}; ${sql.dropRole(r.name)}`,
  }));
  return [...diffs, ...aclDiffs(d, snap), ...defaultAclDiffs(d, snap), ...undeclared];
}
