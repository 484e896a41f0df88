// Lints migrations the way squawk does: each migration's `up` is rendered to
// SQL by node-pg-migrate's own MigrationBuilder (nothing is applied) and
// checked for the patterns that lock or rewrite a busy table. A reviewed
// exception is a comment in the migration file:
//   // migrate-lint: allow <rule> -- <why it is safe here>
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MigrationBuilder } from 'node-pg-migrate';
import { failed } from './errors.ts';

export const RULES = {
  'require-concurrent-index-creation':
    'CREATE INDEX without CONCURRENTLY on an existing table blocks writes for the whole build',
  'adding-required-field': 'a NOT NULL column without a default fails on a table with rows, or needs a rewrite',
  'adding-field-with-volatile-default':
    'a volatile default (random(), clock_timestamp(), nextval, serial) rewrites the whole table under an exclusive lock',
  'changing-column-type': 'a column type change rewrites the table and its indexes under an exclusive lock',
  'ban-drop-column': 'DROP COLUMN breaks code that still reads the column',
  'ban-drop-table': 'DROP TABLE loses data and breaks code that still reads the table',
  'adding-foreign-key-constraint':
    'a foreign key added without NOT VALID scans the table while blocking writes; add it NOT VALID, then VALIDATE CONSTRAINT',
  'constraint-missing-not-valid':
    'a CHECK constraint added without NOT VALID scans the table while blocking writes; add it NOT VALID, then VALIDATE CONSTRAINT',
} as const;
export type Rule = keyof typeof RULES;

export interface Finding {
  migration: string;
  rule: Rule;
  statement: string;
  message: string;
  allowed: boolean;
}

/** Splits SQL text into statements, respecting quotes, dollar quotes and comments. */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i]!;
    const rest = sql.slice(i);
    const dollar = /^\$[A-Za-z_]*\$/.exec(rest);
    if (dollar) {
      const end = sql.indexOf(dollar[0], i + dollar[0].length);
      const stop = end < 0 ? sql.length : end + dollar[0].length;
      cur += sql.slice(i, stop);
      i = stop - 1;
      continue;
    }
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < sql.length && !(sql[j] === ch && sql[j + 1] !== ch)) j += sql[j] === ch ? 2 : 1;
      cur += sql.slice(i, j + 1);
      i = j;
      continue;
    }
    if (rest.startsWith('--')) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl;
      cur += '\n';
      continue;
    }
    if (ch === ';') {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** Splits at top-level commas (not inside parentheses or quotes). */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0,
    cur = '',
    quote = '';
  for (const ch of s) {
    if (quote) {
      cur += ch;
      if (ch === quote) quote = '';
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      cur += ch;
      continue;
    }
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur.trim()) parts.push(cur.trim());
  return parts;
}

const tableName = (raw: string) =>
  raw
    .replace(/"/g, '')
    .replace(/^public\./, '')
    .toLowerCase();
const VOLATILE =
  /\b(random|gen_random_uuid|uuid_generate_v[14]|clock_timestamp|timeofday|statement_timestamp|nextval)\s*\(/i;

/** The findings of one migration's statements; tables created earlier in the same migration are new and exempt. */
export function lintStatements(migration: string, statements: string[]): Array<Omit<Finding, 'allowed'>> {
  const created = new Set<string>();
  const findings: Array<Omit<Finding, 'allowed'>> = [];
  const flag = (rule: Rule, statement: string) => findings.push({ migration, rule, statement, message: RULES[rule] });
  for (const raw of statements) {
    const st = raw.replace(/\s+/g, ' ').trim();
    let m: RegExpExecArray | null;
    if ((m = /^CREATE (?:UNLOGGED )?TABLE (?:IF NOT EXISTS )?("?[\w.]+"?(?:\."[^"]+")?)/i.exec(st))) {
      created.add(tableName(m[1]!));
      continue;
    }
    if ((m = /^CREATE (?:UNIQUE )?INDEX (CONCURRENTLY )?.*? ON (?:ONLY )?("?[\w.]+"?(?:\."[^"]+")?)/i.exec(st))) {
      if (!m[1] && !created.has(tableName(m[2]!))) flag('require-concurrent-index-creation', st);
      continue;
    }
    if (/^DROP TABLE/i.test(st)) {
      flag('ban-drop-table', st);
      continue;
    }
    if (!(m = /^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?("?[\w.]+"?(?:\."[^"]+")?) (.*)$/i.exec(st))) continue;
    const isNew = created.has(tableName(m[1]!));
    for (const clause of splitTopLevel(m[2]!)) {
      if (/^DROP (COLUMN )?(?!CONSTRAINT)/i.test(clause)) {
        flag('ban-drop-column', st);
        continue;
      }
      if (/^ALTER (COLUMN )?\S+ (SET DATA )?TYPE /i.test(clause)) {
        flag('changing-column-type', st);
        continue;
      }
      if (isNew) continue;
      if (/^ADD CONSTRAINT .*\b(FOREIGN KEY|REFERENCES)\b/i.test(clause) || /^ADD FOREIGN KEY/i.test(clause)) {
        if (!/\bNOT VALID\b/i.test(clause)) flag('adding-foreign-key-constraint', st);
        continue;
      }
      if (/^ADD (CONSTRAINT \S+ )?CHECK\b/i.test(clause)) {
        if (!/\bNOT VALID\b/i.test(clause)) flag('constraint-missing-not-valid', st);
        continue;
      }
      if (/^ADD (COLUMN )?(?!CONSTRAINT\b)/i.test(clause)) {
        const hasDefault = /\bDEFAULT\b/i.test(clause);
        if (/\bNOT NULL\b/i.test(clause) && !hasDefault && !/\b(big|small)?serial\b/i.test(clause))
          flag('adding-required-field', st);
        if ((hasDefault && VOLATILE.test(clause)) || /\b(big|small)?serial\b/i.test(clause))
          flag('adding-field-with-volatile-default', st);
        if (/\bREFERENCES\b/i.test(clause)) flag('adding-foreign-key-constraint', st);
        if (/\bCHECK\b/i.test(clause)) flag('constraint-missing-not-valid', st);
      }
    }
  }
  return findings;
}

/** `// migrate-lint: allow <rule> -- reason` comments; a marker without a reason does not count. */
export function allowedRules(source: string): Set<string> {
  const allowed = new Set<string>();
  for (const m of source.matchAll(/\/\/\s*migrate-lint:\s*allow\s+([a-z-]+)\s+--\s*\S.*$/gm)) allowed.add(m[1]!);
  return allowed;
}

/** node-pg-migrate renders `up` without a database: a stand-in that refuses queries. */
const noDatabase = {
  query: () => Promise.reject(new Error('migrate:lint renders SQL only; a migration that queries cannot be linted')),
  select: () => Promise.reject(new Error('migrate:lint renders SQL only')),
};

export async function renderUp(file: string): Promise<string[]> {
  const mod = (await import(pathToFileURL(file).href)) as {
    up?: (pgm: MigrationBuilder) => unknown;
    shorthands?: never;
  };
  if (typeof mod.up !== 'function') throw failed(`${basename(file)} exports no up()`);
  const silent = { debug() {}, info() {}, warn() {}, error() {} };
  const { MigrationBuilder } = await import('node-pg-migrate');
  const pgm = new MigrationBuilder(noDatabase as never, mod.shorthands, false, silent as never);
  await mod.up(pgm);
  return pgm.getSqlSteps().flatMap(splitStatements);
}

export async function lintMigrations(dir: string): Promise<Finding[]> {
  const files = readdirSync(dir)
    .filter((f) => /^\d+_.+\.[jt]s$/.test(f) && !f.endsWith('.d.ts'))
    .sort();
  const findings: Finding[] = [];
  for (const f of files) {
    const path = join(dir, f);
    const allowed = allowedRules(readFileSync(path, 'utf8'));
    for (const x of lintStatements(f.replace(/\.[jt]s$/, ''), await renderUp(path)))
      findings.push({ ...x, allowed: allowed.has(x.rule) });
  }
  return findings;
}
