import path from 'node:path';
import { startConformanceEnv } from '../support/conformance-env.js';
import { cwlRunBin } from '../support/user.js';
import { checkGathered, mustRun, warmImage, writeScatterWorkflow } from '../support/cwl-fixtures.js';
import type { BenchRow } from './run.js';

/**
 * cwl-run's workflow engine on a scatter: a WIDTH-way scatter (default 100,
 * USERDOCK_CWL_SCATTER_WIDTH up to 1,000) of a containerized one-line tool
 * plus a gather step, as the unprivileged test user, offline, in one run:
 *   - cwl-run (containers through userdock's engines, one rootfs) vs
 *     `cwltool --parallel --user-space-docker-cmd=userdock`;
 *   - cwl-run --no-container vs `cwltool --parallel --no-container`.
 * Every run has a hard timeout that kills its process group (Debian's
 * cwltool --parallel can hang when a docker command fails).
 */
const WIDTH = Math.min(1000, Math.max(1, Number(process.env.USERDOCK_CWL_SCATTER_WIDTH || 100)));
const TIMEOUT_MS = Number(process.env.USERDOCK_CWL_SCATTER_TIMEOUT_S || 1200) * 1000;
const IMAGE = 'docker.io/debian:stable-slim';

export async function benchCwlScatter(): Promise<BenchRow[]> {
  const ce = await startConformanceEnv({ copySuite: false });
  try {
    const dir = path.join(ce.workDir, 'cwl-scatter');
    const { wf, job } = writeScatterWorkflow(dir, { width: WIDTH, image: IMAGE });
    let n = 0;
    const run = async (label: string, cmd: string, args: string[]): Promise<number> => {
      const r = await mustRun(label, cmd, [...args, '--outdir', path.join(dir, `out-${++n}`), wf, job], { env: ce.env, cwd: dir, timeoutMs: TIMEOUT_MS });
      checkGathered(label, r.stdout, WIDTH);
      return r.seconds;
    };
    // Warm: the image in the store and its rootfs extracted.
    await warmImage(ce.env, IMAGE);
    const cwlRun = [cwlRunBin(), '--quiet'];
    const oursC = await run('cwl-run', process.execPath, cwlRun);
    const anchorC = await run('cwltool --user-space-docker-cmd=userdock', '/usr/bin/cwltool', ['--parallel', '--quiet', '--user-space-docker-cmd=userdock']);
    const oursN = await run('cwl-run --no-container', process.execPath, [...cwlRun, '--no-container']);
    const anchorN = await run('cwltool --no-container', '/usr/bin/cwltool', ['--parallel', '--quiet', '--no-container']);
    return [
      { name: `cwl-run scatter ${WIDTH}× + gather, containers`, ours_s: oursC, anchor_s: anchorC, ratio: oursC / anchorC, anchor: 'cwltool --parallel --user-space-docker-cmd=userdock' },
      { name: `cwl-run scatter ${WIDTH}× + gather, --no-container`, ours_s: oursN, anchor_s: anchorN, ratio: oursN / anchorN, anchor: 'cwltool --parallel --no-container' },
    ];
  } finally {
    await ce.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]).endsWith(path.join('bench', 'cwl-scatter.bench.js'))) {
  benchCwlScatter().then((r) => { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); }, (e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exitCode = 1; });
}
