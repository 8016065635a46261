import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { userdock, userdockBin, userEnv, userTempDir, testUser, REPO, type RunResult } from '../support/user.js';
import { busyboxTree } from './run-tree.js';

const WITHOUT_USERNS = path.join(REPO, 'test', 'support', 'without-userns.sh');

let bbRoot: string;
before(() => { testUser(); bbRoot = busyboxTree(); });
after(() => { fs.rmSync(bbRoot, { recursive: true, force: true }); });

test('engines --json: the ladder with facts, usable rungs probed', async () => {
  const store = userTempDir('udstore');
  const r = await userdock([`--repo=${store}`, 'engines', '--json'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.deepEqual(rep.rungs.map((x: { id: string }) => x.id), ['P1', 'P2', 'U1', 'R1', 'F1', 'S1']);
  assert.equal(rep.chosen, 'P1');
  for (const id of ['P1', 'P2', 'U1', 'R1', 'F1']) assert.equal(rep.rungs.find((x: { id: string }) => x.id === id).usable, true, id);
  assert.match(rep.rungs.find((x: { id: string }) => x.id === 'P1').cost, /70x/);
  const cached = fs.readdirSync(path.join(store, 'hostfacts')).filter((f) => f.endsWith('.json'));
  assert.equal(cached.length, 1);
  const text = await userdock([`--repo=${store}`, 'engines'], { timeoutMs: 60_000 });
  assert.match(text.stdout, /\* P1/);
  assert.match(text.stdout, /NOT usable: apptainer\/singularity not found/);
});

test('simulated no-ptrace host (USERDOCK_HOSTFACTS): the ladder falls to U1', async () => {
  const store = userTempDir('udstore');
  const env = { USERDOCK_HOSTFACTS: JSON.stringify({ ptraceAllowed: false, ptraceScope: 3 }) };
  const r = await userdock([`--repo=${store}`, '-D', 'run', `--rootfs=${bbRoot}`, '/bin/echo', 'ok'], { env, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'ok\n');
  assert.match(r.stderr, /engine U1/);
  const p = await userdock([`--repo=${store}`, 'run', '--engine=P1', `--rootfs=${bbRoot}`, '/bin/true'], { env, timeoutMs: 60_000 });
  assert.equal(p.code, 125);
  assert.match(p.stderr, /ptrace is not permitted/);
});

/**
 * Run `userdock ARGS` as the test user with user namespaces really disabled:
 * test/support/without-userns.sh (started as root: it enters a root-owned
 * user namespace, sets the per-namespace user.max_user_namespaces to 0 there,
 * then drops to the test user's uid/gid). The host's sysctl is untouched.
 */
function withoutUserns(cmd: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
  const u = testUser();
  const child = spawn('bash', [WITHOUT_USERNS, String(u.uid), String(u.gid), ...cmd],
    { env: userEnv(opts.env), cwd: u.home, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = []; const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBuf = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBuf.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBuf });
    });
  });
}

test('user namespaces disabled for real (per-namespace user.max_user_namespaces=0): U1 refused clearly, PRoot still runs', async (t) => {
  // The harness itself: inside, the test user sees the sysctl at 0 and cannot make a user namespace.
  const pre = await withoutUserns(['sh', '-c', 'id -u; cat /proc/sys/user/max_user_namespaces; unshare -U true && echo userns-ok || echo userns-refused']);
  if (pre.code !== 0 && /unshare failed|Operation not permitted/.test(pre.stderr) && !pre.stdout) {
    t.skip(`cannot build the no-userns harness here: ${pre.stderr.trim().split('\n').pop()}`);
    return;
  }
  assert.equal(pre.stdout, `${testUser().uid}\n0\nuserns-refused\n`, pre.stderr);

  // A store whose cached facts say U1 works (probed outside, on this host+kernel): the cache must not be believed inside.
  const store = userTempDir('udstore');
  const ok = await userdock([`--repo=${store}`, 'run', '--engine=U1', `--rootfs=${bbRoot}`, '/bin/echo', 'before'], { timeoutMs: 60_000 });
  assert.equal(ok.stdout, 'before\n', ok.stderr);
  const cachedFile = fs.readdirSync(path.join(store, 'hostfacts')).find((f) => f.endsWith('.json'))!;
  const cached = JSON.parse(fs.readFileSync(path.join(store, 'hostfacts', cachedFile), 'utf8'));
  assert.ok(cached.maxUserNamespaces > 0 && cached.probes.U1?.ok === true, JSON.stringify(cached));

  const ud = (...a: string[]) => [process.execPath, userdockBin(), `--repo=${store}`, ...a];
  // --engine=U1: refused before anything starts, naming the cause and the fix.
  const u = await withoutUserns(ud('run', '--engine=U1', `--rootfs=${bbRoot}`, '/bin/true'));
  assert.equal(u.code, 125, u.stderr);
  assert.match(u.stderr, /engine U1 .*cannot run on this host: user namespaces are disabled \(user\.max_user_namespaces = 0\)/);
  assert.match(u.stderr, /sysctl user\.max_user_namespaces=\d+|use P1/);
  // The default ladder still picks PRoot and runs.
  const p = await withoutUserns(ud('-D', 'run', `--rootfs=${bbRoot}`, '/bin/echo', 'proot'));
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.stdout, 'proot\n');
  assert.match(p.stderr, /debug: engine P1: /);
  // engines --json --refresh: the probed facts and the ladder agree.
  const e = await withoutUserns(ud('engines', '--json', '--refresh'));
  assert.equal(e.code, 0, e.stderr);
  const rep = JSON.parse(e.stdout);
  assert.equal(rep.facts.maxUserNamespaces, 0);
  assert.equal(rep.chosen, 'P1');
  assert.equal(rep.rungs.find((r: { id: string }) => r.id === 'P1').usable, true);
  for (const id of ['U1', 'R1']) {
    const r = rep.rungs.find((x: { id: string }) => x.id === id);
    assert.equal(r.usable, false, id);
    assert.match(r.why, /user namespaces are disabled \(user\.max_user_namespaces = 0\)/, id);
  }
  // Back on the host, the facts are re-probed (the sysctl moved): U1 works again.
  const again = await userdock([`--repo=${store}`, 'run', '--engine=U1', `--rootfs=${bbRoot}`, '/bin/echo', 'back'], { timeoutMs: 60_000 });
  assert.equal(again.stdout, 'back\n', again.stderr);
});

test('user namespaces disabled (simulated fact set): U1 refused with the sysctl named, PRoot chosen', async () => {
  const store = userTempDir('udstore');
  const env = { USERDOCK_HOSTFACTS: JSON.stringify({ maxUserNamespaces: 0 }) };
  const u = await userdock([`--repo=${store}`, 'run', '--engine=U1', `--rootfs=${bbRoot}`, '/bin/true'], { env, timeoutMs: 60_000 });
  assert.equal(u.code, 125);
  assert.match(u.stderr, /user\.max_user_namespaces = 0/);
  assert.match(u.stderr, /P1/);
  const e = JSON.parse((await userdock([`--repo=${store}`, 'engines', '--json'], { env, timeoutMs: 60_000 })).stdout);
  assert.equal(e.rungs.find((r: { id: string }) => r.id === 'U1').usable, false);
  assert.equal(e.rungs.find((r: { id: string }) => r.id === 'R1').usable, false);
});

test('setup --install-engines --url: static proot from a loopback server, verified, then used', async () => {
  const proot = fs.readFileSync('/usr/bin/proot');
  const arch = ({ x64: 'x86_64', arm64: 'aarch64' } as Record<string, string>)[process.arch] ?? process.arch;
  const sums = `${crypto.createHash('sha256').update(proot).digest('hex')}  proot-${arch}\n`;
  const server = http.createServer((req, res) => {
    if (req.url === `/engines/proot-${arch}`) { res.end(proot); return; }
    if (req.url === '/engines/SHA256SUMS') { res.end(sums); return; }
    res.statusCode = 404; res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/engines`;
    const store = userTempDir('udstore');
    const r = await userdock([`--repo=${store}`, 'setup', '--install-engines', `--url=${url}`], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(store, 'engines', 'bin', 'proot')));
    const e = JSON.parse((await userdock([`--repo=${store}`, 'engines', '--json'], { timeoutMs: 60_000 })).stdout);
    assert.equal(e.facts.binaries.proot, path.join(store, 'engines', 'bin', 'proot'));
    const run = await userdock([`--repo=${store}`, 'run', '--engine=P1', `--rootfs=${bbRoot}`, '/bin/echo', 'installed'], { timeoutMs: 60_000 });
    assert.equal(run.stdout, 'installed\n', run.stderr);
    const bad = await userdock([`--repo=${store}`, 'setup', '--install-engines', `--url=http://127.0.0.1:1/none`], { timeoutMs: 60_000 });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /cannot fetch/);
  } finally {
    server.close();
  }
});

test('engines --bench: a valid row per usable rung, as the test user', async () => {
  const store = userTempDir('udstore');
  const r = await userdock([`--repo=${store}`, 'engines', '--bench', '--json'], { timeoutMs: 600_000 });
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  const usable = rep.rungs.filter((x: { usable: boolean }) => x.usable).map((x: { id: string }) => x.id);
  assert.deepEqual(rep.bench.map((b: { id: string }) => b.id), ['native', ...usable]);
  for (const b of rep.bench) {
    assert.equal(b.error, undefined, `${b.id}: ${b.error}`);
    assert.ok(b.true_s > 0 && b.find_usr_s > 0, JSON.stringify(b));
  }
  // find checks its output: no rung can be faster than a tenth of native (a failing anchor would be).
  const native = rep.bench[0].find_usr_s;
  for (const b of rep.bench.slice(1)) assert.ok(b.find_usr_s > native / 10, `${b.id}: ${b.find_usr_s} s vs native ${native} s`);
  const text = await userdock([`--repo=${store}`, 'engines', '--bench'], { timeoutMs: 600_000 });
  for (const id of usable) assert.match(text.stdout, new RegExp(`^  ${id}\\s+\\d+\\.\\d{3}\\s+\\d+\\.\\d{3}$`, 'm'));
});
