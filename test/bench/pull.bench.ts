import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry, pushImage } from '../support/registry.js';
import { testUser, userdockBin, userEnv, userTempDir } from '../support/user.js';

/**
 * Pull of the deb2 fixture (two layers, ~38 MB compressed) from a loopback
 * docker-registry into a fresh store, against `skopeo copy docker://… oci:DIR`
 * into a fresh directory, in the same run: 5 rounds, interleaved (ours,
 * skopeo, ours, …) so load changes hit both alike; median wall time and
 * median CPU time (user+sys of the process and its children).
 *
 * Both run as the test user, in its clean environment (own HOME, plain
 * PATH), as the run benchmark does: the product is for unprivileged users,
 * and root's environment here sets NODE_EXTRA_CA_CERTS, which node 20
 * parses at every start (~50 ms, with the whole root store) before any code
 * of ours runs.
 *
 * Env: PULL_BENCH_ROUNDS (default 5); PULL_BENCH_KEEP_REGISTRY=host:port to
 * reuse a registry that already holds library/deb2:latest.
 */

interface Sample { wall: number; cpu: number }

/** Run a command under sh, which reports its children's CPU time with `times` on fd 3. */
function timed(cmd: string, args: string[], opts: SpawnSyncOptions): Sample {
  const t = process.hrtime.bigint();
  const r = spawnSync('/bin/sh', ['-c', '"$@"; s=$?; times >&3; exit $s', 'sh', cmd, ...args],
    { ...opts, stdio: ['ignore', 'ignore', 'pipe', 'pipe'], timeout: 300_000 });
  const wall = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr?.toString().slice(-2000)}`);
  const lines = (r.output[3]?.toString() ?? '').trim().split('\n');
  const secs = (s: string) => { const m = /(\d+)m([\d.]+)s/.exec(s); return m ? Number(m[1]) * 60 + Number(m[2]) : NaN; };
  const [u, s] = (lines[lines.length - 1] ?? '').trim().split(/\s+/);
  return { wall, cpu: secs(u) + secs(s) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchPull(): Promise<{ name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string; note?: string }[]> {
  const keep = process.env.PULL_BENCH_KEEP_REGISTRY;
  const reg = keep ? undefined : await startRegistry();
  const host = keep ?? reg!.host;
  const rounds = Number(process.env.PULL_BENCH_ROUNDS) || 5;
  const u = testUser();
  const work = userTempDir('ud-bench-pull');
  const as = (env: Record<string, string> = {}): SpawnSyncOptions => ({ uid: u.uid, gid: u.gid, env: userEnv(env), cwd: u.home });
  const cli = userdockBin();
  try {
    if (reg) await pushImage(reg, 'deb2', 'library/deb2:latest');
    const ref = `${host}/library/deb2:latest`;
    const ours: Sample[] = []; const anchor: Sample[] = [];
    for (let i = 0; i < rounds; i++) {
      const store = path.join(work, `store${i}`);
      const oci = path.join(work, `oci${i}`);
      const runOurs = () => ours.push(timed(process.execPath, [cli, '--quiet', `--repo=${store}`, 'pull', ref],
        as({ USERDOCK_CONFIG_DIR: path.join(work, 'cfg') })));
      const runSkopeo = () => anchor.push(timed('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${oci}:latest`], as()));
      // Alternate who goes first, so neither always runs on a warmer cache.
      if (i % 2) { runSkopeo(); runOurs(); } else { runOurs(); runSkopeo(); }
      fs.rmSync(store, { recursive: true, force: true });
      fs.rmSync(oci, { recursive: true, force: true });
    }
    const f = (xs: Sample[], k: keyof Sample) => xs.map((x) => x[k].toFixed(3)).join(' ');
    process.stderr.write(`pull deb2: userdock wall ${f(ours, 'wall')} cpu ${f(ours, 'cpu')}\n`);
    process.stderr.write(`pull deb2: skopeo   wall ${f(anchor, 'wall')} cpu ${f(anchor, 'cpu')}\n`);
    const ow = median(ours.map((x) => x.wall)); const aw = median(anchor.map((x) => x.wall));
    const oc = median(ours.map((x) => x.cpu)); const ac = median(anchor.map((x) => x.cpu));
    process.stderr.write(`pull deb2: median of ${rounds}: userdock ${ow.toFixed(3)} s wall, ${oc.toFixed(3)} s cpu; ` +
      `skopeo ${aw.toFixed(3)} s wall, ${ac.toFixed(3)} s cpu\n`);
    return [
      { name: 'pull deb2 (loopback registry, cold store), wall', ours_s: ow, anchor_s: aw, ratio: ow / aw, anchor: 'skopeo copy' },
      { name: 'pull deb2 (loopback registry, cold store), cpu', ours_s: oc, anchor_s: ac, ratio: oc / ac, anchor: 'skopeo copy' },
    ];
  } finally {
    await reg?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
