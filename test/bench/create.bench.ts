import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fixtureCache } from '../support/images.js';
import { testUser, userEnv } from '../support/user.js';

/**
 * `userdock create deb2` (the real command: the CLI bundle, a store holding
 * the deb2 fixture: two gzip layers with a whiteout, ~4,800 entries, 76 MB)
 * against `umoci unpack --rootless` of the same OCI layout, same run,
 * interleaved, median of 5, both as the unprivileged test user when started
 * as root. Wall time and CPU time (user+sys of the child, from
 * /proc/self/stat cutime/cstime) are measured the same way for both. The
 * machine is shared: CPU time is the steadier number, wall time is what the
 * user sees.
 * Both write to a fresh ext4 (no journal, like this host's root fs),
 * loop-mounted for the run when we are root: on an ext4 without journal, a
 * create within minutes of an `rm -rf` of thousands of inodes pays a scan
 * over the "recently deleted" inodes (kernel recently_deleted(), up to
 * ~0.5 ms per new inode), so on a shared disk the numbers would depend on
 * what the tests before deleted. Trees are not removed between rounds.
 * Without root (no loop mount) the bench runs in the temp dir and says so.
 */
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bundle', 'userdock.cjs');
const ROUNDS = Number(process.env.CREATE_BENCH_ROUNDS) || 5;

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

const TICK = 100; // USER_HZ
/** user+sys seconds of all waited-for children so far. */
function childCpu(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / TICK; // fields 16, 17: cutime, cstime
}

/** Spawn options: as the test user when we are root (the product never runs as root). */
function asUser(): SpawnSyncOptions {
  if (process.getuid?.() !== 0) return { env: process.env };
  const u = testUser();
  return { uid: u.uid, gid: u.gid, env: userEnv(), cwd: u.home };
}

function timed(cmd: string, args: string[]): { wall: number; cpu: number; out: string } {
  const c0 = childCpu(); const t0 = performance.now();
  const r = spawnSync(cmd, args, { ...asUser(), stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString().trim() || r.signal}`);
  return { wall, cpu: childCpu() - c0, out: r.stdout.toString() };
}

/** A fresh ext4 (no journal) of `gb` GB mounted on dir; undefined when that cannot be done (not root, no loop device). */
function freshFs(dir: string, gb: number): (() => void) | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const img = `${dir}.img`;
  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
  fs.writeFileSync(img, ''); fs.truncateSync(img, gb * 2 ** 30);
  if (sh('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', img]) && sh('mount', ['-o', 'loop', img, dir])) {
    return () => { sh('umount', [dir]); fs.rmSync(img, { force: true }); };
  }
  fs.rmSync(img, { force: true });
  return undefined;
}

export async function benchCreate(): Promise<{ name: string; ours_s: number; anchor_s: number; ratio: number; anchor: string; goal: string; note: string }[]> {
  const layout = path.join(await fixtureCache(), 'deb2');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-create-'));
  const unmount = freshFs(work, 3);
  if (process.getuid?.() === 0) { const u = testUser(); fs.chownSync(work, u.uid, u.gid); }
  const store = path.join(work, 'store');
  const ud = (...a: string[]) => [BIN, `--repo=${store}`, '-q', ...a];
  const ours: Array<{ wall: number; cpu: number }> = []; const anchor: Array<{ wall: number; cpu: number }> = [];
  try {
    timed(process.execPath, ud('load', '-i', layout));
    for (let i = 0; i < ROUNDS; i++) {
      const r = timed(process.execPath, ud('create', 'deb2'));
      const root = timed(process.execPath, ud('inspect', '-p', r.out.trim())).out.trim();
      if (!fs.existsSync(path.join(root, 'etc', 'debian_version'))) throw new Error(`create made no deb2 tree at ${root}`);
      ours.push(r);
      anchor.push(timed('umoci', ['unpack', '--rootless', '--image', `${layout}:latest`, path.join(work, `umoci-${i}`)]));
    }
  } finally {
    unmount?.();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const ow = median(ours.map((x) => x.wall)); const aw = median(anchor.map((x) => x.wall));
  const oc = median(ours.map((x) => x.cpu)); const ac = median(anchor.map((x) => x.cpu));
  const s = (n: number) => n.toFixed(2);
  return [
    { name: 'create deb2 (2 gzip layers), wall', ours_s: ow, anchor_s: aw, ratio: ow / aw, anchor: 'umoci unpack --rootless', goal: '≤ 0.3×',
      note: `${unmount ? 'fresh ext4' : 'shared temp dir'}; runs ours [${ours.map((x) => s(x.wall)).join(' ')}] umoci [${anchor.map((x) => s(x.wall)).join(' ')}]` },
    { name: 'create deb2, CPU (user+sys)', ours_s: oc, anchor_s: ac, ratio: oc / ac, anchor: 'umoci unpack --rootless', goal: '',
      note: `runs ours [${ours.map((x) => s(x.cpu)).join(' ')}] umoci [${anchor.map((x) => s(x.cpu)).join(' ')}]` },
  ];
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  benchCreate().then((r) => console.log(JSON.stringify(r, null, 2)));
}
