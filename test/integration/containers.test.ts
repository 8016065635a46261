import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { userdock, userTempDir, testUser, userEnv, userdockBin } from '../support/user.js';
import { fixtureCache } from '../support/images.js';

let cache = '';
let store = '';
let env: Record<string, string> = {};

before(async () => {
  cache = await fixtureCache({ timeoutMs: 1_500_000 });
  store = path.join(userTempDir('ud-ctr'), 'store');
  env = { USERDOCK_DIR: store, USERDOCK_ROOTFS_DIR: path.join(path.dirname(store), 'rootfs') };
  for (const img of ['busybox', 'deb2']) {
    const r = await userdock(['load', '-i', path.join(cache, img)], { env, timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
  }
}, { timeout: 1_800_000 });

async function ok(args: string[]): Promise<string> {
  const r = await userdock(args, { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, `userdock ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

test('create, ps, name/rename/rmname, clone, protect/unprotect, rm', { timeout: 300_000 }, async () => {
  const id = await ok(['create', '--name=bb', 'busybox']);
  assert.match(id, /^[0-9a-f-]{36}$/);
  const ps = await ok(['ps']);
  assert.match(ps, new RegExp(`${id} . W 'bb'\\s+docker.io/library/busybox:latest`));
  const js = JSON.parse(await ok(['ps', '--json', '-s'])) as Array<{ id: string; names: string[]; size: number; rootfs: string }>;
  const me = js.find((c) => c.id === id)!;
  assert.deepEqual(me.names, ['bb']);
  assert.ok(me.size > 100_000);
  assert.ok(fs.statSync(path.join(me.rootfs, 'bin', 'busybox')).isFile());
  assert.equal(fs.statSync(me.rootfs).uid, testUser().uid);

  await ok(['name', 'bb', 'second']);
  await ok(['rename', 'second', 'third']);
  assert.match(await ok(['ps']), /'bb','third'/);
  await ok(['rmname', 'third']);
  const dup = await userdock(['create', '--name=bb', 'busybox'], { env });
  assert.equal(dup.code, 1); assert.match(dup.stderr, /container name "bb" is already used/);
  const bad = await userdock(['name', 'bb', '../x'], { env });
  assert.equal(bad.code, 2); assert.match(bad.stderr, /invalid container name/);

  const cl = await ok(['clone', '--name=copy', 'bb']);
  assert.notEqual(cl, id);
  await ok(['protect', 'copy']);
  const refused = await userdock(['rm', 'copy'], { env });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /is protected \(run 'userdock unprotect copy' first\)/);
  assert.match(await ok(['ps']), new RegExp(`${cl} P W 'copy'`));
  await ok(['unprotect', 'copy']);
  await ok(['rm', 'copy', id]);
  assert.doesNotMatch(await ok(['ps']), /bb|copy/);
  assert.ok(!fs.existsSync(me.rootfs));
  const missing = await userdock(['rm', 'nosuch'], { env });
  assert.equal(missing.code, 1); assert.match(missing.stderr, /no container with id or name "nosuch"/);
});

test('concurrent creates are safe; once run IMAGE made the pristine tree, creates copy it and never re-extract', { timeout: 300_000 }, async () => {
  const rootfsDir = env.USERDOCK_ROOTFS_DIR;
  const trees = () => (fs.existsSync(rootfsDir) ? fs.readdirSync(rootfsDir) : []).filter((n) => /^[0-9a-f]{64}$/.test(n));
  const before = trees();
  const ids = await Promise.all([1, 2, 3].map(() => ok(['create', 'deb2'])));
  assert.equal(new Set(ids).size, 3);
  for (const id of ids) assert.ok(fs.existsSync(path.join(await ok(['inspect', '-p', id]), 'etc', 'debian_version')), `${id} has the image's files`);
  assert.deepEqual(trees(), before, 'a create extracts into its container: no pristine tree');
  await ok(['run', 'deb2', '/bin/true']);
  const made = trees().filter((t) => !before.includes(t));
  assert.equal(made.length, 1, 'run IMAGE made the pristine tree');
  const pristine = path.join(rootfsDir, made[0], 'rootfs');
  const ino = fs.statSync(pristine).ino;
  const r = await userdock(['-D', 'create', 'deb2'], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /copying the pristine tree/);
  assert.equal(fs.statSync(pristine).ino, ino, 'the pristine tree was reused');
  assert.ok(fs.existsSync(path.join(await ok(['inspect', '-p', r.stdout.trim()]), 'etc', 'debian_version')));
  for (const id of [...ids, r.stdout.trim()]) await ok(['rm', id]);
});

test('a create killed mid-extract leaves nothing usable; the next create succeeds', { timeout: 300_000 }, async () => {
  const u = testUser();
  const dir = path.join(path.dirname(store), 'kill');
  fs.mkdirSync(dir); fs.chownSync(dir, u.uid, u.gid);
  const kenv = { ...env, USERDOCK_ROOTFS_DIR: path.join(dir, 'rootfs') };
  const child = spawn(process.execPath, [userdockBin(), 'create', '--name=killed', 'deb2'], { uid: u.uid, gid: u.gid, env: userEnv(kenv), stdio: 'ignore' });
  const tmpDir = path.join(store, 'containers', '.tmp');
  const deadline = Date.now() + 60_000;
  let killedMid = false;
  while (Date.now() < deadline && child.exitCode === null) {
    let n: string[] = [];
    try { n = fs.readdirSync(tmpDir); } catch { /* not yet */ }
    if (n.length) { child.kill('SIGKILL'); killedMid = true; break; }
    await sleep(5);
  }
  await new Promise((r) => child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r));
  if (killedMid) {
    assert.ok(fs.readdirSync(path.join(store, 'containers')).every((n) => n.startsWith('.') || fs.existsSync(path.join(store, 'containers', n, 'container.json'))),
      'no container without its metadata at a final path');
  }
  const r = await userdock(['ps'], { env: kenv });
  assert.doesNotMatch(r.stdout, /killed/);
  const id = (await userdock(['create', '--name=killed', 'deb2'], { env: kenv, timeoutMs: 120_000 }));
  assert.equal(id.code, 0, id.stderr);
  assert.match((await userdock(['ps'], { env: kenv })).stdout, /'killed'/);
  assert.deepEqual(fs.readdirSync(tmpDir), [], 'the stale temp tree was cleaned');
  await ok(['rm', 'killed']);
});
