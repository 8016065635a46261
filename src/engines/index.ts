import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { isatty } from 'node:tty';
import { randomHex } from '../lazy.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXIT, UserError } from '../errors.js';
import { pidAlive, removeTree, sealTree } from '../rootfs/index.js';
import type { Context } from '../cli/context.js';
import { validateProfile, type Profile, DEFAULT_PATH } from '../isolation/profile.js';
import { canonicalizeTargets, checkCommand, compareVersions, glibcMinKernel } from '../isolation/resolve.js';
import { loadHostFacts, recordProbe, engineBinDirs, type HostFacts, type ProbeResult } from './facts.js';
import { ENGINES, ladder, noEngineError, diagnose, fixHint, parseEngineId, DEFAULT_ORDER } from './ladder.js';
import type { Engine, EngineContext, EngineId, Invocation } from './types.js';
import { staticElf } from './guard.js';

export { chooseEngine, ladder, ENGINES, DEFAULT_ORDER, parseEngineId, diagnose } from './ladder.js';
export type { Engine, EngineId, Enforces, Invocation } from './types.js';
export { loadHostFacts, probeHostFacts, sampleFacts, type HostFacts } from './facts.js';

export interface RunOptions {
  /** P1|P2|U1|R1|F1|S1 or a tool name; beats USERDOCK_ENGINE. */
  engine?: string;
  stdio?: 'inherit' | 'pipe';
  /** With stdio 'pipe': receives the child to read/write its streams. */
  onSpawn?: (child: ChildProcess) => void;
  /** Explicit fds for stdin/stdout/stderr (e.g. files the CWL runner opened). */
  fds?: [number | 'inherit' | 'ignore', number | 'inherit', number | 'inherit'];
  /** The container's recorded execmode (setup --execmode): after --engine, before USERDOCK_ENGINE. */
  execmode?: string;
  /** Kill the run after this long (ms): the command is sent SIGTERM, then SIGKILL. */
  timeoutMs?: number;
  /** Start-up timing marks (userdock -D). */
  mark?: (m: string) => void;
}

// ------------------------------------------------------------- scratch

/** A writable, exec-able directory for per-run scratch (PRoot's loader runs from it). */
export function scratchBase(ctx: Context, facts: HostFacts): string {
  const cands: string[] = [];
  if (!facts.store.noexec) cands.push(path.join(ctx.storeDir, 'tmp'));
  if (!facts.tmp.noexec) cands.push(ctx.env.TMPDIR || '/tmp');
  cands.push('/dev/shm', path.join(ctx.storeDir, 'tmp'));
  for (const c of cands) {
    try { fs.mkdirSync(c, { recursive: true }); fs.accessSync(c, fs.constants.W_OK | fs.constants.X_OK); return c; } catch { /* next */ }
  }
  throw new UserError(`no writable directory for run scratch (tried ${cands.join(', ')})`, EXIT.internal, 'set TMPDIR to a writable, exec-able directory');
}

/** run.HOST.PID.HEX: one run's scratch dir; the name tells which process of which host made it (see sweepScratch). */
const SCRATCH_NAME = /^run\.(.+)\.(\d+)\.[0-9a-f]{8}$/;

function makeScratch(ctx: Context, facts: HostFacts): string {
  const base = scratchBase(ctx, facts);
  const d = path.join(base, `run.${os.hostname()}.${process.pid}.${randomHex(4)}`);
  fs.mkdirSync(d, { mode: 0o700 });
  sweepScratch(base);
  return d;
}

/**
 * A run killed with SIGKILL cannot remove its scratch dir: the next run
 * removes the scratch dirs of this user's dead processes on this host, in
 * the background while its command runs (one readdir of the scratch base,
 * nothing on the start-up path). A process that ends before that is done
 * waits for it (pending fs callbacks keep node's loop alive).
 */
function sweepScratch(base: string): void {
  const host = os.hostname();
  const uid = process.getuid?.();
  fs.readdir(base, (err, names) => {
    if (err) return;
    for (const n of names) {
      const m = SCRATCH_NAME.exec(n);
      if (!m || m[1] !== host || Number(m[2]) === process.pid || pidAlive(Number(m[2]))) continue;
      const d = path.join(base, n);
      fs.lstat(d, (e, st) => {
        if (e || !st.isDirectory() || st.uid !== uid) return;
        // A command's /tmp (a scratch subdir) may hold directories it made unreadable: removeTree fixes modes.
        fs.rm(d, { recursive: true, force: true }, (re) => { if (re) { try { removeTree(d); } catch { /* left for a later run */ } } });
      });
    }
  });
}

function removeScratch(d: string): void {
  // Usually empty directories only: rmdir them without loading fs.rmSync's recursive machinery.
  try { for (const n of fs.readdirSync(d)) fs.rmdirSync(path.join(d, n)); fs.rmdirSync(d); return; } catch { /* files left: below */ }
  // An overlay's upper dir holds copied-up directories of the sealed tree (no write bit): removeTree copes.
  if (fs.existsSync(path.join(d, 'overlay'))) removeTree(path.join(d, 'overlay'));
  try { fs.rmSync(d, { recursive: true, force: true, maxRetries: 2 }); } catch {
    // A bind that failed to unmount would make rm recurse into the host: never follow; leave it.
  }
}

function engineContext(ctx: Context, facts: HostFacts, scratch: string, fakeKernel?: string, probe = false): EngineContext {
  const bins: Record<string, string | undefined> = { ...facts.binaries };
  const binEnv: Record<string, string> = {};
  const libdir = path.join(ctx.storeDir, 'engines', 'root', 'usr', 'lib', 'x86_64-linux-gnu');
  if (Object.values(bins).some((b) => b?.startsWith(path.join(ctx.storeDir, 'engines'))) && fs.existsSync(libdir)) binEnv.LD_LIBRARY_PATH = libdir;
  return { facts, scratch, bins, binEnv, fakeKernel, engineNotes: probe || ctx.debug, fix: (self, remedy, prefer) => fixHint(remedy, self, prefer, ladder(facts)) };
}

// ------------------------------------------------------------- probes

/** A minimal static ELF that exits 0 (x86_64 and aarch64): `true` for probe rootfs. */
export function tinyTrue(arch = os.arch()): Buffer {
  return arch === 'arm64'
    ? staticElf(Buffer.from([0x00, 0x00, 0x80, 0xd2, 0xa8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4]), 0xb7)
    : staticElf(Buffer.from([0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]), 0x3e);
}

/** Host libraries a dynamic binary needs (from ldd), for a dynamic probe rootfs. */
function lddLibs(bin: string): string[] {
  const r = spawnSync('ldd', [bin], { encoding: 'utf8', timeout: 5000 });
  return [...(r.stdout ?? '').matchAll(/(\/\S+)/g)].map((m) => m[1]).filter((p) => fs.existsSync(p));
}

/**
 * Tiny probe rootfs in <store>/hostfacts/: a static /true, and (for F1,
 * which cannot run static binaries) the host's dynamic `true` with its libs.
 */
export function probeRootfs(storeDir: string, dynamic = false): string {
  const root = path.join(storeDir, 'hostfacts', dynamic ? 'probe-root-dyn' : 'probe-root');
  if (fs.existsSync(path.join(root, 'true'))) return root;
  const tmp = `${root}.${process.pid}.${randomHex(3)}`;
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(tmp, d), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'etc', 'passwd'), 'root:x:0:0:root:/root:/true\n');
  if (dynamic) {
    const t = ['/bin/true', '/usr/bin/true'].find((p) => fs.existsSync(p));
    if (!t) throw new UserError('no host /bin/true to build the fakechroot probe', EXIT.internal);
    for (const lib of lddLibs(t)) {
      const dest = path.join(tmp, lib);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.copyFileSync(lib, dest);
    }
    fs.copyFileSync(t, path.join(tmp, 'true'));
    fs.chmodSync(path.join(tmp, 'true'), 0o755);
  } else {
    fs.writeFileSync(path.join(tmp, 'true'), tinyTrue(), { mode: 0o755 });
  }
  try { fs.renameSync(tmp, root); } catch { fs.rmSync(tmp, { recursive: true, force: true }); }
  return root;
}

export function probeProfile(rootfs: string, argv = ['/true']): Profile {
  return {
    version: 1, rootfs, rootfsWritable: false, ops: [{ type: 'tmpfs', target: '/tmp' }],
    sysdirs: { proc: true, dev: true, sys: true }, workdir: '/', env: { PATH: DEFAULT_PATH }, argv,
    user: { uid: 0, gid: 0, rootEmulation: true }, network: 'host',
  };
}

/** Run an invocation to completion, capturing output (for probes and benchmarks). */
export function runCaptured(inv: Invocation, timeoutMs = 20_000): Promise<{ code: number; stderr: string; stdout: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(inv.cmd, inv.args, { env: inv.env, cwd: inv.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = []; const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); resolve({ code: EXIT.internal, stderr: e.message, stdout: '', ms: performance.now() - t0 }); });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128 + (sig ? os.constants.signals[sig] : 0), stderr: Buffer.concat(err).toString('utf8'), stdout: Buffer.concat(out).toString('utf8'), ms: performance.now() - t0 });
    });
  });
}

/** Confirm an engine with `true` in a tiny rootfs. */
export async function probeEngine(ctx: Context, facts: HostFacts, engine: Engine): Promise<ProbeResult> {
  const at = new Date().toISOString();
  let scratch: string | undefined;
  try {
    const root = probeRootfs(ctx.storeDir, engine.id === 'F1');
    scratch = makeScratch(ctx, facts);
    const inv = engine.build(probeProfile(root), engineContext(ctx, facts, scratch, undefined, true));
    const r = await runCaptured(inv, 20_000);
    if (r.code !== 0 && inv.logFile) { try { r.stderr += fs.readFileSync(inv.logFile, 'utf8'); } catch { /* none */ } }
    if (r.code === 0) return { ok: true, ms: Math.round(r.ms), at };
    const d = diagnose(r.stderr, engine.id);
    const first = r.stderr.trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit ${r.code}`;
    // The fix is joined at report time (ladder): which other rung works is known only once they are probed.
    return d ? { ok: false, error: `${d.cause} (${first.slice(0, 160)})`, fix: d.fix, instead: d.instead, at } : { ok: false, error: `exit ${r.code}: ${first.slice(0, 200)}`, at };
  } catch (e) {
    return { ok: false, error: (e as Error).message, at };
  } finally {
    if (scratch) removeScratch(scratch);
  }
}

/** Choose an engine, confirming unprobed rungs with a real probe (cached with the facts). */
export async function selectEngine(ctx: Context, facts: HostFacts, requested?: string): Promise<Engine> {
  if (requested) {
    const id = parseEngineId(requested);
    const engine = ENGINES[id];
    if (!engine.unusable(facts) && (await probeOnce(ctx, facts, id)).ok) return engine;
    // The fix names another rung only once a probe has confirmed it (never one refused here too).
    await probeUntilOne(ctx, facts, id);
    const r = ladder(facts, [id])[0];
    const why = engine.unusable(facts);
    throw new UserError(why ? `engine ${id} (${engine.name}) cannot run on this host: ${why}`
      : `engine ${id} (${engine.name}) does not work on this host: ${facts.probes[id]?.error}`, EXIT.internal, r.fix);
  }
  const id = await probeUntilOne(ctx, facts);
  if (id) return ENGINES[id];
  throw noEngineError(ladder(facts));
}

/** The recorded probe of a rung, probing it first when there is none. */
async function probeOnce(ctx: Context, facts: HostFacts, id: EngineId): Promise<ProbeResult> {
  let p = facts.probes[id];
  if (!p) {
    p = await probeEngine(ctx, facts, ENGINES[id]);
    facts.probes[id] = p;
    recordProbe(ctx.storeDir, id, p);
  }
  return p;
}

/** Probe the other rungs in ladder order until one works (for a fix that names a working rung). */
export async function probeUntilOne(ctx: Context, facts: HostFacts, except?: EngineId): Promise<EngineId | undefined> {
  for (const id of DEFAULT_ORDER) {
    const e = ENGINES[id];
    if (id === except || e.unusable(facts)) continue;
    if ((await probeOnce(ctx, facts, id)).ok) return id;
  }
  return undefined;
}

// ------------------------------------------------------------- run

/** The order of precedence for the requested engine. */
export function requestedEngine(ctx: Context, opts: RunOptions): string | undefined {
  return opts.engine || opts.execmode || ctx.env.USERDOCK_ENGINE || ctx.env.UDOCKER_DEFAULT_EXECUTION_MODE || undefined;
}

/** Prepare everything up to the engine's command line (no process started for the command). */
export async function prepareRun(ctx: Context, profileIn: Profile, opts: RunOptions = {}): Promise<{ engine: Engine; inv: Invocation; scratch: string; facts: HostFacts }> {
  const mark = opts.mark ?? (() => {});
  validateProfile(profileIn);
  const base = canonicalizeTargets(profileIn);
  const cc = checkCommand(base);
  if (!cc.ok) throw new UserError(cc.message!, cc.code!, cc.hint);
  mark('profile validated, command found');
  const facts = loadHostFacts(ctx.storeDir, ctx.env);
  const engine = await selectEngine(ctx, facts, requestedEngine(ctx, opts));
  mark(`engine ${engine.id} selected`);
  let fakeKernel: string | undefined;
  const need = glibcMinKernel(base.rootfs);
  if (need && compareVersions(facts.kernel, need) < 0) {
    if (engine.id === 'P1' || engine.id === 'P2') fakeKernel = need;
    else {
      throw new UserError(`the image's glibc needs kernel >= ${need}, this host runs ${facts.kernel} ("FATAL: kernel too old")`, EXIT.internal,
        fixHint('use an image built on an older glibc', engine.id, ['P1', 'P2'], ladder(facts)));
    }
  }
  const scratch = makeScratch(ctx, facts);
  try {
    // A copy-on-write view: U1 mounts an overlay (its unshare path); elsewhere the run gets a private copy in its scratch.
    const profile = base.rootfsOverlay && !(engine.id === 'U1' && facts.binaries.unshare) ? privateCopy(base, scratch) : base;
    if (profile !== base) mark('private copy of the tree made');
    const inv = withCpuset(engine.build(profile, engineContext(ctx, facts, scratch, fakeKernel)), profile.resources?.cpusetCpus);
    mark('invocation built');
    return { engine, inv, scratch, facts };
  } catch (e) {
    removeScratch(scratch);
    throw e;
  }
}

/**
 * The copy-on-write view where the engine has no overlay: a private copy of
 * the tree in the run's scratch (a reflink clone on btrfs/xfs), writable
 * again (a sealed tree has no owner write bits), removed with the scratch.
 */
function privateCopy(p: Profile, scratch: string): Profile {
  const dest = path.join(scratch, 'rootfs-copy');
  const r = spawnSync('cp', ['-a', '--reflink=auto', p.rootfs, dest], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new UserError(`--writable-tmpfs: copying ${p.rootfs} for this run failed: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}`, EXIT.internal, 'check free space in the store (or TMPDIR), or use --engine=U1, which needs no copy');
  }
  sealTree(dest, true);
  const { rootfsOverlay: _o, ...rest } = p;
  return { ...rest, rootfs: dest, rootfsWritable: true };
}

/**
 * --cpuset-cpus on every engine: the engine process (and so everything in the
 * container) starts under taskset(1) with that CPU affinity, which children
 * inherit. The list must name CPUs this host has.
 */
function withCpuset(inv: Invocation, list: string | undefined): Invocation {
  if (!list) return inv;
  const n = os.cpus().length;
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    const hi = m ? Number(m[2] ?? m[1]) : NaN;
    if (!m || hi < Number(m[1]) || hi >= n) {
      throw new UserError(`--cpuset-cpus=${list}: "${part}" is not a CPU or range of this host (CPUs 0-${n - 1})`, EXIT.usage);
    }
  }
  const taskset = ['/usr/bin/taskset', '/bin/taskset'].find((t) => fs.existsSync(t));
  if (!taskset) throw new UserError('--cpuset-cpus needs taskset(1), which is not installed', EXIT.internal, 'install util-linux, or run without --cpuset-cpus');
  return { ...inv, cmd: taskset, args: ['-c', list, inv.cmd, ...inv.args] };
}

/** The pids of a process's descendants, from /proc/PID/task/TID/children (empty where the kernel has no such file). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tids: string[] = [];
    try { tids = fs.readdirSync(`/proc/${p}/task`); } catch { return; }
    for (const t of tids) {
      let kids = '';
      try { kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8'); } catch { continue; }
      for (const k of kids.split(' ').filter(Boolean).map(Number)) { out.push(k); walk(k); }
    }
  };
  walk(pid);
  return out;
}

/**
 * The run's exit status, docker's way: the command's code; 128+N when it died
 * of signal N; 128+N too when we forwarded signal N and the command did not
 * exit with a code of its own choosing (< 128): PRoot reports a killed
 * command as 255, the userns engines as 128+N.
 */
export function exitStatus(code: number | null, sig: NodeJS.Signals | null, forwarded?: NodeJS.Signals): number {
  if (forwarded && (code === null || code >= 128)) return 128 + os.constants.signals[forwarded];
  return code ?? 128 + (sig ? os.constants.signals[sig] : 0);
}

/**
 * Run a profile: validate, pick an engine (ladder + probes), start it, pass
 * stdio through, forward SIGINT/SIGTERM/SIGHUP to the whole process tree,
 * and return the command's exit code (128+N when killed by signal N).
 */
export async function runProfile(ctx: Context, profile: Profile, opts: RunOptions = {}): Promise<number> {
  const { engine, inv, scratch } = await prepareRun(ctx, profile, opts);
  if (ctx.debug) process.stderr.write(`debug: engine ${engine.id}: ${inv.cmd} ${inv.args.map((a) => JSON.stringify(a)).join(' ')}\n`);
  if (!ctx.quiet) for (const w of inv.warnings) process.stderr.write(`userdock: warning: ${w}\n`);
  const stdio: StdioOptions = opts.fds ?? (opts.stdio === 'pipe' ? 'pipe' : 'inherit');
  // Own process group unless we share a terminal (job control needs the foreground group).
  const interactive = opts.stdio !== 'pipe' && !opts.fds && isatty(0);
  try {
    return await new Promise<number>((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(inv.cmd, inv.args, { env: inv.env, cwd: inv.cwd, stdio, detached: !interactive });
        opts.mark?.('engine spawned');
      } catch (e) { reject(new UserError(`cannot start ${inv.cmd}: ${(e as Error).message}`, EXIT.internal)); return; }
      opts.onSpawn?.(child);
      let killTimer: NodeJS.Timeout | undefined;
      // The first signal forwarded to the command (or SIGKILL for a timeout): the run then
      // ends 128+N like docker, whatever the engine reports (PRoot says 255).
      let forwarded: NodeJS.Signals | undefined;
      const kill = (sig: NodeJS.Signals) => {
        if (!child.pid) return;
        // Sharing the terminal's process group, the container's processes get the signal one by one
        // (the engine alone may ignore it: PRoot does).
        const pids = interactive ? [child.pid, ...descendants(child.pid)] : [-child.pid];
        for (const pid of pids) { try { process.kill(pid, sig); } catch { /* gone */ } }
      };
      // Everything: the engine's own way to end the whole container first (PRoot: also tracees that left the group).
      // The engine is given a moment for it: a SIGKILL of the group at once would kill PRoot before it kills its tracees.
      const killAll = (now = false) => {
        if (inv.killAll && child.pid) {
          try { process.kill(child.pid, inv.killAll); } catch { /* gone */ }
          if (now) return;
          setTimeout(() => kill('SIGKILL'), 1000).unref();
          return;
        }
        kill('SIGKILL');
      };
      const onSignal = (sig: NodeJS.Signals, as: NodeJS.Signals = sig) => {
        forwarded ??= as;
        kill(sig);
        if (!killTimer) killTimer = setTimeout(() => killAll(), 5000);
      };
      const handlers: Array<[NodeJS.Signals, () => void]> = (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as NodeJS.Signals[]).map((s) => [s, () => onSignal(s)]);
      for (const [s, h] of handlers) process.on(s, h);
      const onExit = () => killAll(true);
      process.on('exit', onExit);
      let timeout: NodeJS.Timeout | undefined;
      if (opts.timeoutMs) timeout = setTimeout(() => onSignal('SIGTERM', 'SIGKILL'), opts.timeoutMs);
      child.on('error', (e) => {
        cleanup();
        reject(new UserError(`cannot start engine ${engine.id} (${inv.cmd}): ${e.message}`, EXIT.internal, engine.fix));
      });
      function cleanup() {
        for (const [s, h] of handlers) process.off(s, h);
        process.off('exit', onExit);
        if (killTimer) clearTimeout(killTimer);
        if (timeout) clearTimeout(timeout);
      }
      child.on('exit', (code, sig) => {
        // Leftover processes in the group (daemons the command started) go too.
        if (!interactive && child.pid) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* none left */ } }
        cleanup();
        if (code !== 0 && inv.logFile) {
          // The runtime's own errors (not the command's): show them, they name the cause.
          try {
            const errs = fs.readFileSync(inv.logFile, 'utf8').split('\n').filter((l) => /level=(error|fatal)|"level":"(error|fatal)"/.test(l));
            for (const l of errs) process.stderr.write(`userdock: ${engine.id}: ${l.replace(/^.*msg="?/, '').replace(/"$/, '')}\n`);
          } catch { /* no log */ }
        }
        resolve(exitStatus(code, sig, forwarded));
      });
    });
  } finally {
    removeScratch(scratch);
  }
}

export { engineBinDirs };
