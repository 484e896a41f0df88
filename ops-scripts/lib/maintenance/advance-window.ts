// The attendance window's daily move (migration attendance-issue-counts): the
// stored counts are exact whatever day they are as of, but the view's
// candidates are the students stored above five since that day, so a window
// left behind makes the view read more each day. The vacuum job moves it first.
import type { PgClient } from '../db.ts';
import { describeError } from '../errors.ts';
import type { StepStatus } from '../logger.ts';

export interface WindowResult {
  status: StepStatus;
  /** Days the window moved (0: it was already as of today). */
  days?: number;
  detail?: string;
}

export async function advanceAttendanceWindow(c: PgClient, dryRun: boolean): Promise<WindowResult> {
  if (dryRun) return { status: 'skipped', detail: 'dry run' };
  const { rows } = await c.query<{ fn: string | null }>(
    "SELECT to_regprocedure('edupulse_derived.advance_attendance_window(date)')::text AS fn",
  );
  if (!rows[0]?.fn) return { status: 'skipped', detail: 'no attendance window here (migrations not applied)' };
  try {
    const r = await c.query<{ days: number }>(
      'SELECT edupulse_derived.advance_attendance_window(current_date) AS days',
    );
    return { status: 'done', days: r.rows[0]!.days };
  } catch (err) {
    return { status: 'failed', detail: describeError(err) };
  }
}
