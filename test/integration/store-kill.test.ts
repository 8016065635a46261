import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry, pushImage, type Registry } from '../support/registry.js';
import { testUser, userdock, userdockBin, userEnv, userTempDir } from '../support/user.js';

/**
 * `pull` and `create` killed with SIGKILL at random points (10 trials each,
 * a loopback registry), then `verify` and the next command succeed; 8
 * concurrent pull+create of one image into one store all succeed, and
 * each blob is stored once. Kill points are uniform over the time an
 * unkilled command takes; the seed is printed (USERDOCK_KILL_SEED repeats a run).
 */
let reg: Registry;
let deb2: string;
let busybox: string;
const seed = Number(process.env.USERDOCK_KILL_SEED ?? Date.now() % 100_000);

before(async () => {
  testUser();
  reg = await startRegistry();
  deb2 = await pushImage(reg, 'deb2', 'library/deb2:latest');
  busybox = await pushImage(reg, 'busybox', 'library/busybox:latest');
}, { timeout: 300_000 });
after(async () => { await reg?.stop(); });

/** mulberry32: small, seeded, good enough to spread kill points. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ud = (store: string, args: string[]) => userdock([`--repo=${store}`, '-q', ...args], { timeoutMs: 120_000 });

async function ok(store: string, args: string[]): Promise<string> {
  const r = await ud(store, args);
  assert.equal(r.code, 0, `userdock ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Start `userdock ARGS` as the test user and SIGKILL it after `ms`; resolves when it is gone. */
async function killAfter(store: string, args: string[], ms: number): Promise<{ finished: boolean }> {
  const u = testUser();
  const child = spawn(process.execPath, ['--', userdockBin(), `--repo=${store}`, '-q', ...args], { uid: u.uid, gid: u.gid, env: userEnv(), stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise((r) => setTimeout(r, ms));
  const finished = child.exitCode !== null;
  if (!finished) child.kill('SIGKILL');
  await exited;
  return { finished };
}

/** Every blob hashes to its name; returns the names. */
function blobs(store: string): string[] {
  const dir = path.join(store, 'blobs', 'sha256');
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
  for (const n of names) assert.equal(crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex'), n, `blob ${n} is corrupt`);
  return names;
}

const hasRef = (store: string) => fs.existsSync(path.join(store, 'refs')) && fs.readdirSync(path.join(store, 'refs'), { recursive: true }).some((n) => String(n).endsWith('.json'));

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = Date.now(); await fn(); return Date.now() - t0;
}

test('pull killed at 10 random points: the store stays consistent, verify and the next pull succeed', { timeout: 120_000 }, async (t) => {
  const rand = prng(seed);
  const base = path.join(userTempDir('ud-killpull'), 'store');
  const full = await timed(() => ok(base, ['pull', deb2]));
  const want = blobs(base);
  t.diagnostic(`seed ${seed}; an unkilled pull of deb2 takes ${full} ms; blobs ${want.length}`);
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) {
    const store = path.join(userTempDir('ud-killpull'), 'store');
    const ms = Math.round(rand() * full);
    delays.push(ms);
    const { finished } = await killAfter(store, ['pull', deb2], ms);
    blobs(store); // what is stored is whole
    if (hasRef(store)) await ok(store, ['verify', deb2]); // a named image is a complete one
    await ok(store, ['pull', deb2]);
    await ok(store, ['verify', deb2]);
    assert.deepEqual(blobs(store), want, `trial ${i} (killed after ${ms} ms${finished ? ', had finished' : ''}): the same blobs as an unkilled pull`);
    assert.deepEqual(fs.readdirSync(path.join(store, 'tmp')), [], `trial ${i}: no partial downloads left after the next pull`);
    fs.rmSync(path.dirname(store), { recursive: true, force: true });
  }
  t.diagnostic(`kill points (ms): ${delays.join(' ')}`);
});

test('create killed at 10 random points: the image verifies, no half container is listed, the next create succeeds', { timeout: 120_000 }, async (t) => {
  const rand = prng(seed + 1);
  const store = path.join(userTempDir('ud-killcreate'), 'store');
  await ok(store, ['pull', busybox]);
  const full = await timed(async () => ok(store, ['rm', (await ok(store, ['create', busybox])).trim()]));
  t.diagnostic(`seed ${seed + 1}; an unkilled create+rm of busybox takes ${full} ms`);
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) {
    const ms = Math.round(rand() * full);
    delays.push(ms);
    const name = `k${i}`;
    const { finished } = await killAfter(store, ['create', `--name=${name}`, busybox], ms);
    await ok(store, ['verify', busybox]);
    const ps = await ok(store, ['ps']);
    if (ps.includes(`'${name}'`)) {
      // Killed after the commit: the container is whole.
      await ok(store, ['run', '--engine=P1', name, '/bin/true']);
    } else {
      await ok(store, ['create', `--name=${name}`, busybox]);
      assert.deepEqual(fs.readdirSync(path.join(store, 'containers', '.tmp')), [], `trial ${i} (killed after ${ms} ms${finished ? ', had finished' : ''}): the stale temp tree was removed`);
    }
    const c = path.join(store, 'containers');
    for (const n of fs.readdirSync(c).filter((x) => !x.startsWith('.'))) {
      assert.ok(fs.existsSync(path.join(c, n, 'container.json')) && fs.existsSync(path.join(c, n, 'ROOT', 'bin', 'busybox')), `trial ${i}: container ${n} is whole`);
    }
    await ok(store, ['rm', name]);
  }
  t.diagnostic(`kill points (ms): ${delays.join(' ')}`);
  blobs(store);
});

test('8 concurrent pull+create of one image into one store: all succeed, each blob stored once', { timeout: 120_000 }, async () => {
  const ref = path.join(userTempDir('ud-conc'), 'store');
  await ok(ref, ['pull', deb2]);
  const want = blobs(ref);
  const store = path.join(userTempDir('ud-conc'), 'store');
  const rs = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const p = await ud(store, ['pull', deb2]);
    const c = await ud(store, ['create', `--name=c${i}`, deb2]);
    return { p, c };
  }));
  for (const [i, { p, c }] of rs.entries()) {
    assert.equal(p.code, 0, `pull ${i}: ${p.stderr}`);
    assert.equal(c.code, 0, `create ${i}: ${c.stderr}`);
  }
  assert.deepEqual(blobs(store), want, 'blobs/sha256 holds each blob once, the same set as one pull');
  assert.deepEqual(fs.readdirSync(path.join(store, 'tmp')), [], 'no temp files left');
  assert.deepEqual(fs.readdirSync(path.join(store, 'locks')).filter((n) => !n.startsWith('.')), [], 'no locks left');
  const ids = new Set(rs.map(({ c }) => c.stdout.trim()));
  assert.equal(ids.size, 8);
  for (const id of ids) assert.ok(fs.existsSync(path.join(store, 'containers', id, 'ROOT', 'etc', 'debian_version')), `container ${id} is whole`);
  await ok(store, ['verify', deb2]);
});
