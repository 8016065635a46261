import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry, pushImage, type Registry } from '../support/registry.js';
import { testUser, userdock, userTempDir } from '../support/user.js';

/**
 * A store on a full filesystem (a 24 MB ext4 loop-mounted for the test user):
 * pull and create fail with one line naming ENOSPC, the place and the fix,
 * keep nothing half-written (no partial blob, no container), and work again
 * once there is room.
 */
let reg: Registry;
let mnt: string;
let img: string;
let mounted = false;

before(async () => {
  const u = testUser();
  mnt = userTempDir('ud-full');
  img = `${mnt}.img`;
  fs.writeFileSync(img, ''); fs.truncateSync(img, 24 << 20);
  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
  mounted = sh('mkfs.ext4', ['-q', '-F', '-m', '0', '-O', '^has_journal', img]) && sh('mount', ['-o', 'loop', img, mnt]);
  if (mounted) fs.chownSync(mnt, u.uid, u.gid);
  reg = await startRegistry();
  await pushImage(reg, 'deb2', 'library/deb2:latest');
  await pushImage(reg, 'busybox', 'library/bb:1');
});

after(async () => {
  if (mounted) spawnSync('umount', [mnt], { stdio: 'ignore' });
  fs.rmSync(img, { force: true });
  await reg?.stop();
});

const env = () => ({ USERDOCK_DIR: path.join(mnt, 'store'), USERDOCK_CONFIG_DIR: path.join(mnt, 'cfg') });

/** Every stored blob hashes to its name (nothing half-written became a blob). */
function blobsIntact(store: string): void {
  const dir = path.join(store, 'blobs', 'sha256');
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const got = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, name))).digest('hex');
    assert.equal(got, name, `blob ${name} is intact`);
  }
}

test('pull into a full store: ENOSPC named with the fix, no partial blob kept; a smaller image then pulls', { timeout: 300_000 }, async (t) => {
  if (!mounted) { t.skip('no loop mount here (needs root and a loop device)'); return; }
  const store = env().USERDOCK_DIR;
  const r = await userdock(['pull', `${reg.host}/library/deb2:latest`], { env: env(), timeoutMs: 120_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^userdock pull: no space left on the filesystem of .*\(ENOSPC\) \(free space there, or keep the store on a bigger filesystem: USERDOCK_DIR=DIR or --repo=DIR; nothing half-written was kept\)\n$/);
  assert.deepEqual(fs.readdirSync(path.join(store, 'tmp')).filter((f) => f.startsWith('partial-')), [], 'no partial download left to keep the disk full');
  blobsIntact(store);
  const again = await userdock(['pull', `${reg.host}/library/bb:1`], { env: env(), timeoutMs: 120_000 });
  assert.equal(again.code, 0, again.stderr);
  blobsIntact(store);
});

test('create, run IMAGE (exit 125) and save on a full filesystem: ENOSPC named with the fix, no container or archive left; after freeing space create works', { timeout: 300_000 }, async (t) => {
  if (!mounted) { t.skip('no loop mount here (needs root and a loop device)'); return; }
  const u = testUser();
  const name = `${reg.host}/library/bb:1`;
  assert.equal((await userdock(['pull', name], { env: env(), timeoutMs: 120_000 })).code, 0);
  // Leave ~200 KB: less than the busybox tree needs.
  const st = fs.statfsSync(mnt);
  const filler = path.join(mnt, 'filler');
  fs.writeFileSync(filler, Buffer.alloc(Math.max(0, st.bavail * st.bsize - 200 * 1024)));
  fs.chownSync(filler, u.uid, u.gid);
  const r = await userdock(['create', name], { env: env(), timeoutMs: 120_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^userdock create: no space left on the filesystem of .*\(ENOSPC\) \(free space there, .*USERDOCK_DIR=DIR/);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  const ps = await userdock(['ps'], { env: env() });
  assert.doesNotMatch(ps.stdout, /library\/bb/, 'no container listed');
  const tmp = path.join(env().USERDOCK_DIR, 'containers', '.tmp');
  assert.deepEqual(fs.existsSync(tmp) ? fs.readdirSync(tmp) : [], [], 'no half-made container');
  const run = await userdock(['run', name, '/bin/true'], { env: env(), timeoutMs: 120_000 });
  assert.equal(run.code, 125, run.stderr);
  assert.match(run.stderr, /^userdock run: no space left on the filesystem of .*\(ENOSPC\)/);
  const out = path.join(mnt, 'bb.tar');
  const saved = await userdock(['save', '-o', out, name], { env: env(), timeoutMs: 120_000 });
  assert.equal(saved.code, 1, saved.stderr);
  // save stages the layers in the store first: the store's filesystem is named
  assert.match(saved.stderr, /^userdock save: no space left on the filesystem of .*\/store \(ENOSPC\) \(free space there, .*nothing half-written was kept\)\n$/);
  assert.deepEqual(fs.readdirSync(mnt).filter((f) => f.includes('bb.tar')), [], 'no archive, no partial one');
  assert.deepEqual(fs.readdirSync(path.join(env().USERDOCK_DIR, 'tmp')).filter((f) => f.startsWith('save')), [], 'no staging left');
  fs.rmSync(filler);
  const ok = await userdock(['create', name], { env: env(), timeoutMs: 120_000 });
  assert.equal(ok.code, 0, ok.stderr);
});
