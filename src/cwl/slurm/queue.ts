import { execFile } from 'node:child_process';

/**
 * Talking to Slurm from the submit side: one sbatch per array, and ONE batched
 * squeue per poll interval for every job the runner waits on, with backoff
 * (never `sbatch --wait`/`srun` per job: those poll slurmctld on their own).
 * Final states come from `sacct` when accounting is on, otherwise from
 * `scontrol show job`, which keeps finished jobs for MinJobAge.
 */

export interface JobFinal { jobId: string; state: string; exitCode: number | null; signal: number | null }

export type Exec = (cmd: string, args: string[], timeoutMs: number) => Promise<{ code: number; stdout: string; stderr: string }>;

export const defaultExec: Exec = (cmd, args, timeoutMs) => new Promise((resolve) => {
  execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 256 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
    const c = err ? (err as NodeJS.ErrnoException).code : 0;
    resolve({ code: typeof c === 'number' ? c : err ? 127 : 0, stdout: String(stdout ?? ''), stderr: String(stderr ?? '') || (err ? err.message : '') });
  });
});

/** Job states after which a job will not run again. */
export const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY', 'BOOT_FAIL', 'DEADLINE', 'REVOKED', 'SPECIAL_EXIT']);

export interface SbatchOptions {
  script: string; // path of the batch script
  array?: string; // e.g. "0-99%50"
  jobName?: string;
  partition?: string;
  cwd?: string; // --chdir
  output?: string; // -o pattern, e.g. dir/%A_%a.out
  error?: string;
  timeMinutes?: number;
  cpus?: number;
  memMB?: number;
  extra?: string[];
}

/** Submits one job (or one array) and returns its job id. */
export async function sbatch(o: SbatchOptions, exec: Exec = defaultExec): Promise<string> {
  const a = ['--parsable'];
  if (o.array) a.push(`--array=${o.array}`);
  if (o.jobName) a.push(`--job-name=${o.jobName}`);
  if (o.partition) a.push(`--partition=${o.partition}`);
  if (o.cwd) a.push(`--chdir=${o.cwd}`);
  if (o.output) a.push(`--output=${o.output}`);
  if (o.error) a.push(`--error=${o.error}`);
  if (o.timeMinutes) a.push(`--time=${Math.ceil(o.timeMinutes)}`);
  if (o.cpus) a.push(`--cpus-per-task=${o.cpus}`);
  if (o.memMB) a.push(`--mem=${Math.ceil(o.memMB)}M`);
  a.push(...(o.extra ?? []), o.script);
  // Submission is retried on transient controller errors (slurmctld busy/restarting).
  let delay = 500;
  for (let attempt = 1; ; attempt++) {
    const r = await exec('sbatch', a, 60_000);
    const id = /^(\d+)/.exec(r.stdout.trim())?.[1];
    if (r.code === 0 && id) return id;
    const transient = /Socket timed out|Unable to contact slurm controller|Resource temporarily unavailable|try again/i.test(r.stderr);
    if (!transient || attempt >= 5) throw new Error(`sbatch failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    await new Promise((res) => setTimeout(res, delay));
    delay *= 2;
  }
}

/** `squeue -h -r -o '%i|%T'` output -> id ("123" or "123_4") -> state. */
export function parseSqueue(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [id, state] = line.trim().split('|');
    if (id && state) m.set(id, state);
  }
  return m;
}

function exitOf(v: string | undefined): { exitCode: number | null; signal: number | null } {
  const m = /^(\d+):(\d+)$/.exec(v ?? '');
  return m ? { exitCode: Number(m[1]), signal: Number(m[2]) } : { exitCode: null, signal: null };
}

/** `scontrol show job -o` output -> finals keyed by "123" or "123_4" (array tasks). */
export function parseScontrol(out: string): JobFinal[] {
  const res: JobFinal[] = [];
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    const rec: Record<string, string> = {};
    for (const tok of line.trim().split(/\s+/)) {
      const i = tok.indexOf('=');
      if (i > 0 && !(tok.slice(0, i) in rec)) rec[tok.slice(0, i)] = tok.slice(i + 1);
    }
    const id = rec.ArrayJobId && rec.ArrayTaskId && /^\d+$/.test(rec.ArrayTaskId) ? `${rec.ArrayJobId}_${rec.ArrayTaskId}` : rec.JobId;
    if (id && rec.JobState) res.push({ jobId: id, state: rec.JobState, ...exitOf(rec.ExitCode) });
  }
  return res;
}

/** `sacct -X -n -P -o JobID,State,ExitCode` output -> finals. State may read "CANCELLED by 1001". */
export function parseSacct(out: string): JobFinal[] {
  const res: JobFinal[] = [];
  for (const line of out.split('\n')) {
    const [id, state, exit] = line.trim().split('|');
    if (!id || !state || id.includes('[')) continue;
    res.push({ jobId: id, state: state.split(' ')[0]!, ...exitOf(exit) });
  }
  return res;
}

interface Waiter { ids: Set<string>; prefix: string | null; resolve: (r: JobFinal[]) => void; reject: (e: Error) => void }

/**
 * Waits for many jobs/arrays with one squeue call per interval. The interval
 * starts at minDelayMs, doubles to maxDelayMs while nothing changes, and
 * resets when any watched job changes state; a little jitter spreads many
 * runners apart.
 */
export class SlurmPoller {
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private delay: number;
  private last = new Map<string, string>();
  private accountingOff = false;
  private ticking = false;

  constructor(private opts: { minDelayMs?: number; maxDelayMs?: number; exec?: Exec } = {}) {
    this.delay = opts.minDelayMs ?? 1000;
  }

  private get exec(): Exec { return this.opts.exec ?? defaultExec; }

  /** Resolves with the final state of a job, or of every task of an array job. */
  wait(jobId: string): Promise<JobFinal[]> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ ids: new Set([jobId]), prefix: /^\d+$/.test(jobId) ? `${jobId}_` : null, resolve, reject });
      this.delay = this.opts.minDelayMs ?? 1000;
      this.schedule(Math.min(this.delay, 250));
    });
  }

  private schedule(ms: number): void {
    if (this.timer || this.ticking || this.waiters.length === 0) return;
    const jitter = ms * 0.1 * Math.random();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.ticking = true;
      this.tick().catch(() => undefined).finally(() => { this.ticking = false; this.schedule(this.delay); });
    }, ms + jitter);
  }

  private async tick(): Promise<void> {
    const waiting = this.waiters;
    const ids = [...new Set(waiting.flatMap((w) => [...w.ids].map((i) => i.split('_')[0]!)))];
    let q: Map<string, string>;
    try {
      const r = await this.exec('squeue', ['-h', '-r', '-j', ids.join(','), '-o', '%i|%T'], 60_000);
      // Exit 1 with "Invalid job id" when every listed job has already left the queue.
      if (r.code !== 0 && !/Invalid job id/i.test(r.stderr)) throw new Error(`squeue: ${r.stderr.trim()}`);
      q = r.code === 0 ? parseSqueue(r.stdout) : new Map();
    } catch {
      // Controller busy: back off and retry.
      this.delay = Math.min(this.opts.maxDelayMs ?? 30_000, this.delay * 2);
      return;
    }
    let changed = false;
    for (const [k, v] of q) if (this.last.get(k) !== v) changed = true;
    this.last = q;
    const done: Waiter[] = [];
    for (const w of waiting) {
      const active = [...q.entries()].some(([k, st]) => (w.ids.has(k) || (w.prefix !== null && k.startsWith(w.prefix))) && !TERMINAL.has(st));
      if (!active) done.push(w);
    }
    for (const w of done) {
      changed = true;
      this.waiters = this.waiters.filter((x) => x !== w);
      try {
        w.resolve(await this.finals([...w.ids][0]!));
      } catch (e) {
        w.reject(e as Error);
      }
    }
    this.delay = changed ? (this.opts.minDelayMs ?? 1000) : Math.min(this.opts.maxDelayMs ?? 30_000, this.delay * 2);
  }

  /** Final states of a job or all tasks of an array job. */
  async finals(jobId: string): Promise<JobFinal[]> {
    if (!this.accountingOff) {
      const r = await this.exec('sacct', ['-X', '-n', '-P', '-j', jobId, '-o', 'JobID,State,ExitCode'], 60_000);
      if (r.code === 0) {
        const f = parseSacct(r.stdout);
        if (f.length > 0 && f.every((x) => TERMINAL.has(x.state))) return f;
      } else if (/accounting storage is disabled|not running a supported accounting_storage/i.test(r.stderr)) {
        this.accountingOff = true;
      }
    }
    const r = await this.exec('scontrol', ['show', 'job', '-o', jobId], 60_000);
    if (r.code !== 0) throw new Error(`job ${jobId}: no final state (sacct off and scontrol: ${r.stderr.trim()}); MinJobAge expired?`);
    return parseScontrol(r.stdout);
  }

  /** Stops polling; pending waits are rejected. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.waiters) w.reject(new Error('SlurmPoller closed'));
    this.waiters = [];
  }
}
