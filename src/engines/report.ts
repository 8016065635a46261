import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Context } from '../cli/context.js';
import { DEFAULT_PATH, type Profile } from '../isolation/profile.js';
import { loadHostFacts, recordProbe, type HostFacts } from './facts.js';
import { ENGINES, ladder, DEFAULT_ORDER } from './ladder.js';
import { probeEngine, probeRootfs, runCaptured, probeProfile } from './index.js';
import type { EngineId, Enforces } from './types.js';
import { canonicalizeTargets } from '../isolation/resolve.js';

export interface RungReport {
  id: EngineId; name: string; summary: string; usable: boolean; why?: string; fix?: string;
  probed?: boolean; probeMs?: number; enforces: Enforces; cost: string; limits: string[];
}
export interface BenchResult { id: EngineId | 'native'; true_s?: number; find_usr_s?: number; error?: string }
export interface EnginesReport { facts: HostFacts; rungs: RungReport[]; chosen?: EngineId; bench?: BenchResult[] }

export async function enginesReport(ctx: Context, opts: { refresh?: boolean; probe?: boolean } = {}): Promise<EnginesReport> {
  const facts = loadHostFacts(ctx.storeDir, ctx.env, opts.refresh);
  if (opts.probe !== false) {
    for (const id of DEFAULT_ORDER) {
      const e = ENGINES[id];
      if (e.unusable(facts) || facts.probes[id]) continue;
      const r = await probeEngine(ctx, facts, e);
      facts.probes[id] = r;
      recordProbe(ctx.storeDir, id, r);
    }
  }
  const requested = ctx.env.USERDOCK_ENGINE;
  const rungs = ladder(facts).map((r): RungReport => ({
    id: r.id, name: r.engine.name, summary: r.engine.summary, usable: r.usable, why: r.why, fix: r.fix,
    probed: r.probed, probeMs: facts.probes[r.id]?.ms, enforces: r.engine.enforces, cost: r.engine.cost, limits: r.engine.limits,
  }));
  const first = rungs.find((r) => r.usable && r.probed !== false);
  return { facts, rungs, chosen: (requested && rungs.find((r) => r.id === requested.toUpperCase())?.id) || first?.id };
}

function yes(b: boolean): string { return b ? 'yes' : 'no'; }

export function printEngines(rep: EnginesReport): string {
  const f = rep.facts;
  const L: string[] = [];
  L.push(`host ${f.hostname}, kernel ${f.kernel}, ${f.arch}; seccomp filter ${yes(f.seccompFilter)}; ptrace ${f.ptraceAllowed ? 'allowed' : 'denied'}` +
    `${f.ptraceScope !== undefined ? ` (ptrace_scope ${f.ptraceScope})` : ''}; user namespaces max ${f.maxUserNamespaces ?? '?'}; cgroup ${f.cgroup}`);
  L.push(`store on ${f.store.type}${f.store.noexec ? ' (noexec)' : ''}; ${f.tmp.path} on ${f.tmp.type}${f.tmp.noexec ? ' (noexec)' : ''}`);
  L.push('');
  for (const r of rep.rungs) {
    const mark = r.id === rep.chosen ? '*' : ' ';
    const status = r.usable ? (r.probed ? `usable (probe ${r.probeMs ?? '?'} ms)` : 'usable (not probed)') : `NOT usable: ${r.why}`;
    L.push(`${mark} ${r.id}  ${r.name.padEnd(36)} ${status}`);
    const e = r.enforces;
    L.push(`      enforces: read-only binds ${yes(e.readonlyBinds)}, read-only rootfs ${yes(e.readonlyRootfs)}, root emulation ${yes(e.rootEmulation)}, ` +
      `network isolation ${yes(e.networkIsolation)}, pid isolation ${yes(e.pidIsolation)}, static binaries ${yes(e.staticBinaries)}`);
    L.push(`      cost: ${r.cost}`);
    if (!r.usable && r.fix) L.push(`      fix: ${r.fix}`);
  }
  if (rep.bench) {
    L.push('', 'bench (seconds):  true   find /usr');
    for (const b of rep.bench) L.push(`  ${b.id.padEnd(7)} ${b.error ? `failed: ${b.error}` : `${(b.true_s ?? 0).toFixed(3).padStart(7)}  ${(b.find_usr_s ?? 0).toFixed(3).padStart(8)}`}`);
  }
  L.push('', '* = chosen by default; override with --engine, USERDOCK_ENGINE or setup --execmode');
  return L.join('\n') + '\n';
}

/** Profile running a host tool (find) against the host's /usr bound read-only into a tiny rootfs. */
export function benchProfile(rootfs: string, argv: string[]): Profile {
  const p = probeProfile(rootfs, argv);
  for (const d of ['/usr', '/lib', '/lib64', '/bin']) {
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(d); } catch { continue; }
    // merged /usr (/lib -> usr/lib): reached through /usr, and fakechroot cannot bind a path elsewhere.
    if (st.isSymbolicLink()) continue;
    p.ops.push({ type: 'bind', source: d, target: d, readonly: true });
  }
  p.env = { PATH: DEFAULT_PATH };
  return p;
}

function lines(s: string): number { let n = 0; for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++; return n; }

/**
 * `engines --bench`: time `true` and `find /usr` on each usable rung and
 * natively. A run counts only when it really worked: `true` exits 0, and
 * find lists at least 95% of what native find lists (find exits 1 on
 * directories the user cannot read, natively too, so its status alone says
 * nothing; a rung that fails fast would otherwise look fastest).
 */
export async function benchEngines(ctx: Context, rep: EnginesReport): Promise<BenchResult[]> {
  const { prepareRun } = await import('./index.js');
  const out: BenchResult[] = [];
  const t0 = performance.now();
  spawnSync('/bin/true');
  const tTrue = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const nat = spawnSync('find', ['/usr'], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30, encoding: 'utf8' });
  const tFind = (performance.now() - t1) / 1000;
  const nativeCount = lines(nat.stdout ?? '');
  out.push({ id: 'native', true_s: tTrue, find_usr_s: tFind });
  const root = probeRootfs(ctx.storeDir, true);
  for (const r of rep.rungs.filter((x) => x.usable)) {
    try {
      const times: number[] = [];
      for (const argv of [['/true'], ['/usr/bin/find', '/usr']]) {
        const prof = canonicalizeTargets(benchProfile(root, argv));
        const { inv, scratch } = await prepareRun({ ...ctx, quiet: true }, prof, { engine: r.id });
        let res: Awaited<ReturnType<typeof runCaptured>>;
        try { res = await runCaptured(inv, 600_000); } finally { fs.rmSync(scratch, { recursive: true, force: true }); }
        const last = res.stderr.trim().split('\n').slice(-1)[0] ?? '';
        if (argv[0] === '/true') {
          if (res.code !== 0) throw new Error(`true: exit ${res.code}: ${last}`);
        } else {
          const n = lines(res.stdout);
          if ((res.code !== 0 && res.code !== 1) || n < nativeCount * 0.95) throw new Error(`find /usr listed ${n} of ${nativeCount} entries (exit ${res.code}): ${last}`);
        }
        times.push(res.ms / 1000);
      }
      out.push({ id: r.id, true_s: times[0], find_usr_s: times[1] });
    } catch (e) {
      out.push({ id: r.id, error: (e as Error).message.slice(0, 200) });
    }
  }
  return out;
}
