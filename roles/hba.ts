// pg_hba.conf from the role declarations, for both appliers: TCP with
// scram-sha-256 only, replication only for the roles declared with
// REPLICATION (the backup login), the local socket only for the superuser by
// peer authentication. The local stack listens on loopback; the container on
// its network, so the host-side backup job's replication connection (arriving
// from the Docker network's gateway) matches a line.
import { declarations as projectDeclarations, type RoleDeclarations } from './declarations.ts';

export interface HbaOptions {
  /** The superuser allowed on the local socket, by peer authentication. */
  superuser: string;
  /** A pg_ident map for the peer line (the local stack maps its OS user), if any. */
  identMap?: string;
  /** The client addresses (CIDR or `all`). */
  addresses: string[];
}

/**
 * pg_ident.conf for renderHba's peer lines: the cluster's OS user may log in as the superuser and as
 * PgBouncer's lookup login, under one map name.
 */
export function renderIdent(
  map: string,
  osUser: string,
  superuser: string,
  declarations: RoleDeclarations = projectDeclarations,
): string {
  return `# Written by edupulse-db.\n${map} ${osUser} ${superuser}\n${map} ${osUser} ${declarations.pooler}\n`;
}

export function renderHba(opts: HbaOptions, declarations: RoleDeclarations = projectDeclarations): string {
  const col = (cells: string[]) =>
    // Aligned, and never run together: a cell as long as its column still gets a space after it.
    cells
      .map((c, i) => (i < cells.length - 1 ? c.padEnd(Math.max([8, 13, 17, 15][i] ?? 0, c.length + 1)) : c))
      .join('');
  const replication = declarations.roles.filter((r) => r.replication && r.login).map((r) => r.name);
  return [
    '# Written by edupulse-db from roles/declarations.ts; changes here are overwritten.',
    col(['# TYPE', 'DATABASE', 'USER', 'ADDRESS', 'METHOD']),
    // A local line has no address column; the blank keeps the method in line.
    col(['local', 'all', opts.superuser, '', `peer${opts.identMap ? ` map=${opts.identMap}` : ''}`]),
    // PgBouncer's lookup login, by peer (it runs as the servers' OS user), and the logins it pools, by their
    // SCRAM secrets, on the socket (reachable only by that OS user: the directory is 0700).
    col(['local', 'all', declarations.pooler, '', `peer${opts.identMap ? ` map=${opts.identMap}` : ''}`]),
    col(['local', 'all', 'all', '', 'scram-sha-256']),
    ...opts.addresses.map((a) => col(['host', 'all', 'all', a, 'scram-sha-256'])),
    ...replication.flatMap((role) => opts.addresses.map((a) => col(['host', 'replication', role, a, 'scram-sha-256']))),
    '',
  ].join('\n');
}
