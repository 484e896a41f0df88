// Recovery targets from flags: exactly one of a time (with its zone), an LSN,
// a named restore point, or "immediate" (the end of the backup).
import { badInput } from '../errors.ts';

export type RecoveryTarget =
  | { kind: 'time'; time: Date; micros?: bigint }
  | { kind: 'lsn'; lsn: string }
  | { kind: 'name'; name: string }
  | { kind: 'immediate' };

/**
 * A time target to the microsecond, as PostgreSQL's commit times are: `time` is cut to the millisecond (a Date),
 * `micros` (microseconds since the epoch) keeps what was asked when it is finer.
 */
export interface TargetTime {
  time: Date;
  micros?: bigint;
}

/** The target's exact time in microseconds since the epoch. */
export const exactMicros = (t: TargetTime): bigint => t.micros ?? BigInt(t.time.getTime()) * 1000n;

/** ISO 8601 UTC of a target: to the millisecond as Date prints it, to the microsecond when it has more. */
export function isoOf(t: TargetTime): string {
  const us = exactMicros(t) % 1000n;
  return us === 0n ? t.time.toISOString() : t.time.toISOString().replace('Z', `${us.toString().padStart(3, '0')}Z`);
}

/**
 * ISO 8601 with a zone (Z or ±hh:mm). A time without a zone is refused: UTC or local would be a guess. Fractions to
 * the microsecond are kept in `micros` (a Date alone would drop what is below the millisecond).
 */
export function parseTargetTime(raw: string): TargetTime {
  const m = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$/i.exec(raw.trim());
  if (!m) {
    if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(raw.trim())) {
      throw badInput(
        `target time "${raw}" has no time zone`,
        `add one, for example ${raw.trim().replace(' ', 'T')}Z for UTC`,
      );
    }
    throw badInput(`target time "${raw}" is not a time`, 'use ISO 8601 with a zone, for example 2026-11-24T21:30:00Z');
  }
  const d = new Date(raw.trim().replace(' ', 'T'));
  if (Number.isNaN(d.getTime()) || !isCalendarDate(raw.trim().slice(0, 10))) {
    throw badInput(
      `target time "${raw}" is not a valid time (no such day or hour)`,
      'use a real date and time, for example 2026-11-24T21:30:00Z',
    );
  }
  const belowMillis = BigInt((m[2] ?? '').slice(1).padEnd(6, '0').slice(3));
  return belowMillis ? { time: d, micros: BigInt(d.getTime()) * 1000n + belowMillis } : { time: d };
}

/** YYYY-MM-DD naming a day that exists (Date would roll 2000-02-30 over to March 1st). */
export function isCalendarDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]);
}

export function parseTarget(flags: { time?: string; lsn?: string; name?: string; target?: string }): RecoveryTarget {
  const given = [flags.time && 'time', flags.lsn && 'lsn', flags.name && 'name', flags.target && 'target'].filter(
    Boolean,
  );
  if (given.length !== 1) {
    throw badInput(
      given.length ? `give one recovery target, not ${given.join(' and ')}` : 'no recovery target given',
      'use one of --target-time T, --target-lsn L, --target-name N, --target immediate',
    );
  }
  if (flags.time) return { kind: 'time', ...parseTargetTime(flags.time) };
  if (flags.lsn) {
    if (!/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(flags.lsn))
      throw badInput(`"${flags.lsn}" is not an LSN`, 'use the form 0/3000060');
    return { kind: 'lsn', lsn: flags.lsn.toUpperCase() };
  }
  if (flags.name) return { kind: 'name', name: flags.name };
  if (flags.target !== 'immediate')
    throw badInput(`--target ${flags.target} is not known`, 'the only named target is immediate');
  return { kind: 'immediate' };
}

export function describeTarget(t: RecoveryTarget): string {
  switch (t.kind) {
    case 'time':
      return `time ${isoOf(t)}`;
    case 'lsn':
      return `LSN ${t.lsn}`;
    case 'name':
      return `restore point "${t.name}"`;
    case 'immediate':
      return 'the end of the backup';
  }
}

/** The recovery_target_* settings for postgresql.conf. */
export function targetParameters(t: RecoveryTarget): Record<string, string> {
  switch (t.kind) {
    // PostgreSQL rejects the ISO 'T' form here; the space form with an explicit UTC offset is unambiguous.
    case 'time':
      return { recovery_target_time: isoOf(t).replace('T', ' ').replace('Z', '+00') };
    case 'lsn':
      return { recovery_target_lsn: t.lsn };
    case 'name':
      return { recovery_target_name: t.name };
    case 'immediate':
      return { recovery_target: 'immediate' };
  }
}
