import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRegistry, pushImage } from '../support/registry.js';

/**
 * Pull of the deb2 fixture (two layers, ~38 MB compressed) from a loopback
 * docker-registry into a fresh store, against `skopeo copy docker://… oci:DIR`
 * into a fresh directory, in the same run. 3 repetitions each, median.
 */
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'userdock.js');

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr?.toString().slice(-2000)}`);
  return s;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchPull(): Promise<{ name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string }[]> {
  const reg = await startRegistry();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-bench-pull-'));
  try {
    await pushImage(reg, 'deb2', 'library/deb2:latest');
    const ref = `${reg.host}/library/deb2:latest`;
    const ours: number[] = []; const anchor: number[] = [];
    for (let i = 0; i < 3; i++) {
      const store = path.join(work, `store${i}`);
      ours.push(timed(process.execPath, [CLI, '--quiet', `--repo=${store}`, 'pull', ref],
        { ...process.env, USERDOCK_CONFIG_DIR: path.join(work, 'cfg') }));
      const oci = path.join(work, `oci${i}`);
      anchor.push(timed('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${oci}:latest`]));
    }
    const o = median(ours); const a = median(anchor);
    return [{ name: 'pull deb2 (loopback registry, cold store)', ours_s: o, anchor_s: a, ratio: o / a, anchor: 'skopeo copy' }];
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
