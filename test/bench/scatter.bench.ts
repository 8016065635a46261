import path from 'node:path';
import { startConformanceEnv } from '../support/conformance-env.js';
import { mustRun, warmImage, writeScatterWorkflow } from '../support/cwl-fixtures.js';
import type { BenchRow } from './run.js';

/**
 * A 100-way scatter of a containerized one-line tool through
 * `cwltool --parallel`: with --user-space-docker-cmd=userdock (cwltool calls
 * `userdock pull` and `userdock run --rm` for every one of the 100 steps)
 * against the same workflow with --no-container, in the same run, as the
 * unprivileged test user. The difference / 100 is userdock's per-step cost.
 */
const WIDTH = Number(process.env.USERDOCK_SCATTER_WIDTH || 100);

const IMAGE = 'docker.io/debian:stable-slim';

export async function benchScatter(): Promise<BenchRow[]> {
  const ce = await startConformanceEnv({ copySuite: false });
  try {
    const dir = path.join(ce.workDir, 'scatter');
    const { wf, job } = writeScatterWorkflow(dir, { width: WIDTH, image: IMAGE, gather: 'none' });
    const cwltool = async (label: string, extra: string[]): Promise<number> => {
      const r = await mustRun(`cwltool (${label})`, '/usr/bin/cwltool', ['--parallel', '--quiet', ...extra, '--outdir', path.join(dir, `out-${label}`), wf, job],
        { env: ce.env, cwd: dir, timeoutMs: 20 * 60_000 });
      const outs = JSON.parse(r.stdout).outs as unknown[];
      if (outs.length !== WIDTH) throw new Error(`cwltool (${label}): ${outs.length} outputs, expected ${WIDTH}`);
      return r.seconds;
    };
    // Warm: the image in the store and its rootfs extracted, cwltool's caches.
    await warmImage(ce.env, IMAGE, { extract: true });
    const anchor = await cwltool('nocontainer', ['--no-container']);
    const ours = await cwltool('userdock', ['--user-space-docker-cmd=userdock']);
    const perStepMs = ((ours - anchor) / WIDTH) * 1000;
    return [{
      name: `scatter ${WIDTH}× one-line tool, cwltool --parallel`,
      ours_s: ours,
      anchor_s: anchor,
      ratio: ours / anchor,
      anchor: 'cwltool --no-container',
      goal: 'per-step overhead small vs. cwltool itself',
      note: `per-step overhead ${perStepMs.toFixed(0)} ms (pull + run --rm)`,
    }];
  } finally {
    await ce.stop();
  }
}
