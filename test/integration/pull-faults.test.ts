import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry, pushImage, type Registry } from '../support/registry.js';
import { startFaultProxy, type FaultPlan, type FaultProxy } from '../support/fault-proxy.js';
import { testUser, userdock, userdockBin, userEnv, userTempDir } from '../support/user.js';

/** Faults between userdock and a real loopback registry, kills, and concurrent pulls. */
let reg: Registry;
const proxies: FaultProxy[] = [];

before(async () => {
  reg = await startRegistry();
  await pushImage(reg, 'deb2', 'library/deb2:latest');
  await pushImage(reg, 'busybox', 'library/busybox:latest');
}, { timeout: 600_000 });

after(async () => { for (const p of proxies) await p.stop(); await reg?.stop(); });

async function proxy(plan: FaultPlan): Promise<FaultProxy> {
  const p = await startFaultProxy(reg.url, plan);
  proxies.push(p);
  return p;
}

function dirs() {
  const base = userTempDir('ud-fault');
  const store = path.join(base, 'store');
  return { store, env: { USERDOCK_DIR: store, USERDOCK_CONFIG_DIR: path.join(base, 'cfg') } };
}

function blobNames(store: string): string[] {
  const dir = path.join(store, 'blobs', 'sha256');
  const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  for (const n of names) {
    assert.equal(crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex'), n, `blob ${n} is corrupt`);
  }
  return names;
}

function leftovers(store: string): string[] {
  return [...fs.readdirSync(path.join(store, 'tmp')), ...fs.readdirSync(path.join(store, 'locks'))];
}

async function pullOk(name: string, env: Record<string, string>) {
  const r = await userdock(['pull', name], { env, timeoutMs: 180_000 });
  assert.equal(r.code, 0, `pull ${name} failed:\n${r.stderr}`);
  const v = await userdock(['verify', name], { env, timeoutMs: 60_000 });
  assert.equal(v.code, 0, v.stderr);
  return r;
}

test('a connection dropped mid-blob is resumed with a Range request', { timeout: 180_000 }, async () => {
  const p = await proxy({ dropBlobGets: 2 });
  const { env, store } = dirs();
  await pullOk(`${p.host}/library/deb2`, env);
  assert.equal(p.hits.dropped, 2);
  assert.ok(p.hits.rangeRequests >= 1, 'resumed with Range');
  const resumed = p.hits.log.filter((h) => h.range);
  assert.ok(resumed.every((h) => h.status === 206), JSON.stringify(resumed));
  assert.deepEqual(leftovers(store), []);
  blobNames(store);
});

test('a registry that ignores Range: the blob restarts from zero', { timeout: 180_000 }, async () => {
  const p = await proxy({ dropBlobGets: 1, ignoreRange: true });
  const { env, store } = dirs();
  await pullOk(`${p.host}/library/deb2`, env);
  assert.equal(p.hits.dropped, 1);
  assert.deepEqual(leftovers(store), []);
});

test('500s and 503s are retried with backoff', { timeout: 180_000 }, async () => {
  const p = await proxy({ errors: [
    { pattern: /\/manifests\//, status: 500, count: 2 },
    { pattern: /\/blobs\//, status: 503, count: 3, retryAfter: 0 },
  ] });
  const { env } = dirs();
  await pullOk(`${p.host}/library/busybox`, env);
  assert.equal(p.hits.errored, 5);
});

test('persistent 500s fail clearly', { timeout: 180_000 }, async () => {
  const p = await proxy({ errors: [{ pattern: /\/manifests\//, status: 500, count: 1000 }] });
  const { env, store } = dirs();
  const r = await userdock(['pull', `${p.host}/library/busybox`], { env: { ...env, USERDOCK_RETRIES: '2' }, timeoutMs: 120_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /HTTP 500/);
  assert.deepEqual(blobNames(store), []);
});

test('corrupted blobs are discarded: error, nothing stored', { timeout: 180_000 }, async () => {
  const p = await proxy({ corruptBlobGets: 1000 });
  const { env, store } = dirs();
  const r = await userdock(['pull', `${p.host}/library/deb2`], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /digest mismatch/);
  blobNames(store); // whatever is stored hashes to its name
  assert.deepEqual(fs.readdirSync(path.join(store, 'refs')), []);
  assert.deepEqual(leftovers(store), []);
  // One corrupted transfer is re-fetched and succeeds.
  const once = await proxy({ corruptBlobGets: 1 });
  await pullOk(`${once.host}/library/deb2`, env);
});

test('a pull killed with SIGKILL leaves the store consistent; the next pull completes', { timeout: 180_000 }, async () => {
  const { env, store } = dirs();
  const p = await proxy({ delayMs: 0 });
  const u = testUser();
  const child = spawn(process.execPath, [userdockBin(), 'pull', `${p.host}/library/deb2`], { uid: u.uid, gid: u.gid, env: userEnv(env), stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // Kill as soon as a partial blob has some bytes.
  const tmp = path.join(store, 'tmp');
  const deadline = Date.now() + 60_000;
  let killedMidway = false;
  while (Date.now() < deadline && child.exitCode === null) {
    const partial = fs.existsSync(tmp) ? fs.readdirSync(tmp).filter((f) => f.startsWith('partial-')) : [];
    if (partial.some((f) => { try { return fs.statSync(path.join(tmp, f)).size > 100_000; } catch { return false; } })) {
      child.kill('SIGKILL'); killedMidway = true; break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await exited;
  assert.ok(killedMidway, 'the pull was killed mid-download');
  blobNames(store); // only verified blobs are visible
  assert.deepEqual(fs.existsSync(path.join(store, 'refs')) ? fs.readdirSync(path.join(store, 'refs')) : [], []);
  const before = p.hits.rangeRequests;
  await pullOk(`${p.host}/library/deb2`, env);
  assert.ok(p.hits.rangeRequests > before, 'the partial blob was resumed');
  assert.deepEqual(leftovers(store), [], 'stale partial files and locks are gone');
});

test('3 concurrent pulls of one image into one store: all succeed, each blob fetched once', { timeout: 180_000 }, async () => {
  const p = await proxy({});
  const { env, store } = dirs();
  const name = `${p.host}/library/deb2`;
  const rs = await Promise.all([0, 1, 2].map(() => userdock(['pull', name], { env, timeoutMs: 180_000 })));
  for (const r of rs) assert.equal(r.code, 0, r.stderr);
  const gets = p.hits.log.filter((h) => h.method === 'GET' && /\/blobs\//.test(h.path)).map((h) => h.path);
  assert.equal(new Set(gets).size, gets.length, `a blob was fetched twice: ${gets.join(', ')}`);
  assert.equal(blobNames(store).length, 4, 'manifest, config, 2 layers');
  assert.deepEqual(leftovers(store), []);
  const v = await userdock(['verify', name], { env });
  assert.equal(v.code, 0, v.stderr);
});
