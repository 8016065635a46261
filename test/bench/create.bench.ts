import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { TreeWriter } from '../../src/rootfs/layer.js';
import { decompressStream } from '../../src/rootfs/decompress.js';
import type { Manifest } from '../../src/image/store.js';
import { fixtureCache } from '../support/images.js';

/**
 * Extraction of the deb2 fixture (two gzip layers with a whiteout): userdock's
 * layer applier vs `umoci unpack --rootless`, same run, median of 3.
 */
function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

export async function benchCreate(): Promise<{ name: string; ours_s: number; anchor_s: number; ratio: number }[]> {
  const layout = path.join(await fixtureCache(), 'deb2');
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const blob = (d: string) => path.join(layout, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8')) as Manifest;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-create-'));
  const ours: number[] = []; const anchor: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const dest = path.join(work, `ours-${i}`);
      fs.mkdirSync(dest);
      let t0 = performance.now();
      const w = new TreeWriter(dest);
      for (const l of manifest.layers) await w.apply(decompressStream(fs.createReadStream(blob(l.digest), { highWaterMark: 1 << 20 }), l.mediaType));
      ours.push((performance.now() - t0) / 1000);
      const udest = path.join(work, `umoci-${i}`);
      t0 = performance.now();
      execFileSync('umoci', ['unpack', '--rootless', '--image', `${layout}:latest`, udest], { stdio: 'ignore', timeout: 600_000 });
      anchor.push((performance.now() - t0) / 1000);
      fs.rmSync(dest, { recursive: true, force: true });
      fs.rmSync(udest, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const o = median(ours); const a = median(anchor);
  return [{ name: 'create: extract deb2 (2 gzip layers)', ours_s: o, anchor_s: a, ratio: o / a }];
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  benchCreate().then((r) => console.log(JSON.stringify(r, null, 2)));
}
