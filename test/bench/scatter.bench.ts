import fs from 'node:fs';
import path from 'node:path';
import { runGroup, startConformanceEnv } from '../support/conformance-env.js';
import { testUser } from '../support/user.js';

/**
 * A 100-way scatter of a containerized one-line tool through
 * `cwltool --parallel`: with --user-space-docker-cmd=userdock (cwltool calls
 * `userdock pull` and `userdock run --rm` for every one of the 100 steps)
 * against the same workflow with --no-container, in the same run, as the
 * unprivileged test user. The difference / 100 is userdock's per-step cost.
 */
const WIDTH = Number(process.env.USERDOCK_SCATTER_WIDTH || 100);

const WF = `cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  xs: int[]
outputs:
  outs: {type: 'File[]', outputSource: one/out}
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
      outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
`;

export async function benchScatter(): Promise<{ name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string; goal?: string; note?: string }[]> {
  const ce = await startConformanceEnv({ copySuite: false });
  try {
    const u = testUser();
    const dir = path.join(ce.workDir, 'scatter');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'wf.cwl'), WF);
    fs.writeFileSync(path.join(dir, 'job.json'), JSON.stringify({ xs: Array.from({ length: WIDTH }, (_, i) => i) }));
    fs.chownSync(dir, u.uid, u.gid);
    const cwltool = async (label: string, extra: string[]): Promise<number> => {
      const out = path.join(dir, `out-${label}`);
      const r = await runGroup('/usr/bin/cwltool', ['--parallel', '--quiet', ...extra, '--outdir', out, path.join(dir, 'wf.cwl'), path.join(dir, 'job.json')],
        { env: ce.env, cwd: dir, timeoutMs: 20 * 60_000 });
      if (r.timedOut || r.code !== 0) throw new Error(`cwltool (${label}) ${r.timedOut ? 'timed out' : `exited ${r.code}`}: ${r.stderr.slice(-2000)}`);
      const outs = JSON.parse(r.stdout).outs as unknown[];
      if (outs.length !== WIDTH) throw new Error(`cwltool (${label}): ${outs.length} outputs, expected ${WIDTH}`);
      return r.seconds;
    };
    // Warm: the image in the store and its rootfs extracted, cwltool's caches.
    const warm = await runGroup('userdock', ['pull', 'docker.io/debian:stable-slim'], { env: ce.env, timeoutMs: 120_000 });
    if (warm.code !== 0) throw new Error(`userdock pull: ${warm.stderr}`);
    const r0 = await runGroup('userdock', ['run', '--rm', 'docker.io/debian:stable-slim', 'true'], { env: ce.env, timeoutMs: 120_000 });
    if (r0.code !== 0) throw new Error(`userdock run: ${r0.stderr}`);
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
