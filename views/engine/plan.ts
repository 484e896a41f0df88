// Declarations against the live catalog: what to create, rebuild, replace or
// drop. Pure. An object is ours when it carries our marker comment; a failed
// concurrent build leaves an invalid index before the comment is set, so an
// invalid index with a declared name (or a declared name plus NEW_SUFFIX) is
// also ours. Anything else is never touched: a declared name taken by an
// object we did not create is a conflict, reported, not overwritten.
import type { IndexDecl, PartitionDecl, ViewDecl } from '../index.ts';
import type { LiveIndex, LiveObjects, LiveView } from './catalog.ts';
import { planPartitions, type PartitionAction } from './partitions.ts';
import { indexHash, NEW_SUFFIX, parseMarker, viewHash } from './sql.ts';

export type Action =
  | { kind: 'create-index'; decl: IndexDecl; reason: string }
  | { kind: 'rebuild-index'; decl: IndexDecl; reason: string }
  | { kind: 'drop-index'; schema: string; name: string; reason: string }
  | { kind: 'create-view'; view: ViewDecl; reason: string }
  | { kind: 'replace-view'; view: ViewDecl; reason: string }
  | { kind: 'drop-view'; schema: string; name: string; reason: string }
  | { kind: 'conflict'; object: string; reason: string }
  | PartitionAction;

export interface Declared {
  indexes: IndexDecl[];
  views: ViewDecl[];
  /** Undefined: partitions are left as they are (declaring no indexes and views removes ours; never partitions). */
  partitions?: PartitionDecl[];
}

const key = (schema: string, name: string) => `${schema}.${name}`;

function indexAction(d: IndexDecl, live: LiveIndex | undefined): Action | undefined {
  if (!live) return { kind: 'create-index', decl: d, reason: 'missing' };
  if (!live.valid) return { kind: 'rebuild-index', decl: d, reason: 'invalid (left by a failed concurrent build)' };
  const mark = parseMarker(live.comment);
  if (!mark)
    return {
      kind: 'conflict',
      object: `index ${key(d.schema, d.name)}`,
      reason: 'exists but was not created by edupulse-db; rename or drop it, or change the declaration',
    };
  if (mark.decl !== indexHash(d)) return { kind: 'rebuild-index', decl: d, reason: 'declaration changed' };
  if (mark.def !== live.fingerprint) return { kind: 'rebuild-index', decl: d, reason: 'changed by hand' };
  return undefined;
}

function viewAction(v: ViewDecl, live: LiveView | undefined): Action | undefined {
  if (!live) return { kind: 'create-view', view: v, reason: 'missing' };
  const mark = parseMarker(live.comment);
  if (!mark)
    return {
      kind: 'conflict',
      object: `view ${key(v.schema, v.name)}`,
      reason: 'exists but was not created by edupulse-db; rename or drop it, or change the declaration',
    };
  if (mark.decl !== viewHash(v)) return { kind: 'replace-view', view: v, reason: 'declaration changed' };
  if (mark.def !== live.fingerprint) return { kind: 'replace-view', view: v, reason: 'changed by hand' };
  return undefined;
}

/** The actions, in the order they run: partitions, drops of views, then indexes, then views. */
export function plan(declared: Declared, live: LiveObjects): Action[] {
  const liveIndexes = new Map(live.indexes.map((i) => [key(i.schema, i.name), i]));
  const liveViews = new Map(live.views.map((v) => [key(v.schema, v.name), v]));
  const declaredIndexes = new Set(declared.indexes.map((d) => key(d.schema, d.name)));
  const declaredViews = new Set(declared.views.map((v) => key(v.schema, v.name)));
  const actions: Action[] = [];

  for (const d of declared.partitions ?? [])
    actions.push(
      ...planPartitions(
        d,
        live.partitioned.find((p) => p.schema === d.schema && p.table === d.table),
        live.today,
      ),
    );
  for (const v of live.views) {
    if (parseMarker(v.comment) && !declaredViews.has(key(v.schema, v.name))) {
      actions.push({ kind: 'drop-view', schema: v.schema, name: v.name, reason: 'no longer declared' });
    }
  }
  for (const i of live.indexes) {
    const k = key(i.schema, i.name);
    if (declaredIndexes.has(k)) continue;
    if (parseMarker(i.comment))
      actions.push({ kind: 'drop-index', schema: i.schema, name: i.name, reason: 'no longer declared' });
    else if (i.name.endsWith(NEW_SUFFIX) && declaredIndexes.has(k.slice(0, -NEW_SUFFIX.length))) {
      actions.push({ kind: 'drop-index', schema: i.schema, name: i.name, reason: 'left by an interrupted rebuild' });
    }
  }
  for (const d of declared.indexes) {
    const a = indexAction(d, liveIndexes.get(key(d.schema, d.name)));
    if (a) actions.push(a);
  }
  for (const v of declared.views) {
    const a = viewAction(v, liveViews.get(key(v.schema, v.name)));
    if (a) actions.push(a);
  }
  return actions;
}

export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'create-index':
      return `+ index ${a.decl.schema}.${a.decl.name} on ${a.decl.table} (${a.decl.columns.join(', ')})${a.decl.where ? ` where ${a.decl.where}` : ''}`;
    case 'rebuild-index':
      return `~ index ${a.decl.schema}.${a.decl.name}: ${a.reason}; rebuild concurrently and swap`;
    case 'drop-index':
      return `- index ${a.schema}.${a.name}: ${a.reason}`;
    case 'create-view':
      return `+ view ${a.view.schema}.${a.view.name}`;
    case 'replace-view':
      return `~ view ${a.view.schema}.${a.view.name}: ${a.reason}`;
    case 'drop-view':
      return `- view ${a.schema}.${a.name}: ${a.reason}`;
    case 'conflict':
      return `! ${a.object}: ${a.reason}`;
    case 'create-partition':
      return `+ partition ${a.decl.partitionSchema}.${a.name} of ${a.decl.schema}.${a.decl.table} for ${a.from} .. ${a.to} (${a.reason})`;
    case 'retire-partition':
      return `- partition ${a.schema}.${a.name} of ${a.decl.schema}.${a.decl.table}: ${a.reason}`;
  }
}
