import fs from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from './errors.js';

/**
 * Advisory locks that work on NFS and Lustre: no flock, only an exclusive
 * create (O_CREAT|O_EXCL) of `<path>.lock` plus a heartbeat. A lock whose
 * holder is gone is detected and broken:
 *  - same host: the recorded pid no longer exists;
 *  - other host: the heartbeat (file mtime) is older than `staleMs`.
 * Breaking renames the lock file to a unique name first, so when two
 * waiters break the same stale lock only one of them wins.
 */
export interface LockOptions {
  /** Give up after this long (ms). Default 10 minutes. */
  timeoutMs?: number;
  /** A lock not refreshed for this long is stale (ms). Default 60 s. */
  staleMs?: number;
}

interface Holder { host: string; pid: number; time: number }

const HEARTBEAT_MS = 10_000;

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

function isStale(lockPath: string, staleMs: number): boolean {
  let st: fs.Stats; let holder: Holder;
  try {
    st = fs.statSync(lockPath);
    holder = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as Holder;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false; // released meanwhile: just retry
    // Unreadable or half-written: stale only when old.
    try { return Date.now() - fs.statSync(lockPath).mtimeMs > staleMs; } catch { return false; }
  }
  if (holder.host === os.hostname()) return !pidAlive(holder.pid);
  return Date.now() - st.mtimeMs > staleMs;
}

export class Lock {
  private timer?: NodeJS.Timeout;
  constructor(readonly path: string) {
    this.timer = setInterval(() => {
      const now = new Date();
      try { fs.utimesSync(this.path, now, now); } catch { /* released or broken */ }
    }, HEARTBEAT_MS);
    this.timer.unref();
  }
  release(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    try { fs.unlinkSync(this.path); } catch { /* already gone */ }
  }
}

/** Try once; returns undefined when someone else holds it. */
export function tryLock(target: string, opts: LockOptions = {}): Lock | undefined {
  const lockPath = `${target}.lock`;
  const staleMs = opts.staleMs ?? 60_000;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(lockPath, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644);
      fs.writeSync(fd, JSON.stringify({ host: os.hostname(), pid: process.pid, time: Date.now() } satisfies Holder));
      fs.closeSync(fd);
      return new Lock(lockPath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new UserError(`cannot create lock ${lockPath}: ${(e as Error).message}`);
    }
    if (!isStale(lockPath, staleMs)) return undefined;
    const aside = `${lockPath}.stale.${os.hostname()}.${process.pid}.${Date.now()}`;
    try { fs.renameSync(lockPath, aside); fs.unlinkSync(aside); } catch { /* another waiter broke it first */ }
  }
  return undefined;
}

/** Wait for the lock, with backoff, up to opts.timeoutMs. */
export async function acquireLock(target: string, opts: LockOptions = {}): Promise<Lock> {
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
  let delay = 20;
  for (;;) {
    const lock = tryLock(target, opts);
    if (lock) return lock;
    if (Date.now() > deadline) {
      throw new UserError(`timed out waiting for lock ${target}.lock`, 1,
        'another userdock process holds it; if none is running, remove that file');
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 500);
  }
}

/** Run fn while holding the lock on target. */
export async function withLock<T>(target: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const lock = await acquireLock(target, opts);
  try { return await fn(); } finally { lock.release(); }
}
