import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { userdock, userTempDir, runAsUser, cwlRunBin, userdockBin } from '../support/user.js';
import { fixtureCache } from '../support/images.js';
import { giveToUser, writeAsUser } from '../support/cwl-fixtures.js';

/**
 * No run may change an image (issue 17 §1). As the test user, on every
 * engine, a command tries to delete, create, rename, truncate, hard-link
 * and write files of the image's shared pristine tree through `run IMAGE`,
 * through cwl-run and through cwltool's drop-in; every attempt is refused
 * (EROFS where the engine mounts the tree read-only, EACCES where the kernel
 * holds the sealed tree's modes), and the tree's content hash (every path,
 * type, mode, size, content, link target) is the same after as before.
 */
const ENGINES = ['P1', 'P2', 'U1', 'R1', 'F1'];
// Read-only mounts: directory changes get EROFS; opening a file without write bits for writing is refused
// by the permission check first (EACCES), as in docker --read-only without CAP_DAC_OVERRIDE.
const ROFS = /Read-only file system/;
const ROFS_FILE = /Read-only file system|Permission denied/;
const FILE_WRITES = new Set(['truncate', 'append']);
const expected = (engine: string, what: string): RegExp =>
  engine === 'U1' || engine === 'R1' ? (FILE_WRITES.has(what) ? ROFS_FILE : ROFS) : EACCES;
const EACCES = /Permission denied/;

let work = '';
let env: Record<string, string> = {};

before(async () => {
  const cache = await fixtureCache({ timeoutMs: 1_500_000 });
  work = userTempDir('ud-integrity');
  env = { USERDOCK_DIR: path.join(work, 'store'), USERDOCK_MIRRORS: 'docker.io=http://127.0.0.1:9', TMPDIR: path.join(work, 'tmp') };
  fs.mkdirSync(env.TMPDIR); giveToUser(env.TMPDIR);
  const r = await userdock(['load', '-i', path.join(cache, 'deb2')], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
}, { timeout: 1_800_000 });

const ud = (args: string[], extra: Record<string, string> = {}) => userdock(args, { env: { ...env, ...extra }, timeoutMs: 180_000 });

/** The pristine tree of the one extracted image. */
function pristine(): string {
  const base = path.join(env.USERDOCK_DIR, 'rootfs');
  const hex = fs.readdirSync(base).filter((n) => !n.startsWith('.'));
  assert.equal(hex.length, 1, `one pristine tree: ${hex.join(', ')}`);
  return path.join(base, hex[0], 'rootfs');
}

/** sha256 over every entry of a tree: path, type, mode, size, content, link target. */
export function treeHash(root: string): string {
  const h = crypto.createHash('sha256');
  const walk = (rel: string) => {
    const p = path.join(root, rel);
    const st = fs.lstatSync(p);
    h.update(`${rel}\0${st.mode.toString(8)}\0${st.size}\0`);
    if (st.isSymbolicLink()) h.update(fs.readlinkSync(p));
    else if (st.isFile()) h.update(fs.readFileSync(p));
    else if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(rel, n));
    h.update('\n');
  };
  walk('.');
  return h.digest('hex');
}

// Each line: an attempt on the image and what it prints when refused.
const ATTEMPTS = [
  ['delete', 'rm /etc/debian_version'],
  ['create', 'echo x > /etc/new-file'],
  ['mkdir', 'mkdir /opt/new-dir'],
  ['rmdir', 'rmdir /srv'],
  ['rename', 'mv /etc/hostname /etc/hostname.old'],
  ['truncate', 'truncate -s 0 /etc/passwd'],
  ['append', 'echo x >> /etc/passwd'],
  ['hard-link', 'ln /etc/passwd /etc/passwd.link'],
  ['hard-link out', 'ln /etc/passwd /tmp/pw.$$ && echo x >> /tmp/pw.$$; r=$?; rm -f /tmp/pw.$$; exit $r'],
  ['symlink', 'ln -s /etc/passwd /etc/pw.sym'],
  ['pip-style write', 'python3 -c "open(\'/usr/lib/python3/dist-packages/evil.py\', \'w\').write(\'x\')"'],
];
const SCRIPT = ATTEMPTS.map(([what, cmd]) => `if (${cmd}) 2>/tmp/err; then echo "${what}: DONE"; else echo "${what}: REFUSED $(head -c 300 /tmp/err | tr '\\n' ' ')"; fi`).join('\n');

test('run IMAGE on every engine: every write to the image is refused and its tree is unchanged', { timeout: 900_000 }, async () => {
  const first = await ud(['run', 'deb2', 'true']);
  assert.equal(first.code, 0, first.stderr);
  const want = treeHash(pristine());
  for (const e of ENGINES) {
    const r = await ud(['-q', 'run', `--engine=${e}`, 'deb2', '/bin/sh', '-c', SCRIPT]);
    assert.equal(r.code, 0, `${e}: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, ATTEMPTS.length, `${e}: ${r.stdout}`);
    for (const [i, [what]] of ATTEMPTS.entries()) {
      assert.match(lines[i], new RegExp(`^${what}: REFUSED`), `${e}: ${what} was not refused: ${lines[i]}`);
      // The docker error: EROFS where the tree is mounted read-only; EACCES on the ptrace/preload engines.
      // (ln into /tmp works on every engine but the link's inode stays unwritable: EACCES everywhere.)
      const errRe = what === 'hard-link out' ? /Permission denied|Invalid cross-device link|Read-only file system/ : expected(e, what);
      if (what !== 'pip-style write') assert.match(lines[i], errRe, `${e}: ${what}: ${lines[i]}`);
    }
    assert.equal(treeHash(pristine()), want, `${e}: the pristine tree changed`);
  }
});

test('create makes a writable container from the sealed tree; rm and rmi remove everything', { timeout: 300_000 }, async () => {
  await ud(['run', 'deb2', 'true']);
  const tree = pristine();
  const want = treeHash(tree);
  const c = await ud(['create', '--name=w1', 'deb2']);
  assert.equal(c.code, 0, c.stderr);
  const id = c.stdout.trim();
  for (const e of ['P1', 'U1']) {
    const r = await ud(['run', `--engine=${e}`, 'w1', '/bin/sh', '-c', `rm /etc/debian_version.${e} 2>/dev/null; cp /etc/debian_version /etc/debian_version.${e} && echo ${e} >> /etc/debian_version.${e} && mkdir -p /opt/${e} && id -u`]);
    assert.equal(r.code, 0, `${e}: ${r.stderr}`);
    assert.equal(r.stdout, '0\n', `${e}: root emulation in a container`);
  }
  const root = path.join(env.USERDOCK_DIR, 'containers', id, 'ROOT');
  assert.match(fs.readFileSync(path.join(root, 'etc', 'debian_version.U1'), 'utf8'), /^12\.\d+\nU1\n$/);
  assert.ok((fs.statSync(path.join(root, 'etc')).mode & 0o200) !== 0, 'container dirs are writable again');
  assert.equal(treeHash(tree), want, 'the container writes did not reach the pristine tree');
  assert.equal((await ud(['rm', 'w1'])).code, 0);
  assert.ok(!fs.existsSync(path.dirname(root)));
  const rmi = await ud(['rmi', 'deb2']);
  assert.equal(rmi.code, 0, rmi.stderr);
  const left = fs.readdirSync(path.join(env.USERDOCK_DIR, 'rootfs')).filter((n) => !n.startsWith('.'));
  assert.deepEqual(left, [], 'rmi removed the sealed tree');
  assert.deepEqual(fs.readdirSync(path.join(env.USERDOCK_DIR, 'rootfs', '.tmp')), [], 'nothing left aside');
  const again = await userdock(['load', '-i', path.join(await fixtureCache(), 'deb2')], { env, timeoutMs: 120_000 });
  assert.equal(again.code, 0, again.stderr);
});

test('cwl-run and the cwltool drop-in cannot change the image either', { timeout: 600_000 }, async () => {
  await ud(['run', 'deb2', 'true']);
  const tree = pristine();
  const want = treeHash(tree);
  const dir = path.join(work, 'cwl');
  fs.mkdirSync(dir, { recursive: true }); giveToUser(dir);
  const tool = writeAsUser(dir, 'clean.cwl', `cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: { dockerPull: "deb2" }
  ShellCommandRequirement: {}
inputs: []
arguments:
  - valueFrom: "rm -rf /usr/share/doc /etc/debian_version 2>err.txt; echo x > /etc/new 2>>err.txt; echo done"
    shellQuote: false
stdout: out.txt
outputs:
  out: { type: File, outputBinding: { glob: out.txt } }
  err: { type: File, outputBinding: { glob: err.txt } }
`);
  for (const e of ['P1', 'U1']) {
    const out = path.join(dir, `out-${e}`);
    const r = await runAsUser(process.execPath, [cwlRunBin(), '--engine', e, '--outdir', out, tool], { env, timeoutMs: 300_000 });
    assert.equal(r.code, 0, `${e}: ${r.stderr}`);
    const err = fs.readFileSync(path.join(out, 'err.txt'), 'utf8');
    assert.match(err, e === 'U1' ? /Read-only file system/ : /Permission denied/, `${e}: ${err}`);
    assert.equal(treeHash(tree), want, `cwl-run on ${e} changed the pristine tree`);
  }
  // cwltool calls `userdock` from PATH.
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'userdock'), `#!/bin/sh\nexec ${process.execPath} ${userdockBin()} "$@"\n`, { mode: 0o755 });
  giveToUser(bin);
  const out = path.join(dir, 'out-cwltool');
  const r = await runAsUser('/usr/bin/cwltool', ['--user-space-docker-cmd=userdock', '--outdir', out, tool],
    { env: { ...env, PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, USERDOCK_PULL_TTL: '100000' }, timeoutMs: 300_000 });
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  assert.match(fs.readFileSync(path.join(out, 'err.txt'), 'utf8'), /Permission denied|Read-only file system/);
  assert.equal(treeHash(tree), want, 'cwltool + userdock changed the pristine tree');
});

test('chmod: refused on U1/R1; on P1/P2/F1 (the owner may always chmod) verify finds it, removes the tree, the next run has the image back', { timeout: 600_000 }, async () => {
  await ud(['run', 'deb2', 'true']);
  const want = treeHash(pristine());
  for (const e of ['U1', 'R1']) {
    const r = await ud(['run', `--engine=${e}`, 'deb2', '/bin/sh', '-c', 'chmod 777 /etc/issue']);
    assert.notEqual(r.code, 0, `${e}: chmod was not refused`);
    assert.match(r.stderr, /Read-only file system/, e);
    assert.equal(treeHash(pristine()), want, `${e}: the tree changed`);
  }
  const ok = await ud(['verify', 'deb2']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'deb2: OK (blobs and extracted tree)\n');
  for (const e of ['P1', 'P2', 'F1']) {
    const r = await ud(['-q', 'run', `--engine=${e}`, 'deb2', '/bin/sh', '-c', 'chmod u+w /etc/motd && echo changed >> /etc/motd']);
    assert.equal(r.code, 0, `${e}: ${r.stderr}`);
    const v = await ud(['verify', 'deb2']);
    assert.equal(v.code, 1, `${e}: verify did not see the change`);
    assert.match(v.stderr, /rootfs \/etc\/motd: mode 444 is now 644/);
    assert.match(v.stderr, /rootfs \/etc\/motd: content changed/);
    assert.match(v.stdout, /FAILED \(its extracted tree was changed in 2 places; removed: the next run extracts it again\)/);
    const again = await ud(['run', 'deb2', '/bin/sh', '-c', 'grep -c changed /etc/motd || true']);
    assert.equal(again.stdout, '0\n', `${e}: the next run still saw the change`);
    assert.equal(treeHash(pristine()), want, `${e}: the re-extracted tree differs from the original`);
  }
});

test('--writable-tmpfs: a private copy-on-write view for one run (U1: an overlay; P1, R1: a private copy), root emulated; the image and the store are unchanged', { timeout: 300_000 }, async () => {
  await ud(['run', 'deb2', 'true']);
  const want = treeHash(pristine());
  const scratch = () => fs.readdirSync(path.join(env.USERDOCK_DIR, 'tmp')).filter((n) => n.startsWith('run.'));
  for (const e of ['P1', 'U1', 'R1']) {
    const r = await ud(['run', '--writable-tmpfs', `--engine=${e}`, 'deb2', '/bin/sh', '-c',
      'rm /etc/debian_version && echo pkg > /usr/lib/mine.py && mkdir /opt/new && id -u && grep -c " / [^ ]* [^ ]* - overlay " /proc/self/mountinfo || true']);
    assert.equal(r.code, 0, `${e}: ${r.stderr}`);
    assert.equal(r.stdout, `0\n${e === 'U1' ? 1 : 0}\n`, `${e}: root emulated; the root is an overlay on U1 only`);
    assert.equal(treeHash(pristine()), want, `${e}: the pristine tree changed`);
    const ps = await ud(['ps', '--json']);
    assert.deepEqual(JSON.parse(ps.stdout), [], `${e}: no container made`);
    assert.deepEqual(scratch(), [], `${e}: the copy or overlay was left behind`);
  }
  const bad = await ud(['run', '--writable-tmpfs', '--read-only', 'deb2', 'true']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--writable-tmpfs and --read-only contradict/);
});
