import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Launcher, LaunchResult, LaunchSpec } from '../launch.js';
import type { ExecOptions } from '../tool.js';
import { arraySpec, packScatter, type Packing } from './pack.js';
import { SlurmPoller, sbatch, defaultExec, type Exec, type JobFinal } from './queue.js';
import { resultPath, type BatchFile, type ItemResult } from './batch.js';

/**
 * `cwl-run --executor slurm`: tool jobs arriving within a short window
 * (quiet for `windowMs`, at most `maxWindowMs` after the first) become ONE
 * `sbatch --array` per resource shape, several jobs packed per array task
 * (as many tasks as the partition has slots for them, so each slot pays the
 * ~1 s task turnaround once), throttled with `%K` by --parallel. One
 * SlurmPoller watches every array (one squeue per interval, backoff).
 * NODE_FAIL, PREEMPTED and BOOT_FAIL are resubmitted (`retries` times);
 * TIMEOUT is the ToolTimeLimit failure; OUT_OF_MEMORY and CANCELLED are
 * reported as such.
 */
export interface SlurmLauncherOptions {
  /** Shared work directory (batch files, job scripts, task logs, results). */
  workdir: string;
  partition?: string;
  account?: string;
  extra?: string[];
  /** Resubmissions after NODE_FAIL/PREEMPTED/BOOT_FAIL (default 2). */
  retries?: number;
  /** Node-local directory for the jobs' tmpdirs (--slurm-node-tmp; default the job's $TMPDIR, else /tmp). */
  nodeTmp?: string;
  /** Most array tasks running at once (%K). */
  throttle?: number;
  windowMs?: number;
  maxWindowMs?: number;
  log: (m: string) => void;
  debug: (m: string) => void;
  exec?: Exec;
  poll?: { minDelayMs?: number; maxDelayMs?: number };
}

const RETRY_STATES = new Set(['NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL']);
/** The node-side script: beside this module (dist/src/cwl/slurm/node.js), or beside the bundle (dist/bundle/node.cjs). */
const NODE_SCRIPT = ['./node.js', './node.cjs'].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((p) => fs.existsSync(p))
  ?? fileURLToPath(new URL('./node.js', import.meta.url));

interface Pending { spec: LaunchSpec; opts: ExecOptions; attempt: number; resolve: (r: LaunchResult) => void; reject: (e: Error) => void }

export class SlurmLauncher implements Launcher {
  readonly remote = true;
  /** Counters for --debug, tests and benchmarks. */
  readonly stats = { arrays: 0, items: 0, tasks: 0, retries: 0 };
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private firstAt = 0;
  private active = new Set<string>();
  private poller: SlurmPoller;
  private cpus: Promise<number> | undefined;
  private seq = 0;
  private closed = false;

  constructor(private o: SlurmLauncherOptions) {
    this.poller = new SlurmPoller({ minDelayMs: o.poll?.minDelayMs ?? 500, maxDelayMs: o.poll?.maxDelayMs ?? 5000, exec: o.exec });
    fs.mkdirSync(path.join(o.workdir, 'batches'), { recursive: true });
  }

  private get exec(): Exec { return this.o.exec ?? defaultExec; }

  launch(spec: LaunchSpec, opts: ExecOptions): Promise<LaunchResult> {
    if (this.closed) return Promise.reject(new Error('the Slurm launcher is stopped'));
    return new Promise((resolve, reject) => {
      this.pending.push({ spec, opts, attempt: 1, resolve, reject });
      this.arm();
    });
  }

  private arm(): void {
    const now = Date.now();
    if (!this.timer) this.firstAt = now;
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.o.windowMs ?? 150, this.firstAt + (this.o.maxWindowMs ?? 2000) - now));
    this.timer = setTimeout(() => { this.timer = undefined; this.flush(); }, wait);
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    const groups = new Map<string, Pending[]>();
    for (const p of batch) {
      const s = p.spec;
      const key = `${s.cores}|${s.ramMB}|${s.timeLimitSec}|${p.opts.engine ?? ''}|${p.opts.ctx.storeDir}`;
      groups.set(key, [...(groups.get(key) ?? []), p]);
    }
    for (const g of groups.values()) {
      this.submit(g).catch((e: Error) => { for (const p of g) p.reject(e); });
    }
  }

  /** Usable CPUs of the partition (sinfo %C = allocated/idle/other/total), once. */
  private partitionCpus(): Promise<number> {
    this.cpus ??= (async () => {
      const r = await this.exec('sinfo', ['-h', '-o', '%P|%C'], 30_000);
      const lines = r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
      const want = this.o.partition;
      const line = lines.find((l) => (want ? l.split('|')[0]!.replace(/\*$/, '') === want : l.split('|')[0]!.endsWith('*'))) ?? lines[0];
      const c = line?.split('|')[1]?.split('/').map(Number);
      if (r.code !== 0 || !c || c.length !== 4 || c.some((x) => !Number.isFinite(x))) return 1;
      return Math.max(1, c[3]! - c[2]!);
    })();
    return this.cpus;
  }

  private async submit(group: Pending[]): Promise<void> {
    const first = group[0]!;
    const { cores, ramMB, timeLimitSec } = first.spec;
    const cpus = await this.partitionCpus();
    let slots = Math.max(1, Math.floor(cpus / Math.max(1, cores)));
    if (this.o.throttle) slots = Math.min(slots, this.o.throttle);
    // One task per slot: each slot pays the task turnaround (~1 s, docs/scale.md) once.
    const p: Packing = packScatter(group.length, { maxTasks: Math.min(1000, slots) });
    const name = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${process.pid}-${++this.seq}-${crypto.randomBytes(2).toString('hex')}`;
    const dir = path.join(this.o.workdir, 'batches', name);
    fs.mkdirSync(dir, { recursive: true });
    const ctx = first.opts.ctx;
    const file: BatchFile = {
      version: 1, tasks: p.tasks, perTask: p.perTask,
      items: group.map((x, i) => ({ id: String(i), spec: x.spec })),
      storeDir: ctx.storeDir, configDir: ctx.configDir, engine: first.opts.engine, debug: ctx.debug, nodeTmp: this.o.nodeTmp,
    };
    const batchFile = path.join(dir, 'batch.json');
    fs.writeFileSync(batchFile, JSON.stringify(file));
    const script = path.join(dir, 'job.sh');
    const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
    fs.writeFileSync(script, [
      '#!/bin/bash',
      `# cwl-run --executor slurm: ${group.length} tool job(s), ${p.perTask} per array task`,
      `exec ${q(process.execPath)} ${q(NODE_SCRIPT)} ${q(batchFile)} "\${SLURM_ARRAY_TASK_ID:-0}"`,
      '',
    ].join('\n'), { mode: 0o755 });
    const timeMinutes = timeLimitSec > 0 ? Math.ceil((p.perTask * timeLimitSec + 120) / 60) : undefined;
    const extra = ['--no-requeue', ...(this.o.account ? [`--account=${this.o.account}`] : []), ...(this.o.extra ?? [])];
    const jobId = await sbatch({
      script, array: arraySpec(p, this.o.throttle), jobName: `cwl-run-${first.spec.label}`.slice(0, 60), partition: this.o.partition,
      cwd: dir, output: path.join(dir, 'task-%a.log'), cpus: cores, memMB: ramMB, timeMinutes, extra,
    }, this.exec);
    this.active.add(jobId);
    this.stats.arrays++; this.stats.items += group.length; this.stats.tasks += p.tasks;
    const labels = [...new Set(group.map((x) => x.spec.label))].join(', ');
    first.opts.log(`[slurm] job ${jobId}: ${group.length} tool job(s) (${labels}) in ${p.tasks} array task(s)${first.attempt > 1 ? ' (resubmitted)' : ''}`);
    first.opts.debug(`[slurm] packed ${group.length} item(s) into --array=${arraySpec(p, this.o.throttle)}: ${p.perTask} per task, `
      + `${slots} slot(s) = ${cpus} CPU(s) of partition ${this.o.partition ?? '(default)'} / ${cores} core(s) per job${this.o.throttle ? `, --parallel ${this.o.throttle}` : ''}; `
      + `--cpus-per-task=${cores} --mem=${ramMB}M${timeMinutes ? ` --time=${timeMinutes}` : ''}; batch ${dir}`);
    if (this.closed) return; // cancelAll raced with the submission: it is cancelled below
    let finals: JobFinal[];
    try {
      finals = await this.poller.wait(jobId);
    } finally {
      this.active.delete(jobId);
    }
    const byTask = new Map(finals.map((f) => [f.jobId.includes('_') ? Number(f.jobId.split('_')[1]) : 0, f]));
    group.forEach((x, i) => {
      const rp = resultPath(dir, String(i));
      if (fs.existsSync(rp)) {
        const r = JSON.parse(fs.readFileSync(rp, 'utf8')) as ItemResult;
        x.resolve({ exitCode: r.exitCode, message: r.message, where: r.where });
        return;
      }
      const t = Math.floor(i / p.perTask);
      const f = byTask.get(t);
      const state = f?.state ?? 'UNKNOWN';
      const tag = `Slurm job ${jobId}_${t}`;
      if (RETRY_STATES.has(state) && x.attempt <= (this.o.retries ?? 2) && !this.closed) {
        this.stats.retries++;
        x.opts.log(`[slurm] ${tag} ended ${state}; resubmitting ${x.spec.label} (attempt ${x.attempt + 1} of ${(this.o.retries ?? 2) + 1})`);
        this.pending.push({ ...x, attempt: x.attempt + 1 });
        this.arm();
        return;
      }
      x.resolve(failure(state, f, tag, x, timeMinutes, path.join(dir, `task-${t}.log`)));
    });
  }

  /** scancel every array this launcher submitted that has not finished; nothing new is submitted. */
  async cancelAll(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const p of this.pending.splice(0)) p.reject(new Error('cancelled before submission'));
    // sbatch calls in flight: give them a moment to return their ids
    const ids = [...this.active];
    if (ids.length) await this.exec('scancel', ids, 30_000);
    this.poller.close();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.poller.close();
  }
}

function tail(file: string, n = 5): string {
  try { return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n'); } catch { return ''; }
}

function failure(state: string, f: JobFinal | undefined, tag: string, x: Pending, timeMinutes: number | undefined, log: string): LaunchResult {
  const where = tag;
  switch (state) {
    case 'TIMEOUT':
      return { exitCode: -1, where, message: `${tag} reached its Slurm time limit (--time=${timeMinutes ?? '?'} min, ToolTimeLimit ${x.spec.timeLimitSec}s): time limit exceeded` };
    case 'OUT_OF_MEMORY':
      return { exitCode: 137, where, message: `${tag} ran out of memory (--mem=${x.spec.ramMB}M from ResourceRequirement ramMin): OUT_OF_MEMORY` };
    case 'CANCELLED':
      return { exitCode: 143, where, message: `${tag} was cancelled (scancel or an administrator) before ${x.spec.label} finished` };
    case 'NODE_FAIL': case 'PREEMPTED': case 'BOOT_FAIL':
      return { exitCode: 1, where, message: `${tag} ended ${state} on ${x.attempt} attempt(s); giving up (--slurm-retries)` };
    default: {
      const t = tail(log);
      return { exitCode: 1, where, message: `${tag} ended ${state}${f?.exitCode !== null && f?.exitCode !== undefined ? ` (exit ${f.exitCode}:${f.signal ?? 0})` : ''} without a result for ${x.spec.label}; task log ${log}${t ? `:\n${t}` : ''}` };
    }
  }
}
