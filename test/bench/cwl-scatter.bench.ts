import fs from 'node:fs';
import path from 'node:path';
import { runGroup, startConformanceEnv } from '../support/conformance-env.js';
import { testUser, cwlRunBin } from '../support/user.js';

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

const WF = `cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  xs: int[]
outputs:
  all: {type: File, outputSource: gather/out}
steps:
  one:
    scatter: x
    in: {x: xs}
    out: [out]
    run:
      class: CommandLineTool
      hints:
        DockerRequirement: {dockerPull: "docker.io/debian:stable-slim"}
      baseCommand: echo
      inputs: {x: {type: int, inputBinding: {position: 1}}}
      stdout: out.txt
      outputs: {out: stdout}
  gather:
    in: {fs: one/out}
    out: [out]
    run:
      class: CommandLineTool
      hints:
        DockerRequirement: {dockerPull: "docker.io/debian:stable-slim"}
      baseCommand: cat
      inputs: {fs: {type: 'File[]', inputBinding: {position: 1}}}
      stdout: all.txt
      outputs: {out: stdout}
`;

export async function benchCwlScatter(): Promise<{ name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string; note?: string }[]> {
  const ce = await startConformanceEnv({ copySuite: false });
  try {
    const u = testUser();
    const dir = path.join(ce.workDir, 'cwl-scatter');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'wf.cwl'), WF);
    fs.writeFileSync(path.join(dir, 'job.json'), JSON.stringify({ xs: Array.from({ length: WIDTH }, (_, i) => i) }));
    fs.chownSync(dir, u.uid, u.gid);
    let n = 0;
    const run = async (label: string, cmd: string, args: string[]): Promise<number> => {
      const out = path.join(dir, `out-${++n}`);
      const r = await runGroup(cmd, [...args, '--outdir', out, path.join(dir, 'wf.cwl'), path.join(dir, 'job.json')], { env: ce.env, cwd: dir, timeoutMs: TIMEOUT_MS });
      if (r.timedOut || r.code !== 0) throw new Error(`${label} ${r.timedOut ? `timed out after ${TIMEOUT_MS / 1000}s` : `exited ${r.code}`}: ${r.stderr.slice(-2000)}`);
      const all = fs.readFileSync(JSON.parse(r.stdout).all.path, 'utf8').trim().split('\n');
      if (all.length !== WIDTH || all[WIDTH - 1] !== String(WIDTH - 1)) throw new Error(`${label}: gathered ${all.length} lines, expected ${WIDTH}`);
      return r.seconds;
    };
    // Warm: the image in the store and its rootfs extracted.
    const warm = await runGroup('userdock', ['pull', 'docker.io/debian:stable-slim'], { env: ce.env, timeoutMs: 120_000 });
    if (warm.code !== 0) throw new Error(`userdock pull: ${warm.stderr}`);
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
