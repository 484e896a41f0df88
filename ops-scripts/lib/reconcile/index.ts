export { planReconcile, projectDeclarations, reconcile, type ReconcileStep } from './apply.ts';
export { readObjects, type LiveObjects } from './catalog.ts';
export { describeAction, plan, type Action, type Declared } from './plan.ts';
