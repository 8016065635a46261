/**
 * `npm run bench -- run`: start-up and metadata cost of `userdock run` on the
 * deb2 fixture image, each working engine against the same engine run bare
 * (same tree, same isolation options) and native, all in the same run,
 * interleaved round-robin (the machine is shared: a burst of load hits every
 * variant alike). Runs as the unprivileged test user when started as root.
 *
 * Every command's exit status AND output are checked: `/bin/true` must exit 0,
 * `find /usr | wc -l` must count at least 95% of the entries native find
 * counts (an anchor that fails fast would otherwise look 100x faster).
 *
 * Rows:
 *   run CONTAINER /bin/true (E)   vs the bare engine with the same options
 *   run IMAGE /bin/true (E)       vs run CONTAINER (goal: < 50 ms more)
 *   run CONTAINER find /usr (E)   vs the bare engine and vs native find
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtureLayout } from '../support/images.js';
import { testUser, userEnv } from '../support/user.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bundle', 'userdock.cjs');
const COUNT = 'find /hostusr 2>/dev/null | wc -l';
/** Repetitions of the start-up rows (~50 ms each: enough for a steady min and median) and of the `find` rows (seconds each). */
const REPS = Number(process.env.USERDOCK_BENCH_REPS ?? 21);
const FIND_REPS = Number(process.env.USERDOCK_BENCH_FIND_REPS ?? 3);

interface Cmd { label: string; cmd: string; args: string[]; expect?: (out: string) => string | undefined }
export interface Row { name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string; goal?: string; note?: string }

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

/** Spawn options: as the test user when we are root (the product never runs as root). */
function asUser(): SpawnSyncOptions {
  if (process.getuid?.() !== 0) return { env: process.env };
  const u = testUser();
  return { uid: u.uid, gid: u.gid, env: userEnv(), cwd: u.home };
}

function once(c: Cmd): number {
  const t0 = performance.now();
  const r = spawnSync(c.cmd, c.args, { ...asUser(), stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000, encoding: 'utf8' });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${c.label}: exit ${r.status ?? r.signal}: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`);
  const bad = c.expect?.(r.stdout);
  if (bad) throw new Error(`${c.label}: ${bad}`);
  return s;
}

/** Time each command `reps` times, round-robin; min and median per command (failed ones dropped with a note). */
function measure(cmds: Cmd[], reps: number): Map<string, { min: number; med: number }> {
  const times = new Map<string, number[]>(cmds.map((c) => [c.label, []]));
  const dead = new Set<string>();
  for (let i = 0; i < reps; i++) {
    for (const c of cmds) {
      if (dead.has(c.label)) continue;
      try { times.get(c.label)!.push(once(c)); } catch (e) {
        dead.add(c.label);
        process.stderr.write(`bench run: ${(e as Error).message}\n`);
      }
    }
  }
  const out = new Map<string, { min: number; med: number }>();
  for (const [k, v] of times) if (v.length && !dead.has(k)) out.set(k, { min: Math.min(...v), med: median(v) });
  return out;
}

export async function benchRun(): Promise<Row[]> {
  const { layout } = await fixtureLayout('deb2');
  const u = process.getuid?.() === 0 ? testUser() : undefined;
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'benchstore-'));
  if (u) { fs.chownSync(store, u.uid, u.gid); fs.chmodSync(store, 0o755); }
  const ud = (...a: string[]) => [BIN, `--repo=${store}`, '-q', ...a];
  const setup = (label: string, ...a: string[]) => once({ label, cmd: process.execPath, args: ud(...a) });
  const rows: Row[] = [];
  try {
    setup('load', 'load', '-i', layout);
    setup('create', 'create', '--name=bench', 'deb2');
    setup('engines', 'engines', '--json'); // probe every rung once, outside the timings
    once({ label: 'extract', cmd: process.execPath, args: ud('run', 'deb2', '/bin/true') }); // pristine tree once, outside the timings
    const root = path.join(store, 'containers', fs.readdirSync(path.join(store, 'containers')).find((n) => !n.startsWith('.'))!, 'ROOT');
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'benchtmp-'));
    if (u) fs.chownSync(scratch, u.uid, u.gid);

    const nativeCount = Number(spawnSync('sh', ['-c', 'find /usr 2>/dev/null | wc -l'], { encoding: 'utf8' }).stdout.trim());
    const countOk = (out: string) => {
      const n = Number(out.trim());
      return n >= nativeCount * 0.95 ? undefined : `find counted ${out.trim() || 'nothing'} entries, native ${nativeCount}: the command failed`;
    };
    const trueOk = (out: string) => (out === '' ? undefined : `unexpected output ${JSON.stringify(out.slice(0, 80))}`);
    const bwrapOpts = ['--die-with-parent', '--unshare-user', '--unshare-pid', '--unshare-ipc', '--uid', '0', '--gid', '0',
      '--bind', root, '/', '--proc', '/proc', '--dev', '/dev', '--ro-bind', '/sys', '/sys', '--tmpfs', '/tmp'];
    const prootOpts = ['-r', root, '-0', '-b', '/proc', '-b', '/dev', '-b', '/sys', '-b', `${scratch}:/tmp`];
    const cmds: Cmd[] = [
      { label: 'native true', cmd: '/bin/true', args: [], expect: trueOk },
      { label: 'native find', cmd: '/bin/sh', args: ['-c', 'find /usr 2>/dev/null | wc -l'], expect: countOk },
      { label: 'node -e 0', cmd: process.execPath, args: ['-e', '0'] },
      { label: 'bare proot true', cmd: 'proot', args: [...prootOpts, '-w', '/', '/bin/true'], expect: trueOk },
      { label: 'bare proot find', cmd: 'proot', args: [...prootOpts, '-b', '/usr:/hostusr', '-w', '/', '/bin/sh', '-c', COUNT], expect: countOk },
      { label: 'bare bwrap true', cmd: 'bwrap', args: [...bwrapOpts, '--chdir', '/', '--', '/bin/true'], expect: trueOk },
      { label: 'bare bwrap find', cmd: 'bwrap', args: [...bwrapOpts, '--ro-bind', '/usr', '/hostusr', '--chdir', '/', '--', '/bin/sh', '-c', COUNT], expect: countOk },
    ];
    const engines = ['P1', 'P2', 'U1', 'R1'];
    for (const e of engines) {
      cmds.push({ label: `${e} container true`, cmd: process.execPath, args: ud('run', `--engine=${e}`, 'bench', '/bin/true'), expect: trueOk });
      cmds.push({ label: `${e} image true`, cmd: process.execPath, args: ud('run', `--engine=${e}`, 'deb2', '/bin/true'), expect: trueOk });
      cmds.push({ label: `${e} container find`, cmd: process.execPath, args: ud('run', `--engine=${e}`, '-v', '/usr:/hostusr:ro', 'bench', '/bin/sh', '-c', COUNT), expect: countOk });
    }
    const fast = measure(cmds.filter((c) => !c.label.endsWith('find')), REPS);
    const slow = measure(cmds.filter((c) => c.label.endsWith('find')), FIND_REPS);
    const t = new Map([...fast, ...slow]);
    const nodeBoot = t.get('node -e 0');
    const bare: Record<string, string> = { P1: 'bare proot', P2: 'bare proot', U1: 'bare bwrap' };
    for (const e of engines) {
      const ct = t.get(`${e} container true`); const it = t.get(`${e} image true`); const cf = t.get(`${e} container find`);
      const b = bare[e];
      const bt = b ? t.get(`${b} true`) : t.get('native true');
      const anchorT = b ?? 'native';
      if (ct && bt) {
        rows.push({ name: `run CONTAINER /bin/true (${e})`, ours_s: ct.min, anchor_s: bt.min, ratio: ct.min / bt.min, anchor: `${anchorT} true`, goal: `≤ +50 ms: +${((ct.min - bt.min) * 1000).toFixed(0)} ms min, +${((ct.med - bt.med) * 1000).toFixed(0)} ms median${nodeBoot ? ` (node boot alone ${(nodeBoot.min * 1000).toFixed(0)} ms)` : ''}` });
      }
      if (it && ct) {
        rows.push({ name: `run IMAGE /bin/true (${e})`, ours_s: it.min, anchor_s: ct.min, ratio: it.min / ct.min, anchor: 'run CONTAINER', goal: `< +50 ms: +${((it.min - ct.min) * 1000).toFixed(0)} ms min, +${((it.med - ct.med) * 1000).toFixed(0)} ms median` });
      }
      if (cf) {
        const bf = b ? t.get(`${b} find`) : undefined;
        if (bf) rows.push({ name: `run CONTAINER find /usr (${e})`, ours_s: cf.min, anchor_s: bf.min, ratio: cf.min / bf.min, anchor: `${b} find` });
        const nf = t.get('native find');
        if (nf) rows.push({ name: `run CONTAINER find /usr (${e}) vs native`, ours_s: cf.min, anchor_s: nf.min, ratio: cf.min / nf.min, anchor: 'native find' });
      }
    }
    fs.rmSync(scratch, { recursive: true, force: true });
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
  return rows;
}
