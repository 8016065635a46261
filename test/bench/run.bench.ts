/**
 * `npm run bench -- run`: `userdock run … /bin/true` and `find /usr` on each
 * working engine, against bare proot/bwrap run directly and native, all in
 * the same run. Uses a root-owned busybox tree and the host /usr bound
 * read-only (no image pull needed).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxTree } from '../integration/run-tree.js';

// find exits 1 on unreadable dirs (mapped root is not real root): time it, ignore that.
const FIND = ['-c', '/usr/bin/find /usr >/dev/null 2>&1; exit 0'];
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'userdock.js');

function time(cmd: string, args: string[], reps = 3, env: NodeJS.ProcessEnv = process.env): number {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env, timeout: 600_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} failed: ${r.stderr?.toString().trim().split('\n').pop()}`);
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

export async function benchRun(): Promise<{ name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string }[]> {
  const root = busyboxTree();
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'benchstore-'));
  const rows: { name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string }[] = [];
  const ud = (engine: string, extra: string[], cmd: string[]) => [BIN, `--repo=${store}`, 'run', `--engine=${engine}`, ...extra, `--rootfs=${root}`, ...cmd];
  const usr = ['-v', '/usr:/usr:ro', ...(fs.existsSync('/lib64') ? ['-v', '/lib64:/lib64:ro'] : []), '-v', `${fs.realpathSync('/lib')}:/lib:ro`];
  try {
    spawnSync(process.execPath, [BIN, `--repo=${store}`, 'engines', '--json'], { stdio: 'ignore' }); // probe once
    const nativeTrue = time('/bin/true', []);
    const nativeFind = time('/bin/sh', FIND, 1);
    const bare: Record<string, { t: () => number; f: () => number; label: string }> = {
      P1: { label: 'bare proot', t: () => time('proot', ['-r', root, '/bin/true']), f: () => time('proot', ['-r', root, '-b', '/usr', '-b', '/lib', ...(fs.existsSync('/lib64') ? ['-b', '/lib64'] : []), '/bin/sh', ...FIND], 1) },
      U1: { label: 'bare bwrap', t: () => time('bwrap', ['--unshare-user', '--ro-bind', root, '/', '/bin/true']), f: () => time('bwrap', ['--unshare-user', '--ro-bind', root, '/', '--ro-bind', '/usr', '/usr', '--ro-bind', '/lib', '/lib', ...(fs.existsSync('/lib64') ? ['--ro-bind', '/lib64', '/lib64'] : []), '/bin/sh', ...FIND], 1) },
    };
    for (const engine of ['P1', 'P2', 'U1', 'R1']) {
      let oursTrue: number; let oursFind: number;
      try {
        oursTrue = time(process.execPath, ud(engine, [], ['/bin/true']));
        oursFind = time(process.execPath, ud(engine, usr, ['/bin/sh', ...FIND]), 1);
      } catch (e) { process.stderr.write(`bench run: ${engine} skipped: ${(e as Error).message}\n`); continue; }
      const b = bare[engine === 'P2' ? 'P1' : engine];
      const bt = b ? b.t() : nativeTrue;
      rows.push({ name: `run /bin/true (${engine})`, ours_s: oursTrue, anchor_s: bt, ratio: oursTrue / bt, anchor: b ? b.label : 'native' });
      rows.push({ name: `run find /usr (${engine})`, ours_s: oursFind, anchor_s: nativeFind, ratio: oursFind / nativeFind, anchor: 'native find' });
      if (b) { const bf = b.f(); rows.push({ name: `run find /usr (${engine}) vs ${b.label}`, ours_s: oursFind, anchor_s: bf, ratio: oursFind / bf, anchor: b.label }); }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(store, { recursive: true, force: true });
  }
  return rows;
}
