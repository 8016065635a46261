/**
 * Errors a user can act on. Every failure that reaches the CLI is one of these:
 * one line naming what was wrong and where, and a documented exit code.
 */
export const EXIT = {
  ok: 0,
  /** CWL permanentFail (cwl-run). */
  fail: 1,
  /** Usage error: bad flags or arguments. */
  usage: 2,
  /** CWL: unsupported requirement (cwl-run). */
  unsupported: 33,
  /** userdock's own failure during `run` (docker's convention). */
  internal: 125,
  /** The container command exists but cannot be executed. */
  notExecutable: 126,
  /** The container command was not found. */
  notFound: 127,
} as const;

export class UserError extends Error {
  constructor(
    message: string,
    /** Exit code the CLI uses for this error. */
    public readonly exitCode: number = 1,
    /** A hint naming the fix, printed after the message. */
    public readonly hint?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export class UsageError extends UserError {
  constructor(message: string, hint?: string) {
    super(message, EXIT.usage, hint);
    this.name = 'UsageError';
  }
}

/** Render any thrown value as the one line the CLI prints. */
export function describeError(err: unknown): string {
  if (err instanceof UserError) return err.hint ? `${err.message} (${err.hint})` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
