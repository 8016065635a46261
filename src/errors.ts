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

/** A full filesystem or an exhausted quota, said one way wherever it happens (see diskFull). */
export class DiskFull extends UserError {}

/**
 * A full filesystem or an exhausted quota (ENOSPC, EDQUOT) anywhere in an
 * error: its code, a cause's, or a message that carries it (a worker
 * thread's report, cp's stderr, a layer error); as the error a user can act
 * on. `where`: the directory being written (a node error's own path, when
 * it has one, is named too); `elsewhere`: the other way out (default: move
 * the store; callers that use the default remove what they half-wrote).
 */
export function diskFull(err: unknown, where: string, elsewhere = 'keep the store on a bigger filesystem: USERDOCK_DIR=DIR or --repo=DIR; nothing half-written was kept'): DiskFull | undefined {
  if (err instanceof DiskFull) return err;
  let text = '';
  let file: string | undefined;
  for (let x = err, i = 0; x && i < 4; x = (x as { cause?: unknown }).cause, i++) {
    const e = x as { code?: string; message?: string; path?: string };
    text += ` ${e.code ?? ''} ${e.message ?? String(x)}`;
    file ??= typeof e.path === 'string' ? e.path : undefined;
  }
  const quota = /EDQUOT|quota exceeded/i.test(text);
  if (!quota && !/ENOSPC|no space left on device/i.test(text)) return undefined;
  const at = file ? `${file} (in ${where})` : where;
  return new DiskFull(quota ? `disk quota exceeded writing ${at} (EDQUOT)` : `no space left on the filesystem of ${at} (ENOSPC)`, EXIT.fail,
    `${quota ? 'free some of the quota' : 'free space there'}, or ${elsewhere}`);
}

/** Why a file could not be read, in words, with the errno code: "permission denied (EACCES)". */
export function readFailure(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const why = ({ ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'it is a directory', ENOTDIR: 'a parent is not a directory', ELOOP: 'too many symlinks' } as Record<string, string>)[code];
  return why ? `${why} (${code})` : (e as Error).message ?? String(e);
}

/** Render any thrown value as the one line the CLI prints. */
export function describeError(err: unknown): string {
  if (err instanceof UserError) return err.hint ? `${err.message} (${err.hint})` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
