// Index declarations: the documented indexes, plus what the views and the
// documented queries need. Applied by the reconcile engine
// (ops-scripts/lib/reconcile), built CONCURRENTLY.

export interface IndexDecl {
  name: string;
  schema: string;
  table: string;
  /** Column names or expressions, in order; a direction may follow (`prediction_date DESC`). */
  columns: string[];
  unique?: boolean;
  method?: 'btree' | 'gin' | 'gist' | 'brin' | 'hash';
  include?: string[];
  /** A partial index's predicate. */
  where?: string;
  purpose: string;
}

const pub = 'public';

export const indexes: IndexDecl[] = [
  {
    name: 'idx_students_grade_level',
    schema: pub,
    table: 'students',
    columns: ['grade_level'],
    purpose: 'documented: students by grade',
  },
  {
    name: 'idx_students_name',
    schema: pub,
    table: 'students',
    columns: ['first_name', 'last_name'],
    purpose: 'documented: lookups by name',
  },
  {
    name: 'idx_attendance_student_date',
    schema: pub,
    table: 'attendance_records',
    columns: ['student_id', 'date'],
    purpose: "documented: a student's attendance over time; the foreign key's cascade",
  },
  {
    name: 'idx_attendance_issues_recent',
    schema: pub,
    table: 'attendance_records',
    columns: ['date'],
    include: ['student_id', 'status'],
    where: "status IN ('absent', 'tardy')",
    purpose: 'student_attendance_concerns: absences and tardies by date, index-only',
  },
  {
    name: 'idx_attendance_issue_counts_over_five',
    schema: 'edupulse_derived',
    table: 'attendance_issue_counts',
    columns: ['student_id'],
    include: ['absences', 'tardies'],
    where: 'absences + tardies > 5',
    purpose: 'student_attendance_concerns: the students stored above five, the only ones who can qualify',
  },
  {
    name: 'idx_grades_student_course',
    schema: pub,
    table: 'grades',
    columns: ['student_id', 'course_id'],
    purpose: "documented: a student's grades per course",
  },
  {
    name: 'idx_discipline_student_date',
    schema: pub,
    table: 'discipline_incidents',
    columns: ['student_id', 'incident_date'],
    purpose: "a student's incidents; the foreign key's cascade",
  },
  {
    name: 'idx_predictions_student_date',
    schema: pub,
    table: 'predictions',
    columns: ['student_id', 'prediction_date'],
    purpose: "documented: a student's predictions over time; the latest-prediction recompute",
  },
  {
    name: 'idx_predictions_risk_category',
    schema: pub,
    table: 'predictions',
    columns: ['risk_category'],
    purpose: 'documented: predictions by category',
  },
];
