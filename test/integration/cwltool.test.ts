import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { junitFailures, parseCwltest, runCwltest, runGroup, startConformanceEnv, userProcesses, type ConformanceEnv } from '../support/conformance-env.js';
import { testUser } from '../support/user.js';

/**
 * Debian 12's cwltool with --user-space-docker-cmd=userdock, as the
 * unprivileged test user, images from a loopback registry. Every cwltool /
 * cwltest run has a hard timeout that kills its process group.
 *
 *   node --test dist/test/integration/cwltool.test.js
 *   CWL_FULL_SUITE=1 node --test dist/test/integration/cwltool.test.js   # also the whole suite
 */

const DOCKER_TESTS = 11; // conformance_tests.yaml entries tagged "docker" (cwl-v1.2 @ 551d58d)

let ce: ConformanceEnv;

function writeUserFile(p: string, text: string | Buffer): void {
  const u = testUser();
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  fs.chownSync(p, u.uid, u.gid);
  fs.chownSync(path.dirname(p), u.uid, u.gid);
}

function cwltool(args: string[], timeoutMs: number) {
  return runGroup('/usr/bin/cwltool', ['--user-space-docker-cmd=userdock', ...args], { env: ce.env, cwd: ce.workDir, timeoutMs });
}

describe('cwltool --user-space-docker-cmd=userdock', { timeout: 40 * 60_000 }, () => {
  before(async () => { ce = await startConformanceEnv(); }, { timeout: 20 * 60_000 });
  after(async () => { await ce?.stop(); });

  test('stdout capture is byte-exact (binary bytes, no trailing newline, 1 MB)', { timeout: 5 * 60_000 }, async () => {
    const dir = path.join(ce.workDir, 'bytes');
    writeUserFile(path.join(dir, 'bytes.cwl'), `cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "docker.io/debian:stable-slim"}
  ShellCommandRequirement: {}
inputs: []
arguments:
  - valueFrom: "printf 'a\\\\000b\\\\r\\\\n\\\\377\\\\376end' && seq 1 150000"
    shellQuote: false
stdout: out.bin
outputs:
  out: {type: File, outputBinding: {glob: out.bin}}
`);
    const outdir = path.join(dir, 'out');
    const r = await cwltool(['--outdir', outdir, path.join(dir, 'bytes.cwl')], 4 * 60_000);
    assert.equal(r.timedOut, false, 'cwltool timed out');
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const got = fs.readFileSync(path.join(outdir, 'out.bin'));
    let seq = '';
    for (let i = 1; i <= 150000; i++) seq += `${i}\n`;
    const want = Buffer.concat([Buffer.from([0x61, 0, 0x62, 0x0d, 0x0a, 0xff, 0xfe]), Buffer.from('end' + seq)]);
    assert.equal(got.length, want.length, 'stdout length differs');
    assert.ok(got.equals(want), 'stdout bytes differ');
    const outJson = JSON.parse(r.stdout);
    assert.equal(outJson.out.size, want.length);
  });

  test('input with a comma in its path is bound and readable; env values keep ":ro"', { timeout: 5 * 60_000 }, async () => {
    const dir = path.join(ce.workDir, 'odd,dir');
    writeUserFile(path.join(dir, 'in,put.txt'), 'hello, world\n');
    writeUserFile(path.join(dir, 'cat.cwl'), `cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "docker.io/debian:stable-slim"}
  EnvVarRequirement: {envDef: {MARK: "a b:ro=c"}}
  ShellCommandRequirement: {}
inputs:
  infile: {type: File}
arguments:
  - valueFrom: 'cat "$(inputs.infile.path)"; printf "%s\\n" "$MARK"; pwd; echo "$HOME"'
    shellQuote: false
stdout: out.txt
outputs:
  out: {type: File, outputBinding: {glob: out.txt}}
`);
    const outdir = path.join(dir, 'out');
    const r = await cwltool(['--outdir', outdir, path.join(dir, 'cat.cwl'), '--infile', path.join(dir, 'in,put.txt')], 4 * 60_000);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const lines = fs.readFileSync(path.join(outdir, 'out.txt'), 'utf8').split('\n');
    assert.equal(lines[0], 'hello, world');
    assert.equal(lines[1], 'a b:ro=c');
    assert.match(lines[2], /^\/\w+$/, 'workdir is the container outdir');
    assert.equal(lines[3], lines[2], 'HOME is the outdir');
  });

  test('ToolTimeLimit: cwltool SIGTERMs userdock and the whole container tree goes', { timeout: 3 * 60_000 }, async () => {
    const marker = `86${process.pid % 1000}7`;
    const dir = path.join(ce.workDir, 'timelimit');
    writeUserFile(path.join(dir, 'sleep.cwl'), `cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "docker.io/debian:stable-slim"}
  ToolTimeLimit: {timelimit: 4}
  ShellCommandRequirement: {}
inputs: []
arguments:
  - valueFrom: "sleep ${marker} & sh -c 'sleep ${marker}1' & sleep ${marker}2; wait"
    shellQuote: false
outputs: []
`);
    // Warm the image so the time limit covers the sleep, not the pull.
    const warm = await runGroup('userdock', ['pull', 'docker.io/debian:stable-slim'], { env: ce.env, timeoutMs: 120_000 });
    assert.equal(warm.code, 0, warm.stderr);
    const t0 = Date.now();
    const r = await cwltool(['--outdir', path.join(dir, 'out'), path.join(dir, 'sleep.cwl')], 90_000);
    assert.equal(r.timedOut, false, 'cwltool did not return after the time limit');
    assert.notEqual(r.code, 0, 'the step must fail');
    assert.match(r.stderr, /time limit|terminated|permanentFail/i);
    assert.ok(Date.now() - t0 < 60_000, 'cwltool took too long');
    // runGroup SIGKILLs cwltool's own group when it returns; a container
    // process that escaped into another session would still be here.
    let left: string[] = [];
    for (let i = 0; i < 20; i++) {
      left = userProcesses(`sleep ${marker}`);
      if (!left.length) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    assert.deepEqual(left, [], 'container processes outlived the SIGTERM');
  });

  test(`all ${DOCKER_TESTS} docker-tagged conformance tests pass (cwltest -j2)`, { timeout: 20 * 60_000 }, async () => {
    const junit = path.join(ce.workDir, 'docker-junit.xml');
    const r = await runCwltest(ce, 'cwltool-userdock', ['--tags=docker', '-j2', '--timeout=300'], 18 * 60_000, junit);
    const s = parseCwltest(r.stdout + r.stderr);
    const diag = `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}\n${junitFailures(junit)}`;
    assert.equal(r.timedOut, false, `cwltest timed out\n${diag}`);
    assert.equal(s.failures, 0, diag);
    assert.equal(s.unsupported, 0, diag);
    assert.equal(s.passed, DOCKER_TESTS, diag);
    assert.equal(r.code, 0, diag);
  });

  test('full conformance suite: at least 369 of 378 pass (CWL_FULL_SUITE=1)', { timeout: 120 * 60_000, skip: !process.env.CWL_FULL_SUITE }, async () => {
    const junit = path.join(ce.workDir, 'full-junit.xml');
    const r = await runCwltest(ce, 'cwltool-userdock', ['-j2', '--timeout=300'], 110 * 60_000, junit);
    const s = parseCwltest(r.stdout + r.stderr);
    if (process.env.USERDOCK_CONFORMANCE_LOG) fs.writeFileSync(process.env.USERDOCK_CONFORMANCE_LOG, r.stdout + r.stderr);
    assert.equal(r.timedOut, false, 'cwltest timed out');
    assert.ok(s.passed >= 369, `${s.passed} passed, ${s.failures} failures, ${s.unsupported} unsupported\n${r.stdout.slice(-8000)}`);
  });
});
