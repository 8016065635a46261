import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TreeWriter } from '../../src/rootfs/layer.js';
import { decompressStream } from '../../src/rootfs/decompress.js';
import type { Manifest } from '../../src/image/store.js';
import { fixtureCache } from '../support/images.js';

/**
 * Extraction of the deb2 fixture (two gzip layers with a whiteout, ~4,800
 * entries, 100 MB): userdock's layer applier vs `umoci unpack --rootless`,
 * same run, interleaved, median of 5. Both run as child processes (ours:
 * this file with --extract, i.e. a cold node + the same code as `create`),
 * so wall time and CPU time (user+sys of the child, from /proc/self/stat
 * cutime/cstime) are measured the same way for both. The machine is shared:
 * CPU time is the steadier number, wall time is what the user sees.
 * Trees are removed only at the end: on this ext4 (no journal) a create
 * right after an `rm -rf` of thousands of inodes pays a linear scan over the
 * "recently deleted" inodes of the block group (kernel recently_deleted(),
 * ~0.5 ms per new inode), which would make each run pay for the previous one.
 */
function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

const TICK = 100; // USER_HZ
/** user+sys seconds of all waited-for children so far. */
function childCpu(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / TICK; // fields 16, 17: cutime, cstime
}

function timed(cmd: string, args: string[]): { wall: number; cpu: number } {
  const c0 = childCpu(); const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString().trim() || r.signal}`);
  return { wall, cpu: childCpu() - c0 };
}

function layoutManifest(layout: string): { manifest: Manifest; blob: (d: string) => string } {
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const blob = (d: string) => path.join(layout, 'blobs', 'sha256', d.slice(7));
  return { manifest: JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8')) as Manifest, blob };
}

/** Child mode: extract the layers of LAYOUT into DEST, as `create` does. */
async function extractChild(layout: string, dest: string): Promise<void> {
  const { manifest, blob } = layoutManifest(layout);
  fs.mkdirSync(dest, { recursive: true });
  const w = new TreeWriter(dest);
  for (const l of manifest.layers) await w.apply(decompressStream(fs.createReadStream(blob(l.digest), { highWaterMark: 1 << 20 }), l.mediaType));
}

export async function benchCreate(): Promise<{ name: string; ours_s: number; anchor_s: number; ratio: number; anchor: string; goal: string; note: string }[]> {
  const layout = path.join(await fixtureCache(), 'deb2');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-create-'));
  const self = fileURLToPath(import.meta.url);
  const ours: Array<{ wall: number; cpu: number }> = []; const anchor: Array<{ wall: number; cpu: number }> = [];
  try {
    for (let i = 0; i < 5; i++) {
      const dest = path.join(work, `ours-${i}`);
      ours.push(timed(process.execPath, [self, '--extract', layout, dest]));
      const udest = path.join(work, `umoci-${i}`);
      anchor.push(timed('umoci', ['unpack', '--rootless', '--image', `${layout}:latest`, udest]));
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const ow = median(ours.map((x) => x.wall)); const aw = median(anchor.map((x) => x.wall));
  const oc = median(ours.map((x) => x.cpu)); const ac = median(anchor.map((x) => x.cpu));
  const s = (n: number) => n.toFixed(2);
  return [
    { name: 'create: extract deb2 (2 gzip layers), wall', ours_s: ow, anchor_s: aw, ratio: ow / aw, anchor: 'umoci unpack --rootless', goal: '≤ 0.3×',
      note: `runs ours [${ours.map((x) => s(x.wall)).join(' ')}] umoci [${anchor.map((x) => s(x.wall)).join(' ')}]` },
    { name: 'create: extract deb2, CPU (user+sys)', ours_s: oc, anchor_s: ac, ratio: oc / ac, anchor: 'umoci unpack --rootless', goal: '',
      note: `runs ours [${ours.map((x) => s(x.cpu)).join(' ')}] umoci [${anchor.map((x) => s(x.cpu)).join(' ')}]` },
  ];
}

if (process.argv[2] === '--extract') {
  await extractChild(process.argv[3], process.argv[4]);
} else if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  benchCreate().then((r) => console.log(JSON.stringify(r, null, 2)));
}
