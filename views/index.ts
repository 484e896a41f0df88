// The declared indexes, views and partitions. A view is one .sql file in this folder
// holding its SELECT; its name is the file name, its schema public.
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export { indexes, type IndexDecl } from './indexes.ts';
export { partitions, type PartitionDecl } from './partitions.ts';

export interface ViewDecl {
  name: string;
  schema: string;
  query: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The .sql files stay in views/ at the package root when this module runs compiled from dist/views/. */
export const VIEWS_DIR = basename(dirname(here)) === 'dist' ? join(here, '..', '..', 'views') : here;

export function loadViews(dir = VIEWS_DIR): ViewDecl[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => ({
      name: f.replace(/\.sql$/, ''),
      schema: 'public',
      query: readFileSync(join(dir, f), 'utf8').trim().replace(/;\s*$/, ''),
    }));
}
