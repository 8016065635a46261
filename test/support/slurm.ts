import { execFile } from 'node:child_process';
import path from 'node:path';
import { REPO } from './user.js';

/**
 * A real single-node Slurm cluster for the integration tests, brought up by
 * .ci/slurm-start (Debian's slurm-wlm 22.05 + munge, no systemd). The test
 * process is root; the helpers here query Slurm as root (read-only queries and
 * node admin). Jobs themselves should be submitted as the test user via
 * runAsUser() from ./user.js.
 */
export interface SlurmCluster { partition: string; nodeName: string }

export interface SlurmJob { jobId: string; state: string; name: string; user: string; reason: string; workDir: string }

let started: Promise<SlurmCluster> | undefined;

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === 1 && !stderr ? String(err.message) : '') });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts (or checks) the cluster once per process. .ci/slurm-start is
 * idempotent, serialises concurrent callers with a lock, and takes well under
 * a second when the cluster is already up; a fresh install takes ~15 s.
 */
export function ensureSlurm(): Promise<SlurmCluster> {
  started ??= (async () => {
    if (process.getuid?.() !== 0) throw new Error('ensureSlurm: the test process must be root to start Slurm');
    const r = await run('bash', [path.join(REPO, '.ci', 'slurm-start')], 300_000);
    if (r.code !== 0) throw new Error(`.ci/slurm-start failed (${r.code}):\n${r.stderr}${r.stdout}`);
    const m = /partition=(\S+) node=(\S+)/.exec(r.stdout);
    if (!m) throw new Error(`.ci/slurm-start: unexpected output: ${r.stdout}`);
    return { partition: m[1]!, nodeName: m[2]! };
  })();
  // A failed start is not cached: a later caller retries.
  started.catch(() => { started = undefined; });
  return started;
}

/** Jobs in squeue (pending/running/completing), optionally one user's. One squeue call. */
export async function squeueJobs(user?: string): Promise<SlurmJob[]> {
  const args = ['-h', '-r', '-o', '%i|%T|%j|%u|%r|%Z'];
  if (user) args.push('-u', user);
  const r = await run('squeue', args);
  if (r.code !== 0) throw new Error(`squeue failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const [jobId = '', state = '', name = '', u = '', reason = '', workDir = ''] = l.split('|');
    return { jobId, state, name, user: u, reason, workDir };
  });
}

/** `scontrol show job -o ID` as key=value pairs (one record per array task); [] once the job is purged (MinJobAge=300 s). */
export async function showJob(jobId: string): Promise<Record<string, string>[]> {
  const r = await run('scontrol', ['show', 'job', '-o', jobId]);
  if (r.code !== 0) {
    if (/Invalid job id/i.test(r.stderr)) return [];
    throw new Error(`scontrol show job ${jobId} failed: ${r.stderr}`);
  }
  return r.stdout.split('\n').filter((l) => l.trim()).map((line) => {
    const rec: Record<string, string> = {};
    // Values have no spaces except Command/WorkDir/StdOut paths, which we do not rely on.
    for (const tok of line.trim().split(/\s+/)) {
      const i = tok.indexOf('=');
      if (i > 0) rec[tok.slice(0, i)] = tok.slice(i + 1);
    }
    return rec;
  });
}

/** JobState of a (non-array) job, e.g. PENDING, RUNNING, COMPLETED, CANCELLED; undefined if unknown. */
export async function jobState(jobId: string): Promise<string | undefined> {
  return (await showJob(jobId))[0]?.JobState;
}

/** Polls with backoff (100 ms .. 1 s) until the job reaches one of `states`. */
export async function waitJobState(jobId: string, states: string[], timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  let last: string | undefined;
  for (;;) {
    last = await jobState(jobId);
    if (last && states.includes(last)) return last;
    if (Date.now() > deadline) throw new Error(`job ${jobId}: state ${last ?? '(unknown)'} after ${timeoutMs} ms, wanted ${states.join('|')}`);
    await sleep(delay);
    delay = Math.min(1000, delay * 2);
  }
}

/** The node's state as sinfo prints it (idle, mixed, allocated, down, drained, idle*, ...). */
export async function nodeState(nodeName: string): Promise<string> {
  const r = await run('sinfo', ['-h', '-n', nodeName, '-o', '%T']);
  if (r.code !== 0) throw new Error(`sinfo failed: ${r.stderr}`);
  return r.stdout.trim().split('\n')[0] ?? '';
}

/**
 * Waits until the node is idle and (if `noJobs`, the default) the queue holds
 * no jobs, i.e. nothing would be disturbed by node admin. Polls with backoff.
 */
export async function waitIdle(opts: { nodeName?: string; noJobs?: boolean; timeoutMs?: number } = {}): Promise<void> {
  const nodeName = opts.nodeName ?? (await ensureSlurm()).nodeName;
  // 300 s: a CI run once saw the node stay 'mixed' with no job queued for over 120 s right after the
  // shared test group (nothing in slurmctld's or slurmd's log); it was idle again 2 minutes later.
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  let delay = 100;
  for (;;) {
    const st = await nodeState(nodeName);
    const jobs = opts.noJobs === false ? [] : await squeueJobs();
    if (st === 'idle' && jobs.length === 0) return;
    if (Date.now() > deadline) {
      // What holds the node, for the log: its CPU allocation and every job slurmctld still knows.
      const node = (await run('scontrol', ['show', 'node', nodeName])).stdout.match(/CPUAlloc=\S+|State=\S+/g)?.join(' ') ?? '';
      const known = (await run('scontrol', ['-o', 'show', 'jobs'])).stdout.split('\n').filter(Boolean).map((l) => l.match(/JobId=\S+|JobState=\S+|UserId=\S+/g)?.join(' ')).join('; ');
      throw new Error(`waitIdle: node ${nodeName} is '${st}' with ${jobs.length} job(s) queued (${node}; jobs known to slurmctld: ${known || 'none'})`);
    }
    await sleep(delay);
    delay = Math.min(1000, delay * 2);
  }
}

/** scontrol update NodeName=... State=... (root). */
export async function setNodeState(nodeName: string, state: 'down' | 'resume' | 'drain', reason = 'userdock test'): Promise<void> {
  const args = ['update', `NodeName=${nodeName}`, `State=${state.toUpperCase()}`];
  if (state !== 'resume') args.push(`Reason=${reason}`);
  const r = await run('scontrol', args);
  if (r.code !== 0) throw new Error(`scontrol ${args.join(' ')} failed: ${r.stderr}`);
}
