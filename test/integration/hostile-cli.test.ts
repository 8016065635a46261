import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cwlRunBin, runAsUser, testUser, userdock, userdockBin, userEnv, userTempDir } from '../support/user.js';
import { freePort, pushImage, startRegistry, type Registry } from '../support/registry.js';
import { busyboxTree } from './run-tree.js';

/**
 * What a hostile or careless user gives the `userdock` CLI, as the test
 * user: arguments node itself would read, bad volumes, env and references,
 * missing images, kills. Each bad input is one line naming what and where,
 * the README's exit code, no stack trace, and nothing left in the store.
 */
let bbRoot: string;
let work: string;
let store: string;
let reg: Registry;

before(async () => {
  testUser();
  bbRoot = busyboxTree();
  work = userTempDir('ud-hostile');
  store = path.join(work, 'store');
  reg = await startRegistry();
  await pushImage(reg, 'busybox', 'library/busybox:latest');
}, { timeout: 300_000 });
after(async () => {
  await reg?.stop();
  fs.rmSync(bbRoot, { recursive: true, force: true });
  if (work) { spawnSync('chmod', ['-R', 'u+rwX', work]); fs.rmSync(work, { recursive: true, force: true }); }
});

/** A file or dir owned by the test user. */
function userFile(name: string, content?: string, mode = 0o644): string {
  const u = testUser();
  const p = path.join(work, name);
  if (content === undefined) fs.mkdirSync(p, { recursive: true }); else fs.writeFileSync(p, content);
  fs.chmodSync(p, content === undefined ? 0o755 : mode);
  fs.chownSync(p, u.uid, u.gid);
  return p;
}

const ud = (args: string[], opts: Parameters<typeof userdock>[1] = {}) => userdock([`--repo=${store}`, ...args], { timeoutMs: 60_000, ...opts });

/** Every path under the store except the engine facts (probes made by the first run). */
function storeSnapshot(): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const n of fs.readdirSync(d)) {
      const r = rel ? `${rel}/${n}` : n;
      if (r === 'hostfacts') continue;
      out.push(r);
      const st = fs.lstatSync(path.join(d, n));
      if (st.isDirectory()) walk(path.join(d, n), r);
    }
  };
  if (fs.existsSync(store)) walk(store, '');
  return out.sort();
}

test('--env-file anywhere in argv is ours, never node\'s: the bins start node with --', { timeout: 120_000 }, async () => {
  const marker = path.join(work, 'x-ran');
  const payload = userFile('x.js', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran on the host')\n`);
  const envFile = userFile('node-env', `NODE_OPTIONS=--require ${payload}\n`);
  // The payload is real: node given the file itself runs it (what `#!/usr/bin/env node` did with our argv).
  const control = await runAsUser(process.execPath, [`--env-file=${envFile}`, '-e', '0']);
  assert.equal(control.code, 0, control.stderr);
  assert.ok(fs.existsSync(marker), 'control: node --env-file=F runs the payload');
  fs.rmSync(marker);

  // userdock as a user starts it: the bin itself.
  const r = await runAsUser(userdockBin(), [`--repo=${store}`, 'run', `--env-file=${envFile}`, '--engine=P1', `--rootfs=${bbRoot}`, '/bin/sh', '-c', 'echo "$NODE_OPTIONS"']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `--require ${payload}\n`, 'the file is the container\'s --env-file');
  assert.ok(!fs.existsSync(marker), 'x.js did not run on the host');
  const sep = await runAsUser(userdockBin(), [`--repo=${store}`, 'run', '--engine=P1', '--env-file', envFile, `--rootfs=${bbRoot}`, '/bin/true']);
  assert.equal(sep.code, 0, sep.stderr);
  assert.ok(!fs.existsSync(marker));

  // A missing file: our own error and code, not node's exit 9.
  const missing = await runAsUser(userdockBin(), [`--repo=${store}`, 'run', '--env-file=/nonexistent/env', `--rootfs=${bbRoot}`, '/bin/true']);
  assert.equal(missing.code, 125, missing.stderr);
  assert.equal(missing.stderr, "userdock run: --env-file /nonexistent/env: cannot read it: no such file (ENOENT) (give a readable file of NAME=VALUE lines)\n");

  // cwl-run: a tool input named env-file.
  const tool = userFile('echo.cwl', [
    'cwlVersion: v1.2', 'class: CommandLineTool', 'baseCommand: echo',
    'inputs:', '  env-file:', '    type: string', '    inputBinding: {position: 1}',
    'outputs:', '  out: stdout', 'stdout: out.txt', '',
  ].join('\n'));
  const out = userFile('cwl-out');
  for (const value of [envFile, '/nonexistent/env']) {
    const c = await runAsUser(cwlRunBin(), ['--quiet', '--outdir', out, tool, `--env-file=${value}`], { cwd: work });
    assert.equal(c.code, 0, c.stderr);
    assert.equal(fs.readFileSync(path.join(out, 'out.txt'), 'utf8'), `${value}\n`, 'the input reached the tool');
    assert.ok(!fs.existsSync(marker), 'x.js did not run on the host (cwl-run)');
  }
});

test('-it is -i -t; under a terminal TERM is the caller\'s, else xterm', { timeout: 60_000 }, async () => {
  const inner = 'echo "T=$TERM"; [ -t 0 ] && echo STDIN-TTY; [ -t 1 ] && echo STDOUT-TTY';
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = [userdockBin(), `--repo=${store}`, 'run', '-it', '--engine=P1', `--rootfs=${bbRoot}`, '/bin/sh', '-c', inner].map(q).join(' ');
  // script(1) gives the command a pseudo-terminal.
  const plain = await runAsUser('script', ['-qec', cmd, '/dev/null']);
  assert.equal(plain.code, 0, plain.stdout + plain.stderr);
  assert.equal(plain.stdout.replace(/\r/g, ''), 'T=xterm\nSTDIN-TTY\nSTDOUT-TTY\n');
  const screen = await runAsUser('script', ['-qec', cmd, '/dev/null'], { env: { TERM: 'screen-256color' } });
  assert.equal(screen.stdout.replace(/\r/g, '').split('\n')[0], 'T=screen-256color', screen.stdout);
  // Without -t the container's environment has no TERM (the image's Env plus --env only).
  const noTty = await ud(['run', '-i', '--engine=P1', `--rootfs=${bbRoot}`, '/bin/sh', '-c', 'echo "T=${TERM-unset}"'], { env: { TERM: 'screen' } });
  assert.equal(noTty.stdout, 'T=unset\n', noTty.stderr);
});

test('bad input: one line naming it, the documented exit code, nothing left in the store', { timeout: 300_000 }, async () => {
  const host = userFile('host');
  fs.writeFileSync(path.join(host, 'f'), 'host file\n');
  const dangling = path.join(work, 'dangling');
  fs.symlinkSync(path.join(work, 'nowhere'), dangling);
  const unreadable = userFile('unreadable-env', 'A=1\n', 0o000);
  const closed = await freePort();
  // A first run makes the store (and the engine facts) so that every case below starts from it.
  const warm = await ud(['run', '--engine=P1', `--rootfs=${bbRoot}`, '/bin/true']);
  assert.equal(warm.code, 0, warm.stderr);
  assert.equal((await ud(['images'])).code, 0, 'the store\'s layout is made');
  const rf = [`--rootfs=${bbRoot}`, '/bin/true'];
  const cases: Array<{ args: string[]; code: number; err: RegExp }> = [
    { args: ['-v', `${host}:/data:RO`, ...rf], code: 2, err: /--volume ".*:\/data:RO": unknown volume option "RO"/ },
    { args: ['-v', `${host}:/data:rx`, ...rf], code: 2, err: /unknown volume option "rx"/ },
    { args: ['-v', `${host}:/data:ro,rw`, ...rf], code: 2, err: /options ro and rw conflict/ },
    { args: ['-v', `${host}:data`, ...rf], code: 2, err: /the container path "data" must be absolute/ },
    { args: ['-v', 'relative/dir:/data', ...rf], code: 2, err: /the host path must be absolute/ },
    { args: ['-v', `${host}:/`, ...rf], code: 2, err: /cannot bind over the container's \// },
    { args: ['-v', `${host}:/data/../..`, ...rf], code: 2, err: /cannot bind over the container's \// },
    { args: ['-v', `${work}/nonexistent:/data`, ...rf], code: 125, err: /host path .*\/nonexistent does not exist/ },
    { args: ['-v', `${work}/nonexistent/..:/data`, ...rf], code: 125, err: /host path .*\/nonexistent\/\.\. does not exist/ },
    { args: ['-v', `${dangling}:/data`, ...rf], code: 125, err: /host path .*\/dangling does not exist \(it is a symlink to .*\/nowhere, which does not exist\)/ },
    { args: ['--mount', `type=bind,source=rel,target=/data`, ...rf], code: 2, err: /--mount ".*": the host path "rel" must be absolute/ },
    { args: ['--mount', `type=bind,source=${host},target=data`, ...rf], code: 2, err: /the container path "data" must be absolute/ },
    { args: ['-e', '=x', ...rf], code: 2, err: /--env "=x": empty variable name/ },
    { args: ['-e', '', ...rf], code: 2, err: /--env "": empty variable name/ },
    { args: ['--env-file', unreadable, ...rf], code: 125, err: /--env-file .*unreadable-env: cannot read it: permission denied \(EACCES\)/ },
    { args: ['--env-file', host, ...rf], code: 125, err: /--env-file .*host: cannot read it: it is a directory \(EISDIR\)/ },
    { args: ['-itx', ...rf], code: 2, err: /run: unknown option -x/ },
    { args: ['bad ref!', 'true'], code: 2, err: /invalid image reference "bad ref!"/ },
    { args: ['x@sha256:zz', 'true'], code: 2, err: /invalid image reference "x@sha256:zz"/ },
    { args: [`${reg.host}/library/nosuch:1`, 'true'], code: 125, err: new RegExp(`${reg.host}/library/nosuch:1`) },
    { args: [`127.0.0.1:${closed}/library/busybox`, 'true'], code: 125, err: /cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/ },
    { args: ['--pull=never', 'busybox', 'true'], code: 125, err: /image "busybox" is not in the store/ },
  ];
  const before = storeSnapshot();
  for (const c of cases) {
    const r = await ud(['run', ...c.args]);
    const what = `run ${c.args.join(' ')}`;
    assert.equal(r.code, c.code, `${what}: exit ${r.code}: ${r.stderr}`);
    assert.equal(r.stdout, '', what);
    assert.match(r.stderr, /^userdock run: [^\n]+\n$/, `${what}: one line: ${r.stderr}`);
    assert.match(r.stderr, c.err, what);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
    assert.deepEqual(storeSnapshot(), before, `${what}: nothing was left in the store`);
  }
});

test('cwl-run: an unreadable or missing job file is one line, exit 1 (docs/cwl-run.md), no stack trace', { timeout: 60_000 }, async () => {
  const tool = path.join(work, 'echo.cwl'); // from the --env-file test
  const job = userFile('job.yml', 'env-file: x\n', 0o000);
  for (const [file, why] of [[job, 'permission denied \\(EACCES\\)'], [path.join(work, 'nojob.yml'), 'no such file \\(ENOENT\\)']]) {
    const r = await runAsUser(cwlRunBin(), ['--quiet', '--outdir', path.join(work, 'cwl-out'), tool, file], { cwd: work });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^cwl-run: cannot read job file ${file}: ${why}\n$`));
  }
});

test('volumes that are fine: symlinked and .. host paths bind what the kernel resolves; -e NAME passes the caller\'s NAME', { timeout: 60_000 }, async () => {
  const real = userFile('real');
  fs.writeFileSync(path.join(real, 'f'), 'real\n');
  const sub = userFile('real/sub');
  const link = path.join(work, 'link-to-sub');
  fs.symlinkSync(sub, link);
  // link-to-sub/.. is real/ for the kernel (lexically it would be the work dir)
  const r = await ud(['run', '--engine=P1', '-v', `${link}/..:/a:ro`, '-v', `${link}:/b`, '-e', 'PASSED', '-e', 'NOT_SET', `--rootfs=${bbRoot}`,
    '/bin/sh', '-c', 'cat /a/f; ls -d /b; echo "$PASSED ${NOT_SET-unset}"'], { env: { PASSED: 'from-caller' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'real\n/b\nfrom-caller unset\n');
});

test('create/clone of a tree with a directory made unreadable names that directory, not the disk', { timeout: 120_000 }, async () => {
  const env = { USERDOCK_MIRRORS: `docker.io=${reg.url}` };
  const c = await ud(['create', '--name=locked', 'busybox'], { env });
  assert.equal(c.code, 0, c.stderr);
  const r = await ud(['run', '--engine=P1', 'locked', '/bin/sh', '-c', 'mkdir -p /secret/d && chmod 000 /secret']);
  assert.equal(r.code, 0, r.stderr);
  const root = (await ud(['inspect', '-p', 'locked'])).stdout.trim();
  const snap = storeSnapshot();
  const clone = await ud(['clone', '--name=copy', 'locked']);
  assert.equal(clone.code, 1, clone.stderr);
  assert.equal(clone.stderr, `userdock clone: copying ${root} failed: permission denied on ${root}/secret (a run in it took the owner's read or search permission away (chmod); give it back with: chmod -R u+rX '${root}/secret')\n`);
  assert.deepEqual(storeSnapshot(), snap, 'the half-made copy was removed');
  // The fix the line names works.
  const fixed = await runAsUser('chmod', ['-R', 'u+rX', `${root}/secret`]);
  assert.equal(fixed.code, 0, fixed.stderr);
  const again = await ud(['clone', '--name=copy', 'locked']);
  assert.equal(again.code, 0, again.stderr);
  for (const n of ['copy', 'locked']) assert.equal((await ud(['rm', n])).code, 0);

  // create IMAGE copies the image's pristine tree once `run IMAGE` has made it: the same cause, named the same way.
  const run = await ud(['run', '--engine=P1', 'busybox', '/bin/true'], { env });
  assert.equal(run.code, 0, run.stderr);
  const hex = fs.readdirSync(path.join(store, 'rootfs')).filter((n) => !n.startsWith('.'));
  assert.equal(hex.length, 1);
  const tree = path.join(store, 'rootfs', hex[0], 'rootfs');
  const locked = path.join(tree, 'etc');
  const mode = fs.statSync(locked).mode & 0o7777;
  fs.chmodSync(locked, 0o000); // what a run could do to it before the pristine tree was protected
  try {
    const snap2 = storeSnapshot();
    const cr = await ud(['create', 'busybox'], { env });
    assert.equal(cr.code, 1, cr.stderr);
    assert.match(cr.stderr, /^userdock create: copying \S+ failed: permission denied on \S+\/etc \(.*'userdock verify \S*busybox\S*' removes the changed tree; then create again\)\n$/);
    assert.ok(cr.stderr.includes(`copying ${tree} failed: permission denied on ${locked} (`), cr.stderr);
    assert.doesNotMatch(cr.stderr, /free space|quota/);
    assert.deepEqual(storeSnapshot(), snap2, 'the half-made container was removed');
    // The fix the line names works: verify finds the changed tree (main's verify compares it with the blobs) and create succeeds.
    const v = await ud(['verify', 'busybox'], { env });
    assert.notEqual(v.code, 0, `verify reports the changed tree: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout + v.stderr, /\/etc: cannot be read \(EACCES\)/);
    assert.doesNotMatch(v.stderr, /scandir|\n\s+at /);
    const again = await ud(['create', '--name=after-verify', 'busybox'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await ud(['rm', 'after-verify'])).code, 0);
  } finally { if (fs.existsSync(locked)) fs.chmodSync(locked, mode); }
});

/** The pids of `pid`'s descendants (from /proc). */
function descendants(pid: number): number[] {
  const kids = new Map<number, number[]>();
  for (const n of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${n}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(n)]);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { for (const k of kids.get(p) ?? []) { out.push(k); walk(k); } };
  walk(pid);
  return out;
}

test('a run killed with SIGKILL leaves its scratch dir; the next run removes it', { timeout: 120_000 }, async () => {
  const u = testUser();
  const tmp = path.join(store, 'tmp');
  const scratch = () => fs.readdirSync(tmp).filter((n) => n.startsWith('run.'));
  assert.deepEqual(scratch(), [], 'no scratch dirs before');
  for (const engine of ['P1', 'U1']) {
    const child = spawn(process.execPath, [userdockBin(), `--repo=${store}`, 'run', `--engine=${engine}`, `--rootfs=${bbRoot}`, '/bin/sh', '-c', 'echo started; sleep 60'],
      { uid: u.uid, gid: u.gid, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', () => reject(new Error(`${engine}: run ended early: ${err}`)));
    });
    const left = scratch();
    assert.equal(left.length, 1, `${engine}: one scratch dir while it runs: ${left.join(', ')}`);
    const kids = descendants(child.pid!);
    const closed = new Promise((r) => child.once('close', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r));
    // Whatever the engine left running is the test's to end (not what this test is about).
    for (const k of kids) { try { process.kill(k, 'SIGKILL'); } catch { /* gone */ } }
    await closed;
    assert.deepEqual(scratch(), left, `${engine}: SIGKILL left the scratch dir`);
    const next = await ud(['run', `--engine=${engine}`, `--rootfs=${bbRoot}`, '/bin/true']);
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(scratch(), [], `${engine}: the next run removed the dead run's scratch dir (and its own)`);
  }
});

test('PRoot\'s own notes stay out of the container\'s stderr; the container\'s bytes pass through', { timeout: 60_000 }, async () => {
  for (const engine of ['P1', 'P2']) {
    const r = await ud(['run', `--engine=${engine}`, `--rootfs=${bbRoot}`, '/bin/sh', '-c', 'printf "out\\0\\n"; printf "err\\r\\n" >&2; kill -SEGV $$']);
    assert.equal(r.code, 139, r.stderr);
    assert.deepEqual(r.stdoutBuf, Buffer.from('out\0\n'));
    assert.equal(r.stderr, 'err\r\n', `${engine}: no "proot info: … terminated with signal" lines`);
  }
  // -D keeps them (diagnostics).
  const d = await ud(['-D', 'run', '--engine=P1', `--rootfs=${bbRoot}`, '/bin/sh', '-c', 'kill -SEGV $$']);
  assert.equal(d.code, 139, d.stderr);
  assert.match(d.stderr, /proot info: .*terminated with signal 11/);
});
