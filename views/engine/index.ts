// The reconcile engine for views/: read the catalog, plan, render SQL, apply
// (CREATE INDEX CONCURRENTLY, CREATE OR REPLACE VIEW), owned by a marker comment.
// Both appliers and the jobs import it from here.
export { planReconcile, projectDeclarations, reconcile, type ReconcileStep } from './apply.ts';
export { readObjects, type LiveObjects } from './catalog.ts';
export { describeAction, plan, type Action, type Declared } from './plan.ts';
export { dropSnapshotIndex, recreateIndex, snapshotIndexes, type IndexSnapshot } from './rebuilt-index.ts';
