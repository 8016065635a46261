import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runAsUser, cwlRunBin, userdock, type RunResult } from '../support/user.js';
import { fixtureCache } from '../support/images.js';
import { giveToUser, offlineWorkspace, saveBusybox, writeAsUser } from '../support/cwl-fixtures.js';
import { planMounts } from '../../src/isolation/plan.js';

/**
 * cwl-run's DockerRequirement through userdock's own code, as the test user,
 * with no registry reachable (USERDOCK_MIRRORS points at a closed port):
 * dockerLoad (docker save tarball), dockerImport (docker export tarball),
 * dockerImageId from the store, dockerPull satisfied by the store,
 * --disable-pull, dockerFile (33), Operation (33), and images without
 * /var/spool (the outdir bind must not be covered by a tmpfs).
 */
let cache = '';
let work = '';
let env: Record<string, string> = {};

const write = (name: string, text: string): string => writeAsUser(work, name, text);

function cwlRun(args: string[], cwd = work): Promise<RunResult> {
  return runAsUser(process.execPath, [cwlRunBin(), ...args], { cwd, env, timeoutMs: 180_000 });
}

/** A tool printing /etc/os-release-ish facts of its image into an output file (written in the outdir, the workdir). */
function tool(name: string, docker: string): string {
  return write(name, `cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: { ${docker} }
baseCommand: [sh, -c]
arguments: ['echo "home=$HOME tmp=$TMPDIR pwd=$PWD" > out.txt; ls /linuxrc >> out.txt']
inputs: []
outputs:
  out: { type: File, outputBinding: { glob: out.txt, loadContents: true } }
`);
}

function expectRan(r: RunResult): void {
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.out.contents, 'home=/var/spool/cwl tmp=/tmp pwd=/var/spool/cwl\n/linuxrc\n');
}

before(async () => {
  cache = await fixtureCache({ timeoutMs: 1_500_000 });
  // no registry reachable: any registry contact fails the test
  ({ work, env } = offlineWorkspace('cwl-docker'));
  // a `docker save` tarball and a `docker export` tarball (the busybox layer is a flat rootfs tar.gz)
  saveBusybox(cache, path.join(work, 'images', 'bb-save.tar'), 'cwltest/bb:1');
  const layout = path.join(cache, 'busybox');
  const idx = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const man = JSON.parse(fs.readFileSync(path.join(layout, 'blobs', 'sha256', idx.manifests[0].digest.slice(7)), 'utf8'));
  fs.copyFileSync(path.join(layout, 'blobs', 'sha256', man.layers[0].digest.slice(7)), path.join(work, 'images', 'bb-rootfs.tar.gz'));
  giveToUser(work);
}, { timeout: 1_800_000 });

after(() => { if (work && !process.env.USERDOCK_KEEP_TMP) fs.rmSync(work, { recursive: true, force: true }); });

test('dockerLoad: a docker save tarball (path relative to the tool) loads, is named dockerImageId and is reused', { timeout: 300_000 }, async () => {
  const t = tool('load.cwl', 'dockerLoad: images/bb-save.tar, dockerImageId: "cwltest/loaded:1"');
  let r = await cwlRun(['--outdir', path.join(work, 'o-load'), t], '/');
  expectRan(r);
  assert.match(r.stderr, /loading .*bb-save\.tar/);
  const imgs = await userdock(['images'], { env });
  assert.match(imgs.stdout, /cwltest\/loaded\s+1/, imgs.stdout);
  assert.match(imgs.stdout, /cwltest\/bb\s+1/, imgs.stdout);
  // second run: found in the store, nothing loaded, and pulling disabled does not matter
  r = await cwlRun(['--disable-pull', '--outdir', path.join(work, 'o-load2'), t]);
  expectRan(r);
  assert.doesNotMatch(r.stderr, /loading/);
  // without dockerImageId the archive's own name is used
  r = await cwlRun(['--outdir', path.join(work, 'o-load3'), tool('load-noname.cwl', `dockerLoad: "file://${path.join(work, 'images', 'bb-save.tar')}"`)]);
  expectRan(r);
  // a missing archive is a clear error
  r = await cwlRun([tool('load-missing.cwl', 'dockerLoad: images/nope.tar, dockerImageId: "cwltest/nope:1"')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot read image archive .*nope\.tar: ENOENT/);
});

test('dockerImport: a docker export tarball becomes image dockerImageId', { timeout: 300_000 }, async () => {
  const t = tool('import.cwl', 'dockerImport: images/bb-rootfs.tar.gz, dockerImageId: "cwltest/imported:2"');
  let r = await cwlRun(['--outdir', path.join(work, 'o-imp'), t]);
  expectRan(r);
  assert.match(r.stderr, /importing .*bb-rootfs\.tar\.gz as cwltest\/imported:2/);
  r = await cwlRun(['--outdir', path.join(work, 'o-imp2'), t]);
  expectRan(r);
  assert.doesNotMatch(r.stderr, /importing/);
  // dockerImageId alone: from the store, no registry
  r = await cwlRun(['--disable-pull', '--outdir', path.join(work, 'o-id'), tool('id.cwl', 'dockerImageId: "cwltest/imported:2"')]);
  expectRan(r);
  r = await cwlRun(['--disable-pull', tool('id-missing.cwl', 'dockerImageId: "cwltest/absent:1"')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cwltest\/absent:1 is not in the store and pulling is disabled/);
});

test('dockerPull: an image in the store is used offline; --disable-pull refuses to pull; dockerFile is 33', { timeout: 300_000 }, async () => {
  const load = await userdock(['load', '-i', path.join(work, 'images', 'bb-save.tar')], { env });
  assert.equal(load.code, 0, load.stderr);
  const tag = await userdock(['tag', 'cwltest/bb:1', 'library/busybox:offline'], { env });
  assert.equal(tag.code, 0, tag.stderr);
  let r = await cwlRun(['--outdir', path.join(work, 'o-pull'), tool('pull.cwl', 'dockerPull: "busybox:offline"')]);
  expectRan(r);
  assert.doesNotMatch(r.stderr, /pulling/);
  // missing: pulled through USERDOCK_MIRRORS (here a closed port, so it fails) unless pulling is disabled
  r = await cwlRun(['--disable-pull', tool('pull-missing.cwl', 'dockerPull: "busybox:nothere"')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /busybox:nothere is not in the store and pulling is disabled/);
  r = await cwlRun([tool('pull-missing.cwl', 'dockerPull: "busybox:nothere"')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /pulling busybox:nothere/);
  // dockerFile: refused with exit 33, unless the named image is already there
  r = await cwlRun([tool('file.cwl', 'dockerFile: "FROM busybox", dockerImageId: "cwltest/built:1"')]);
  assert.equal(r.code, 33, r.stderr);
  assert.match(r.stderr, /building images is not supported; build elsewhere and push, or use dockerPull\/dockerLoad/);
  r = await cwlRun(['--outdir', path.join(work, 'o-file'), tool('file2.cwl', 'dockerFile: "FROM busybox", dockerImageId: "cwltest/loaded:1"')]);
  expectRan(r);
});

test('Operation: valid, not executable (33)', { timeout: 120_000 }, async () => {
  const op = write('op.cwl', 'cwlVersion: v1.2\nclass: Operation\ninputs:\n  x: string\noutputs:\n  y: File\n');
  let r = await cwlRun(['--validate', op]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /is valid CWL/);
  r = await cwlRun(['--no-container', op, '--x', 'a']);
  assert.equal(r.code, 33, r.stderr);
  assert.match(r.stderr, /Operation is abstract/);
});

test('mount plan: a workdir that is a bind target under a directory missing from the image is not covered by a tmpfs', () => {
  const root = fs.mkdtempSync(path.join(work, 'plan-'));
  const rootfs = path.join(root, 'rootfs');
  for (const d of ['bin', 'var', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  const out = path.join(root, 'out'); fs.mkdirSync(out);
  const scratch = path.join(root, 'scratch'); fs.mkdirSync(scratch);
  const plan = planMounts({
    version: 1, rootfs, rootfsWritable: false, ops: [{ type: 'bind', source: out, target: '/var/spool/cwl', readonly: false }],
    sysdirs: { proc: false, dev: false, sys: false }, workdir: '/var/spool/cwl', env: {}, argv: ['true'],
    user: { uid: 1000, gid: 1000, rootEmulation: false }, network: 'none',
  }, scratch);
  assert.deepEqual(plan.mounts.filter((m) => m.target === '/var/spool/cwl').map((m) => m.kind), ['bind']);
  assert.ok(fs.statSync(path.join(plan.root, 'var', 'spool', 'cwl')).isDirectory());
});
