import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runAsUser, cwlRunBin, testUser, userEnv, type RunResult } from '../support/user.js';
import { fixtureCache } from '../support/images.js';
import { dockerRequirement, giveToUser, offlineWorkspace, saveBusybox, writeAsUser, writeScatterWorkflow } from '../support/cwl-fixtures.js';
import { ensureSlurm, squeueJobs, waitJobState, type SlurmCluster } from '../support/slurm.js';

/**
 * `cwl-run --executor slurm` on the single-node test cluster, as the test
 * user, with no registry reachable: a containerized tool (busybox from the
 * fixture cache via dockerLoad, pulled on the submit side, rootfs built on the
 * node), a 200-way scatter as ONE array with one rootfs extraction, restart
 * from the job cache, ToolTimeLimit, scancel of a running job, and SIGTERM on
 * the driver cancelling everything it queued.
 */
let cluster: SlurmCluster;
let work = '';
let env: Record<string, string> = {};

const write = (name: string, text: string): string => writeAsUser(work, name, text);
function cwlRun(args: string[], extraEnv: Record<string, string> = {}, timeoutMs = 240_000): Promise<RunResult> {
  return runAsUser(process.execPath, [cwlRunBin(), ...args], { cwd: work, env: { ...env, ...extraEnv }, timeoutMs });
}
/** cwl-run in the background (for signals); stderr is collected as it comes. */
function cwlRunBg(args: string[]): { child: ChildProcess; stderr: () => string; done: Promise<number | null> } {
  const u = testUser();
  const child = spawn(process.execPath, [cwlRunBin(), ...args], { uid: u.uid, gid: u.gid, cwd: work, env: userEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  child.stdout!.resume();
  const killer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  const done = new Promise<number | null>((res) => child.on('close', (c) => { clearTimeout(killer); res(c); }));
  return { child, stderr: () => err, done };
}
async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== null && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const jobIdIn = (s: string): string | undefined => /\[slurm\] job (\d+):/.exec(s)?.[1];

const BB = { load: 'images/bb.tar', id: 'cwltest/bb:1' };
const DOCKER = dockerRequirement(BB);

before(async () => {
  cluster = await ensureSlurm();
  const cache = await fixtureCache({ timeoutMs: 1_500_000 });
  ({ work, env } = offlineWorkspace('cwl-slurm'));
  saveBusybox(cache, path.join(work, 'images', 'bb.tar'), BB.id);
  write('tool.cwl', `cwlVersion: v1.2
class: CommandLineTool
requirements:
  ${DOCKER}
  ResourceRequirement: { coresMin: 1, ramMin: 200 }
baseCommand: [sh, -c]
arguments: ['echo "host=\`hostname\` pwd=$PWD job=$$" > out.txt; ls /linuxrc >> out.txt']
inputs: []
outputs:
  out: { type: File, outputBinding: { glob: out.txt, loadContents: true } }
`);
  // the scattered tool's outdir has a parent in busybox: P1 (PRoot) runs of a shared rootfs with the outdir under a
  // missing /var race each other ("can't create out.txt: nonexistent directory"), with or without Slurm
  writeScatterWorkflow(work, { width: 200, image: BB, outdir: '/home/out', gather: 'host' });
  write('sleep.cwl', `cwlVersion: v1.2
class: CommandLineTool
requirements:
  ${DOCKER}
  ToolTimeLimit: { timelimit: $(inputs.limit) }
baseCommand: [sleep]
inputs:
  s: { type: int, inputBinding: { position: 1 } }
  limit: { type: int, default: 0 }
outputs: []
`);
  giveToUser(work);
}, { timeout: 1_800_000 });

after(async () => {
  // never leave our jobs behind, and cancel only ours: other test files (the
  // Slurm conformance run) submit cwl-run jobs as the same user at the same time
  const mine = (await squeueJobs(testUser().name)).filter((j) => j.name.startsWith('cwl-run-') && work && j.workDir.startsWith(work + '/'));
  if (mine.length) await runAsUser('scancel', [...new Set(mine.map((j) => j.jobId.split('_')[0]))], { timeoutMs: 30_000 });
  if (work && !process.env.USERDOCK_KEEP_TMP) fs.rmSync(work, { recursive: true, force: true });
});

test('a containerized tool runs through --executor slurm on the node', { timeout: 300_000 }, async () => {
  const r = await cwlRun(['--executor', 'slurm', '--slurm-partition', cluster.partition, '--outdir', path.join(work, 'o-tool'), 'tool.cwl']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const m = /^host=(\S+) pwd=\/var\/spool\/cwl job=(\d+)\n\/linuxrc\n$/.exec(out.out.contents);
  assert.ok(m, out.out.contents);
  assert.equal(m[1]!.split('.')[0], cluster.nodeName);
  assert.equal(jobIdIn(r.stderr) !== undefined, true, r.stderr);
  assert.equal(fs.readFileSync(out.out.path, 'utf8'), out.out.contents);
});

test('a 200-way scatter is ONE sbatch array, one rootfs extraction on the node; a restart reuses every step', { timeout: 300_000 }, async () => {
  const rootfsDir = path.join(work, 'node-rootfs'); // fresh node-local rootfs dir: the extraction count is exact
  const wd = path.join(work, 'wd-scatter');
  const args = ['--debug', '--executor', 'slurm', '--slurm-workdir', wd, '--outdir', path.join(work, 'o-scatter'), 'wf.cwl', 'job.json'];
  const r = await cwlRun(args, { USERDOCK_ROOTFS_DIR: rootfsDir });
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const out = JSON.parse(r.stdout);
  assert.equal(out.outs.length, 200);
  const sum = (o: { total: { path: string } }): number => fs.readFileSync(o.total.path, 'utf8').trim().split('\n').reduce((a, b) => a + Number(b), 0);
  assert.equal(sum(out), 19900);
  const submits = [...r.stderr.matchAll(/\[slurm\] job (\d+): (\d+) tool job\(s\) \((\w+)\) in (\d+) array task/g)];
  // the scatter step: one array of 200; the gather step: one more job of 1
  assert.deepEqual(submits.map((s) => [s[3], Number(s[2])]), [['one', 200], ['sum', 1]], r.stderr.slice(-3000));
  assert.match(r.stderr, /packed 200 item\(s\) into --array=0-\d+(%\d+)?: \d+ per task/);
  const logs = fs.readdirSync(path.join(wd, 'batches')).flatMap((b) => fs.readdirSync(path.join(wd, 'batches', b)).filter((f) => f.startsWith('task-')).map((f) => fs.readFileSync(path.join(wd, 'batches', b, f), 'utf8')));
  const extractions = logs.join('').match(/debug: extracted \S+ into /g) ?? [];
  assert.equal(extractions.length, 1, `rootfs extractions on the node: ${extractions.length}`);
  // restart on the same work dir: every tool job comes from the job cache, nothing is submitted
  const again = await cwlRun(args, { USERDOCK_ROOTFS_DIR: rootfsDir });
  assert.equal(again.code, 0, again.stderr.slice(-3000));
  assert.equal(sum(JSON.parse(again.stdout)), 19900);
  assert.doesNotMatch(again.stderr, /\[slurm\] job \d+:/);
  assert.equal((again.stderr.match(/reusing cached output/g) ?? []).length, 201);
});

/** Every path under dir whose name contains `needle` (no symlink following). */
function findNamed(dir: string, needle: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let ents: fs.Dirent[];
    try { ents = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.name.includes(needle)) out.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

test('staging: the tmpdir is node-local (--slurm-node-tmp), inputs and outdir on the shared work dir; nothing of tmp left in either', { timeout: 300_000 }, async () => {
  const marker = `tmpmark-${process.pid}-${Date.now()}`;
  write('tmpdir.cwl', `cwlVersion: v1.2
class: CommandLineTool
requirements:
  ${DOCKER}
  InlineJavascriptRequirement: {}
baseCommand: [sh, -c]
arguments: ['echo "$TMPDIR $(runtime.tmpdir)" > out.txt; head -c 100000 /dev/zero > /tmp/${marker}; ls /tmp >> out.txt; sleep 4']
inputs: []
outputs:
  out: { type: File, outputBinding: { glob: out.txt, loadContents: true } }
`);
  write('tmpdir-nc.cwl', `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments: ['echo "$(runtime.tmpdir)" > out.txt; touch "$(runtime.tmpdir)/${marker}-nc"; readlink -f "$(runtime.tmpdir)" >> out.txt; sleep 4']
inputs: []
outputs:
  out: { type: File, outputBinding: { glob: out.txt, loadContents: true } }
`);
  const nodeTmp = path.join(work, 'node-tmp'); // stands in for node-local disk (single-node cluster)
  const wd = path.join(work, 'wd-staging');
  for (const [tool, name] of [['tmpdir.cwl', marker], ['tmpdir-nc.cwl', `${marker}-nc`]] as const) {
    const bg = cwlRunBg(['--executor', 'slurm', '--slurm-workdir', wd, '--slurm-node-tmp', nodeTmp, '--outdir', path.join(work, `o-${tool}`), tool]);
    let seenLocal: string[] = [];
    let seenShared: string[] = [];
    const poll = setInterval(() => {
      if (!seenLocal.length) seenLocal = findNamed(nodeTmp, name);
      seenShared = [...seenShared, ...findNamed(wd, name)];
    }, 150);
    const code = await bg.done;
    clearInterval(poll);
    assert.equal(code, 0, bg.stderr().slice(-3000));
    assert.ok(seenLocal.length, `${tool}: the tool's tmp file never appeared under --slurm-node-tmp ${nodeTmp}`);
    assert.match(seenLocal[0]!, new RegExp(`^${nodeTmp}/cwl-run-tmp-[^/]+/${name}$`));
    assert.deepEqual(seenShared, [], `${tool}: tmp contents on the shared work dir`);
    // afterwards: the node-local tmpdir is gone, the shared work dir has no tmp contents
    assert.deepEqual(fs.readdirSync(nodeTmp), [], 'node-local tmpdirs removed after the job');
    assert.deepEqual(findNamed(wd, name), []);
    const tmpLeft = fs.existsSync(path.join(wd, 'tmp')) ? fs.readdirSync(path.join(wd, 'tmp')).filter((d) => d.startsWith('cwlrun-tmp-')).flatMap((d) => fs.readdirSync(path.join(wd, 'tmp', d))) : [];
    assert.deepEqual(tmpLeft, []);
  }
  const c = fs.readFileSync(path.join(work, 'o-tmpdir.cwl', 'out.txt'), 'utf8');
  assert.match(c, new RegExp(`^/tmp /tmp\\n(.*\\n)*${marker}\\n`), 'the container sees its tmpdir at /tmp');
  const nc = fs.readFileSync(path.join(work, 'o-tmpdir-nc.cwl', 'out.txt'), 'utf8').split('\n');
  assert.ok(nc[0]!.startsWith(path.join(wd, 'tmp') + '/'), `process job: $(runtime.tmpdir) is the driver's path: ${nc[0]}`);
  assert.ok(nc[1]!.startsWith(nodeTmp + '/cwl-run-tmp-'), `process job: it resolves to node-local disk: ${nc[1]}`);
});

test('ToolTimeLimit is enforced on the node: a clear time-limit failure', { timeout: 300_000 }, async () => {
  const r = await cwlRun(['--executor', 'slurm', '--outdir', path.join(work, 'o-tl'), 'sleep.cwl', '--s', '60', '--limit', '2']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /time limit of 2s exceeded/);
  assert.match(r.stderr, /Final process status is permanentFail/);
});

test('scancel of a running job: the tool fails with a clear error', { timeout: 300_000 }, async () => {
  const bg = cwlRunBg(['--executor', 'slurm', '--outdir', path.join(work, 'o-cancel'), 'sleep.cwl', '--s', '300']);
  try {
    const id = await until('the job id', () => jobIdIn(bg.stderr()), 60_000);
    await waitJobState(`${id}_0`, ['RUNNING'], 60_000).catch(async () => waitJobState(id, ['RUNNING'], 5_000));
    const c = await runAsUser('scancel', [id], { timeoutMs: 30_000 });
    assert.equal(c.code, 0, c.stderr);
    assert.equal(await bg.done, 1);
    assert.match(bg.stderr(), new RegExp(`Slurm job ${id}_0 was cancelled \\(scancel or an administrator\\)`));
    assert.match(bg.stderr(), /Final process status is permanentFail/);
  } finally { bg.child.kill('SIGKILL'); }
});

test('SIGTERM on the driver scancels everything it submitted: nothing left in squeue', { timeout: 300_000 }, async () => {
  write('job-sleep.json', JSON.stringify({ xs: [1, 2, 3, 4, 5, 6] }));
  write('wf-sleep.cwl', `cwlVersion: v1.2
class: Workflow
requirements: { ScatterFeatureRequirement: {} }
inputs: { xs: 'int[]' }
outputs: []
steps:
  s:
    scatter: x
    in: {x: xs}
    out: []
    run:
      class: CommandLineTool
      requirements: { ${DOCKER} }
      baseCommand: [sleep, '300']
      inputs: {x: int}
      outputs: []
`);
  const bg = cwlRunBg(['--executor', 'slurm', '--parallel=1', '--outdir', path.join(work, 'o-term'), 'wf-sleep.cwl', 'job-sleep.json']);
  try {
    const id = await until('the job id', () => jobIdIn(bg.stderr()), 60_000);
    await until('the array in squeue', async () => (await squeueJobs(testUser().name)).some((j) => j.jobId.startsWith(`${id}_`) && j.state === 'RUNNING'), 60_000);
    bg.child.kill('SIGTERM');
    assert.equal(await bg.done, 143, bg.stderr());
    assert.match(bg.stderr(), /SIGTERM: cancelling Slurm jobs/);
    const left = await until('an empty queue', async () => {
      const j = (await squeueJobs(testUser().name)).filter((x) => x.jobId.split('_')[0] === id);
      return j.length === 0 ? [] : undefined;
    }, 30_000);
    assert.deepEqual(left, []);
  } finally { bg.child.kill('SIGKILL'); }
});
