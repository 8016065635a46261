import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { junitFailures, parseCwltest, runCwltest, runGroup, startConformanceEnv, type ConformanceEnv } from '../support/conformance-env.js';
import { testUser } from '../support/user.js';
import { ensureSlurm } from '../support/slurm.js';

/**
 * Debian 12's Toil (toil-cwl-runner, single_machine batch system) with
 * --user-space-docker-cmd=userdock, as the unprivileged test user. Hard
 * timeouts kill the whole process group.
 *
 *   node --test dist/test/integration/toil.test.js
 */

let ce: ConformanceEnv;

describe('toil-cwl-runner --user-space-docker-cmd=userdock', { timeout: 60 * 60_000 }, () => {
  before(async () => { ce = await startConformanceEnv(); }, { timeout: 20 * 60_000 });
  after(async () => { await ce?.stop(); });

  test('a two-step workflow with an explicit job store', { timeout: 8 * 60_000 }, async () => {
    const u = testUser();
    const dir = path.join(ce.workDir, 'toil-wf');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'wf.cwl'), `cwlVersion: v1.2
class: Workflow
requirements:
  DockerRequirement: {dockerPull: "docker.io/debian:stable-slim"}
inputs:
  msg: string
outputs:
  out: {type: File, outputSource: count/out}
steps:
  echo:
    in: {msg: msg}
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: echo
      inputs: {msg: {type: string, inputBinding: {position: 1}}}
      stdout: echo.txt
      outputs: {out: {type: File, outputBinding: {glob: echo.txt}}}
  count:
    in: {f: echo/out}
    out: [out]
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: "docker.io/python:3-slim"}
      baseCommand: [python3, -c, "import sys; print(len(open(sys.argv[1]).read()))"]
      inputs: {f: {type: File, inputBinding: {position: 1}}}
      stdout: count.txt
      outputs: {out: {type: File, outputBinding: {glob: count.txt}}}
`);
    fs.chownSync(dir, u.uid, u.gid);
    const outdir = path.join(dir, 'out');
    const r = await runGroup('/usr/bin/toil-cwl-runner', [
      '--user-space-docker-cmd=userdock', '--jobStore', path.join(dir, 'jobstore'), '--batchSystem', 'single_machine',
      '--outdir', outdir, '--logLevel', 'WARNING', path.join(dir, 'wf.cwl'), '--msg', 'hello toil',
    ], { env: ce.env, cwd: dir, timeoutMs: 7 * 60_000 });
    assert.equal(r.timedOut, false, 'toil timed out');
    assert.equal(r.code, 0, r.stderr.slice(-4000));
    assert.equal(fs.readFileSync(path.join(outdir, 'count.txt'), 'utf8'), '11\n');
  });

  test('the docker-tagged conformance tests pass under Toil (cwltest -j2)', { timeout: 30 * 60_000 }, async () => {
    const junit = path.join(ce.workDir, 'toil-junit.xml');
    const r = await runCwltest(ce, 'toil-userdock', ['--tags=docker', '-j2', '--timeout=400'], 28 * 60_000, junit);
    const s = parseCwltest(r.stdout + r.stderr);
    const diag = `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}\n${junitFailures(junit)}`;
    assert.equal(r.timedOut, false, `cwltest timed out\n${diag}`);
    assert.equal(s.failures, 0, diag);
    assert.equal(s.unsupported, 0, diag);
    assert.equal(s.passed, 11, diag);
  });

  // Issue 8: Toil's own Slurm batch system, each Toil job an sbatch job on the single-node test cluster,
  // containers through userdock on the node. A fresh job store per test (mktemp -u: Toil creates it), a shared
  // --workDir. Measured: 11 passed in 452 s at -j1 (Toil polls Slurm slowly; a failing job is retried once).
  test('the docker-tagged conformance tests pass under Toil --batchSystem slurm (cwltest -j1)', { timeout: 20 * 60_000 }, async () => {
    await ensureSlurm();
    const u = testUser();
    const shared = path.join(ce.workDir, 'toil-slurm');
    for (const d of [shared, path.join(shared, 'work'), path.join(shared, 'stores')]) { fs.mkdirSync(d, { recursive: true }); fs.chownSync(d, u.uid, u.gid); }
    const launcher = path.join(ce.binDir, 'toil-userdock-slurm-launcher');
    fs.writeFileSync(launcher, `#!/bin/sh
js=$(mktemp -d -u -p '${shared}/stores' js-XXXXXX)
exec /usr/bin/toil-cwl-runner --batchSystem slurm --jobStore "$js" --workDir '${shared}/work' --user-space-docker-cmd=userdock --logLevel=WARNING "$@"
`, { mode: 0o755 });
    const junit = path.join(shared, 'junit.xml');
    const r = await runCwltest(ce, 'toil-userdock-slurm-launcher', ['--tags=docker', '-j1', '--timeout=600'], 18 * 60_000, junit);
    const s = parseCwltest(r.stdout + r.stderr);
    const diag = `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}\n${junitFailures(junit)}`;
    process.stderr.write(`toil --batchSystem slurm: ${s.passed} passed, ${s.failures} failures in ${r.seconds.toFixed(0)} s\n`);
    assert.equal(r.timedOut, false, `cwltest timed out\n${diag}`);
    assert.equal(s.failures, 0, diag);
    assert.equal(s.unsupported, 0, diag);
    assert.equal(s.passed, 11, diag);
  });
});
