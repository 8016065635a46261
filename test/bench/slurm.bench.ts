import path from 'node:path';
import { startConformanceEnv, type ConformanceEnv } from '../support/conformance-env.js';
import { cwlRunBin } from '../support/user.js';
import { ensureSlurm } from '../support/slurm.js';
import { mustRun, warmImage, writeAsUser, writeScatterWorkflow } from '../support/cwl-fixtures.js';
import type { BenchRow } from './run.js';

/**
 * cwl-run --executor slurm on the single-node test cluster (2 CPUs), as the
 * unprivileged test user, images from the local stand-in registry:
 *  1. one containerized tool: cwl-run --executor slurm vs
 *     toil-cwl-runner --batchSystem slurm --user-space-docker-cmd=userdock;
 *  2. a WIDTH-way scatter + gather: --executor slurm vs the same workflow run
 *     locally (the difference / WIDTH is the per-item cost of going through Slurm).
 */
const WIDTH = Number(process.env.USERDOCK_SLURM_SCATTER_WIDTH || 200);
const IMAGE = 'docker.io/debian:stable-slim';

const TOOL = `cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "${IMAGE}"}
baseCommand: echo
inputs: {msg: {type: string, inputBinding: {position: 1}}}
stdout: out.txt
outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
`;

const run = (ce: ConformanceEnv, label: string, cmd: string, args: string[], cwd: string): Promise<number> =>
  mustRun(label, cmd, args, { env: ce.env, cwd, timeoutMs: 20 * 60_000 }).then((r) => r.seconds);

export async function benchSlurm(): Promise<BenchRow[]> {
  const cluster = await ensureSlurm();
  const ce = await startConformanceEnv({ copySuite: false });
  try {
    const dir = path.join(ce.workDir, 'slurm-bench');
    const { wf, job } = writeScatterWorkflow(dir, { width: WIDTH, image: IMAGE });
    writeAsUser(dir, 'tool.cwl', TOOL);
    writeAsUser(dir, 'tool-job.json', JSON.stringify({ msg: 'hello' }));
    // Warm: the image in the store and its rootfs extracted (both runners then measure scheduling + run).
    await warmImage(ce.env, IMAGE, { extract: true });
    const cwlRun = (label: string, extra: string[], proc: string, job: string): Promise<number> =>
      run(ce, `cwl-run ${label}`, process.execPath, [cwlRunBin(), '--quiet', ...extra, '--outdir', path.join(dir, `out-${label}`), proc, job], dir);
    const slurm = ['--executor', 'slurm', '--slurm-partition', cluster.partition];
    // each slurm run gets a fresh work dir: no job cache hits
    const tOurs = await cwlRun('tool-slurm', [...slurm, '--slurm-workdir', path.join(dir, 'wd-tool')], 'tool.cwl', 'tool-job.json');
    const toilStore = path.join(dir, 'toil-jobstore');
    const tToil = await run(ce, 'toil-cwl-runner', '/usr/bin/toil-cwl-runner', ['--batchSystem', 'slurm', '--user-space-docker-cmd=userdock', '--jobStore', toilStore,
      '--workDir', path.join(dir), '--outdir', path.join(dir, 'out-toil'), '--logWarning', 'tool.cwl', 'tool-job.json'], dir);
    const tScSlurm = await cwlRun('wf-slurm', [...slurm, '--slurm-workdir', path.join(dir, 'wd-wf')], wf, job);
    const tScLocal = await cwlRun('wf-local', ['--parallel'], wf, job);
    return [
      { name: 'cwl-run --executor slurm: one containerized tool', ours_s: tOurs, anchor: 'toil-cwl-runner --batchSystem slurm', anchor_s: tToil, ratio: tOurs / tToil, goal: '< 1×' },
      { name: `cwl-run --executor slurm: ${WIDTH}-way scatter + gather`, ours_s: tScSlurm, anchor: 'same workflow, local executor', anchor_s: tScLocal, ratio: tScSlurm / tScLocal,
        note: `per-item overhead of Slurm ${(((tScSlurm - tScLocal) / WIDTH) * 1000).toFixed(1)} ms` },
    ];
  } finally {
    await ce.stop();
  }
}
