export { applyRoles, auditRoles, rotatePassword, type ApplyRolesResult, type PasswordStore } from './apply.ts';
export { readCatalog, type CatalogSnapshot } from './catalog.ts';
export { diffRoles, managedRoleNames, type Difference } from './diff.ts';
export { secretsFileStore } from './password-store.ts';
export { scramVerifier, verifierMatches } from './scram.ts';
