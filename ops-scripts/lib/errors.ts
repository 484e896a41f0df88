// One error type for the toolkit. The exit code is part of the contract:
// 0 done, 1 the job ran and failed, 2 bad input (nothing changed),
// 3 refused by a safety check (nothing changed).
export const ExitCode = { ok: 0, failed: 1, badInput: 2, refused: 3 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorKind = 'failed' | 'bad-input' | 'refused';

const exitCodeOf: Record<ErrorKind, ExitCode> = {
  failed: ExitCode.failed,
  'bad-input': ExitCode.badInput,
  refused: ExitCode.refused,
};

export class ToolkitError extends Error {
  readonly kind: ErrorKind;
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;

  constructor(kind: ErrorKind, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ToolkitError';
    this.kind = kind;
    this.hint = hint;
    this.exitCode = exitCodeOf[kind];
  }
}

export const badInput = (message: string, hint?: string) => new ToolkitError('bad-input', message, hint);
export const refused = (message: string, hint?: string) => new ToolkitError('refused', message, hint);
export const failed = (message: string, hint?: string, cause?: unknown) =>
  new ToolkitError('failed', message, hint, { cause });

interface PgErrorFields {
  code?: string;
  detail?: string;
  hint?: string;
  message: string;
}

function isPgError(err: unknown): err is PgErrorFields {
  const code = (err as { code?: unknown } | undefined)?.code;
  return err instanceof Error && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

interface NetErrorFields {
  code?: string;
  address?: string;
  port?: number;
  errors?: unknown[];
}

/** A refused connection (Node's ECONNREFUSED, or the first of an AggregateError's attempts), as "host:port". */
function refusedAt(err: unknown): string | undefined {
  const e = err as NetErrorFields | undefined;
  if (!(err instanceof Error) || e?.code !== 'ECONNREFUSED') return undefined;
  const first = (e.errors?.[0] as NetErrorFields | undefined) ?? e;
  return first.address ? `${first.address}:${first.port}` : 'the server';
}

/** Text for a person: the message, a Postgres error's SQLSTATE, detail and hint, and ours. */
export function describeError(err: unknown): string {
  if (err instanceof ToolkitError) {
    return err.hint ? `${err.message}\n  hint: ${err.hint}` : err.message;
  }
  const at = refusedAt(err);
  if (at)
    return `could not connect to ${at}: nothing is accepting connections there (ECONNREFUSED)\n  hint: \`npm run status\` shows the stack's servers and \`npm run up\` starts them; or point DATABASE_URL, EDUPULSE_PG_PORT or REDIS_URL at the running ones`;
  if (isPgError(err)) {
    const lines = [`${err.message} (SQLSTATE ${err.code})`];
    if (err.detail) lines.push(`  detail: ${err.detail}`);
    if (err.hint) lines.push(`  hint: ${err.hint}`);
    return lines.join('\n');
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export function exitCodeFor(err: unknown): ExitCode {
  return err instanceof ToolkitError ? err.exitCode : ExitCode.failed;
}
