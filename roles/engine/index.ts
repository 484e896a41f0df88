// The roles engine: read the catalog, diff against roles/declarations.ts (each
// difference carrying the statement that fixes it), audit, apply, rotate.
// Both appliers and the jobs import it from here.
export {
  applicable,
  applyRoles,
  auditRoles,
  rotatePassword,
  type ApplyRolesOptions,
  type ApplyRolesResult,
  type PasswordStore,
} from './apply.ts';
export { readCatalog, type CatalogSnapshot } from './catalog.ts';
export { diffRoles, managedRoleNames, type Difference } from './diff.ts';
export { scramVerifier, verifierMatches } from './scram.ts';
