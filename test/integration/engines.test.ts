import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { userdock, userTempDir, testUser } from '../support/user.js';
import { busyboxTree } from './run-tree.js';

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

test('user namespaces disabled for real (sysctl user.max_user_namespaces=0): U1 refused clearly, PRoot still runs', async (t) => {
  const store = userTempDir('udstore');
  const old = fs.readFileSync('/proc/sys/user/max_user_namespaces', 'utf8').trim();
  try {
    execFileSync('sysctl', ['-q', 'user.max_user_namespaces=0'], { stdio: 'pipe' });
  } catch (e) {
    t.skip(`cannot change the sysctl here: ${(e as Error).message.split('\n')[1] ?? ''}`);
    return;
  }
  try {
    const u = await userdock([`--repo=${store}`, 'run', '--engine=U1', `--rootfs=${bbRoot}`, '/bin/true'], { timeoutMs: 60_000 });
    assert.equal(u.code, 125);
    assert.match(u.stderr, /user namespaces are disabled \(user\.max_user_namespaces = 0\)/);
    const env = { USERDOCK_HOSTFACTS: JSON.stringify({ ptraceAllowed: false }) };
    const none = await userdock([`--repo=${store}`, 'run', `--rootfs=${bbRoot}`, '/bin/true'], { env, timeoutMs: 60_000 });
    assert.equal(none.code, 125);
    assert.match(none.stderr, /no engine can run containers on this host/);
    const p = await userdock([`--repo=${store}`, 'run', `--rootfs=${bbRoot}`, '/bin/echo', 'proot'], { timeoutMs: 60_000 });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout, 'proot\n');
  } finally {
    execFileSync('sysctl', ['-q', `user.max_user_namespaces=${old}`]);
  }
  // facts are re-probed once the sysctl changes back
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
