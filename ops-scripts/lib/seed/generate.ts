// Realistic synthetic data, deterministic for a seed: students in grades
// 9-12, a school year of daily attendance (weekends skipped, a skewed
// minority of chronically absent students), grades across courses and
// assignment types, discipline incidents, and predictions over time whose
// risk loosely follows attendance and grades. Rows come out as COPY text lines.
import { Rng } from './random.ts';

export interface SeedSpec {
  seed: string;
  students: number;
  /** Index of the first student (for --append: after the ones already there). */
  offset: number;
  /** The last day of the school year (UTC date); the year is the 180 school days up to it. */
  yearEnd: string;
}

export const SCHOOL_DAYS = 180;
export const PREDICTIONS_PER_STUDENT = 10;

export interface Profile {
  id: string;
  grade: number;
  absenceRate: number;
  tardyRate: number;
  /** 0..1: how well the student does in class. */
  ability: number;
  incidentRate: number;
}

const FIRST = [
  'Aaliyah',
  'Aiden',
  'Amara',
  'Benjamin',
  'Camila',
  'Carlos',
  'Chloe',
  'Daniel',
  'Elena',
  'Ethan',
  'Fatima',
  'Gabriel',
  'Grace',
  'Hannah',
  'Isaac',
  'Isabella',
  'Jamal',
  'Jasmine',
  'Kai',
  'Layla',
  'Liam',
  'Lucas',
  'Maya',
  'Mei',
  'Mohammed',
  'Noah',
  'Olivia',
  'Priya',
  'Rafael',
  'Sofia',
  'Tariq',
  'Valentina',
  'William',
  'Yusuf',
  'Zoe',
  'Nia',
  'Diego',
  'Emma',
  'Hiro',
  'Ava',
];
const LAST = [
  'Adams',
  'Nguyen',
  'Garcia',
  'Smith',
  'Johnson',
  'Kim',
  'Patel',
  'Martinez',
  'Brown',
  'Lee',
  'Hernandez',
  'Lopez',
  'Wilson',
  'Anderson',
  'Thomas',
  'Taylor',
  'Moore',
  'Jackson',
  'Martin',
  'Thompson',
  'White',
  'Harris',
  'Clark',
  'Lewis',
  'Robinson',
  'Walker',
  'Young',
  'Allen',
  'King',
  'Wright',
  'Scott',
  'Torres',
  'Hill',
  'Green',
  'Baker',
  'Okafor',
  'Singh',
  'Cohen',
];
const ETHNICITY = [
  ['White', 45],
  ['Hispanic or Latino', 27],
  ['Black or African American', 15],
  ['Asian', 6],
  ['Two or more races', 5],
  ['American Indian or Alaska Native', 1],
  ['Native Hawaiian or Pacific Islander', 1],
] as const;
const SES = [
  ['low', 35],
  ['middle', 45],
  ['high', 20],
] as const;
const GENDER = [
  ['Female', 49],
  ['Male', 49],
  ['Non-binary', 2],
] as const;
const SUBJECTS = ['MATH', 'ENG', 'SCI', 'HIST'];
const ELECTIVES = ['ART', 'MUS', 'CS', 'SPAN', 'PE', 'FREN'];
/** Type, maximum points, and how much easier (+) or harder (-) than the student's level. */
const ASSIGNMENTS = [
  ['homework', 20, 0.08],
  ['homework', 20, 0.08],
  ['homework', 20, 0.08],
  ['homework', 20, 0.08],
  ['quiz', 50, 0],
  ['quiz', 50, 0],
  ['test', 100, -0.06],
  ['project', 100, 0.03],
] as const;
const ABSENCE_REASONS = ['illness', 'family emergency', 'medical appointment', 'transportation', null, null] as const;
const INCIDENTS = [
  ['disruption', 30],
  ['tardiness', 15],
  ['defiance', 15],
  ['dress code', 10],
  ['cell phone', 15],
  ['fighting', 5],
  ['bullying', 5],
  ['vandalism', 3],
  ['truancy', 2],
] as const;
const ACTIONS = [
  'verbal warning',
  'parent contacted',
  'detention',
  'in-school suspension',
  'out-of-school suspension',
  'counselor referral',
];
const STAFF = ['Ms. Rivera', 'Mr. Chen', 'Mrs. Okoro', 'Mr. Walsh', 'Dr. Haddad', 'Ms. Kowalski', 'Coach Brooks'];

const DAY_MS = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** No school: weekends, the summer break (July to mid-August) and the winter holidays. */
function isSchoolDay(d: Date): boolean {
  const dow = d.getUTCDay(),
    month = d.getUTCMonth() + 1,
    day = d.getUTCDate();
  if (dow === 0 || dow === 6 || month === 7 || (month === 8 && day < 20)) return false;
  return !((month === 12 && day >= 22) || (month === 1 && day <= 2));
}

/** The last SCHOOL_DAYS school days up to yearEnd. */
export function schoolDays(yearEnd: string): string[] {
  const days: string[] = [];
  for (let ms = Date.parse(`${yearEnd}T00:00:00Z`); days.length < SCHOOL_DAYS; ms -= DAY_MS) {
    if (isSchoolDay(new Date(ms))) days.push(iso(ms));
  }
  return days.reverse();
}

/** Academic year and semester of a school day: the year starts in August. */
function term(day: string): { year: string; semester: string } {
  const y = Number(day.slice(0, 4)),
    m = Number(day.slice(5, 7));
  return m >= 8 ? { year: `${y}-${y + 1}`, semester: 'Fall' } : { year: `${y - 1}-${y}`, semester: 'Spring' };
}

export const studentId = (index: number) => `STU${String(index + 1).padStart(7, '0')}`;

export function profile(spec: SeedSpec, index: number): Profile {
  const r = new Rng(spec.seed, 'profile', index);
  const chronic = r.chance(0.12);
  return {
    id: studentId(index),
    grade: r.int(9, 12),
    absenceRate: chronic ? r.normal(0.2, 0.06, 0.1, 0.45) : r.normal(0.035, 0.015, 0.0, 0.09),
    tardyRate: r.normal(0.045, 0.02, 0.005, 0.15),
    ability: r.normal(0.72, 0.12, 0.2, 0.99) - (chronic ? 0.1 : 0),
    incidentRate: chronic ? 1.2 : r.chance(0.15) ? 0.8 : 0.15,
  };
}

/** COPY text format: backslash, tab and newline escaped; null is \N. */
const text = (v: string | null) =>
  v === null ? '\\N' : v.replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c]!);
const line = (values: Array<string | number | boolean | null>) =>
  values.map((v) => (typeof v === 'string' || v === null ? text(v) : String(v))).join('\t') + '\n';

export interface TableGenerator {
  table: string;
  columns: string[];
  /** The COPY lines for one student. */
  rows(p: Profile, spec: SeedSpec, days: string[], index: number): string[];
  /** For a table partitioned by date: the column, and the first and last day its rows carry. */
  dates?: { column: string; range(spec: SeedSpec): [first: string, last: string] };
}

const students: TableGenerator = {
  table: 'students',
  columns: [
    'student_id',
    'first_name',
    'last_name',
    'grade_level',
    'enrollment_date',
    'date_of_birth',
    'gender',
    'ethnicity',
    'special_ed_status',
    'english_learner_status',
    'socioeconomic_status',
  ],
  rows(p, spec, days, index) {
    const r = new Rng(spec.seed, 'student', index);
    const startYear = Number(days[0]!.slice(0, 4)) - (p.grade - 9);
    const enrolled = `${startYear}-08-${String(r.int(15, 28)).padStart(2, '0')}`;
    const born = iso(Date.parse(`${startYear - 14}-09-01T00:00:00Z`) + r.int(0, 364) * DAY_MS);
    return [
      line([
        p.id,
        r.pick(FIRST),
        r.pick(LAST),
        p.grade,
        enrolled,
        born,
        r.weighted(GENDER),
        r.weighted(ETHNICITY),
        r.chance(0.13),
        r.chance(0.1),
        r.weighted(SES),
      ]),
    ];
  },
};

const attendance: TableGenerator = {
  table: 'attendance_records',
  columns: ['student_id', 'date', 'status', 'period', 'minutes_late', 'reason'],
  dates: {
    column: 'date',
    range: (spec) => {
      const days = schoolDays(spec.yearEnd);
      return [days.reduce((a, b) => (a < b ? a : b)), days.reduce((a, b) => (a > b ? a : b))];
    },
  },
  rows(p, spec, days, index) {
    const r = new Rng(spec.seed, 'attendance', index);
    const out: string[] = new Array(days.length);
    for (let i = 0; i < days.length; i++) {
      const x = r.next();
      if (x < p.absenceRate) {
        const excused = r.chance(0.3);
        out[i] = `${p.id}\t${days[i]}\t${excused ? 'excused' : 'absent'}\t\\N\t0\t${text(r.pick(ABSENCE_REASONS))}\n`;
      } else if (x < p.absenceRate + p.tardyRate) {
        out[i] = `${p.id}\t${days[i]}\ttardy\t\\N\t${r.int(1, 40)}\t\\N\n`;
      } else {
        out[i] = `${p.id}\t${days[i]}\tpresent\t\\N\t0\t\\N\n`;
      }
    }
    return out;
  },
};

const grades: TableGenerator = {
  table: 'grades',
  columns: [
    'student_id',
    'course_id',
    'assignment_id',
    'assignment_type',
    'grade_value',
    'max_grade_value',
    'submission_date',
    'semester',
    'academic_year',
  ],
  rows(p, spec, days, index) {
    const r = new Rng(spec.seed, 'grades', index);
    const courses = [...SUBJECTS.map((s) => `${s}-${p.grade}`), `${r.pick(ELECTIVES)}-${p.grade}`];
    const out: string[] = [];
    for (const course of courses) {
      ASSIGNMENTS.forEach(([type, max, ease], n) => {
        const day =
          days[
            Math.max(
              0,
              Math.min(days.length - 1, Math.floor(((n + 0.5) / ASSIGNMENTS.length) * days.length) + r.int(-5, 5)),
            )
          ]!;
        const share = r.normal(p.ability - p.absenceRate * 0.8 + ease, 0.1, 0, 1);
        const { year, semester } = term(day);
        out.push(
          line([
            p.id,
            course,
            `${course}-${type.toUpperCase()}-${n + 1}`,
            type,
            Math.round(share * max * 10) / 10,
            max,
            day,
            semester,
            year,
          ]),
        );
      });
    }
    return out;
  },
};

const discipline: TableGenerator = {
  table: 'discipline_incidents',
  columns: [
    'student_id',
    'incident_date',
    'incident_type',
    'severity_level',
    'description',
    'action_taken',
    'reported_by',
  ],
  rows(p, spec, days, index) {
    const r = new Rng(spec.seed, 'discipline', index);
    const out: string[] = [];
    // Poisson by inversion; the mean grows with absence and low grades.
    const lambda = p.incidentRate * (1 + p.absenceRate * 4 + (0.7 - p.ability));
    let k = 0,
      prob = Math.exp(-lambda),
      cum = prob;
    const u = r.next();
    while (u > cum && k < 20) {
      k++;
      prob *= lambda / k;
      cum += prob;
    }
    for (let i = 0; i < k; i++) {
      const type = r.weighted(INCIDENTS);
      const severity =
        type === 'fighting' || type === 'vandalism'
          ? r.int(3, 5)
          : r.weighted([
              [1, 45],
              [2, 35],
              [3, 15],
              [4, 4],
              [5, 1],
            ] as const);
      out.push(
        line([
          p.id,
          r.pick(days),
          type,
          severity,
          `${type} reported in class`,
          ACTIONS[Math.min(ACTIONS.length - 1, severity - 1 + r.int(0, 1))]!,
          r.pick(STAFF),
        ]),
      );
    }
    return out;
  },
};

const predictions: TableGenerator = {
  table: 'predictions',
  columns: [
    'student_id',
    'risk_score',
    'risk_category',
    'confidence',
    'risk_factors',
    'model_version',
    'prediction_date',
  ],
  rows(p, spec, days, index) {
    const r = new Rng(spec.seed, 'predictions', index);
    const out: string[] = [];
    const step = Math.floor(days.length / PREDICTIONS_PER_STUDENT);
    for (let n = 0; n < PREDICTIONS_PER_STUDENT; n++) {
      const day = days[Math.min(days.length - 1, (n + 1) * step - 1)]!;
      const attendanceRate = Math.max(0, 1 - p.absenceRate + r.normal(0, 0.02));
      const gpa = Math.max(0, Math.min(4, (p.ability - 0.5) * 8 + r.normal(0, 0.2)));
      const score = Math.min(
        1,
        Math.max(0, 0.1 + p.absenceRate * 2.4 + (0.75 - p.ability) * 0.9 + p.incidentRate * 0.08 + r.normal(0, 0.06)),
      );
      const category = score < 0.3 ? 'low' : score < 0.6 ? 'medium' : score < 0.8 ? 'high' : 'critical';
      const factors = `{"attendance_rate": ${attendanceRate.toFixed(3)}, "gpa": ${gpa.toFixed(2)}, "incident_rate": ${p.incidentRate}}`;
      const at = `${day}T${String(r.int(1, 5)).padStart(2, '0')}:${String(r.int(0, 59)).padStart(2, '0')}:00Z`;
      out.push(
        line([
          p.id,
          Math.round(score * 10000) / 10000,
          category,
          Math.round(r.normal(0.82, 0.06, 0.5, 0.99) * 1000) / 1000,
          factors,
          n < 5 ? 'v1.3.0' : 'v1.4.0',
          at,
        ]),
      );
    }
    return out;
  },
};

/** In load order: students first, the tables that reference them after. */
export const GENERATORS: TableGenerator[] = [students, attendance, grades, discipline, predictions];

/** Every COPY line of one table, in chunks of about `chunkBytes`. */
export function* tableChunks(
  gen: TableGenerator,
  spec: SeedSpec,
  chunkBytes = 256 * 1024,
): Generator<{ text: string; rows: number }> {
  const days = schoolDays(spec.yearEnd);
  let buf: string[] = [],
    size = 0,
    rows = 0;
  for (let i = spec.offset; i < spec.offset + spec.students; i++) {
    for (const l of gen.rows(profile(spec, i), spec, days, i)) {
      buf.push(l);
      size += l.length;
      rows++;
    }
    if (size >= chunkBytes) {
      yield { text: buf.join(''), rows };
      buf = [];
      size = 0;
      rows = 0;
    }
  }
  if (buf.length) yield { text: buf.join(''), rows };
}
