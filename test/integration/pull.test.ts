import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry, pushImage, type Registry } from '../support/registry.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { userdock, userTempDir } from '../support/user.js';

/**
 * Pulls from a real loopback docker-registry, as the unprivileged test user:
 * OCI and schema2 manifests, zstd layers, multi-platform indexes, mirrors,
 * the one-request re-pull, by-digest pulls and offline pulls.
 */
let reg: Registry;
let proxy: FaultProxy; // a counting pass-through proxy in front of reg

before(async () => {
  reg = await startRegistry();
  await pushImage(reg, 'busybox', 'library/busybox:latest');
  await pushImage(reg, 'busybox', 'library/bbv2:latest', { format: 'v2s2' });
  await pushImage(reg, 'busybox-zstd', 'library/bbzstd:latest');
  await pushImage(reg, 'multi', 'library/multi:latest');
  proxy = await startFaultProxy(reg.url);
}, { timeout: 600_000 });

after(async () => { await proxy?.stop(); await reg?.stop(); });

function dirs(): { store: string; cfg: string; env: Record<string, string> } {
  const base = userTempDir('ud-pull');
  const store = path.join(base, 'store'); const cfg = path.join(base, 'cfg');
  return { store, cfg, env: { USERDOCK_DIR: store, USERDOCK_CONFIG_DIR: cfg } };
}

async function ok(args: string[], env: Record<string, string>) {
  const r = await userdock(args, { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, `userdock ${args.join(' ')} failed:\n${r.stderr}`);
  return r;
}

async function inspectJson(ref: string, env: Record<string, string>) {
  return JSON.parse((await ok(['inspect', '--json', ref], env)).stdout);
}

/** Every blob file hashes to its name. */
function checkBlobs(store: string): string[] {
  const dir = path.join(store, 'blobs', 'sha256');
  const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  for (const n of names) {
    assert.equal(crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex'), n, `blob ${n} is corrupt`);
  }
  return names;
}

test('anonymous pull of an OCI image: name, config, layers, quiet stdout', { timeout: 120_000 }, async () => {
  const { env, store } = dirs();
  const r = await ok(['pull', `${reg.host}/library/busybox`], env);
  assert.equal(r.stdout, `${reg.host}/library/busybox:latest\n`);
  assert.equal(r.stderr, '', 'no progress output without a TTY');
  const j = await inspectJson(`${reg.host}/library/busybox:latest`, env);
  assert.equal(j.name, `${reg.host}/library/busybox:latest`);
  assert.equal(j.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(j.config.config.Cmd, ['sh']);
  assert.equal(j.id, j.manifest.config.digest);
  assert.ok(checkBlobs(store).length >= 3);
  const v = await ok(['verify', `${reg.host}/library/busybox`], env);
  assert.match(v.stdout, /OK/);
  const text = await ok(['inspect', `${reg.host}/library/busybox`], env);
  assert.match(text.stdout, /Cmd: +\["sh"\]/);
  assert.match(text.stdout, /sha256:[0-9a-f]{64}/);
  assert.deepEqual(fs.readdirSync(path.join(store, 'tmp')), []);
});

test('anonymous pull of a docker schema2 image', { timeout: 120_000 }, async () => {
  const { env } = dirs();
  const r = await ok(['-D', 'pull', `${reg.host}/library/bbv2:latest`], env);
  assert.match(r.stderr, /^debug: http transport: undici \(bundle\)$/m, 'the CLI loads undici from its bundle');
  const j = await inspectJson(`${reg.host}/library/bbv2`, env);
  assert.equal(j.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(j.manifest.layers[0].mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
});

test('zstd layers pull', { timeout: 120_000 }, async () => {
  const { env } = dirs();
  await ok(['pull', `${reg.host}/library/bbzstd`], env);
  const j = await inspectJson(`${reg.host}/library/bbzstd`, env);
  assert.equal(j.manifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  await ok(['verify', `${reg.host}/library/bbzstd`], env);
});

test('multi-platform index: --platform linux/arm64 and the host default', { timeout: 120_000 }, async () => {
  const { env } = dirs();
  await ok(['pull', '--platform', 'linux/arm64', `${reg.host}/library/multi`], env);
  let j = await inspectJson(`${reg.host}/library/multi`, env);
  assert.equal(j.config.architecture, 'arm64');
  assert.deepEqual(j.platform, { os: 'linux', architecture: 'arm64' });
  assert.notEqual(j.sourceDigest, j.digest, 'the ref remembers the index digest');
  if (process.arch === 'x64') {
    await ok(['pull', `${reg.host}/library/multi`], env);
    j = await inspectJson(`${reg.host}/library/multi`, env);
    assert.equal(j.config.architecture, 'amd64');
  }
  const bad = await userdock(['pull', '--platform', 'linux/s390x', `${reg.host}/library/multi`], { env, timeoutMs: 60_000 });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /linux\/s390x.*available: .*linux\/arm64/);
});

test('a pull of a present image costs one request; by digest none', { timeout: 120_000 }, async () => {
  const { env: e0 } = dirs();
  const env = { ...e0, USERDOCK_PULL_TTL: '0' };
  const name = `${proxy.host}/library/busybox`;
  await ok(['pull', name], env);
  let n = proxy.hits.requests;
  await ok(['pull', name], env);
  assert.equal(proxy.hits.requests - n, 1, 'one HEAD of the manifest');
  assert.equal(proxy.hits.log.at(-1)!.method, 'HEAD');
  const digest = (await inspectJson(name, env)).sourceDigest as string;
  await ok(['pull', `${name}@${digest}`], env);
  n = proxy.hits.requests;
  const r = await ok(['pull', `${name}@${digest}`], env);
  assert.equal(proxy.hits.requests - n, 0);
  assert.equal(r.stdout, `${name}@${digest}\n`);
});

test('a tag the registry confirmed within USERDOCK_PULL_TTL costs no request; after it, one HEAD', { timeout: 120_000 }, async () => {
  const { env } = dirs();
  const name = `${proxy.host}/library/busybox`;
  await ok(['pull', name], env);
  let n = proxy.hits.requests;
  const r = await ok(['pull', name], env);
  assert.equal(proxy.hits.requests - n, 0, 'confirmed seconds ago: no request (default TTL 300 s)');
  assert.equal(r.stdout, `${name}:latest\n`);
  await new Promise((res) => setTimeout(res, 1100));
  n = proxy.hits.requests;
  await ok(['pull', name], { ...env, USERDOCK_PULL_TTL: '1' });
  assert.equal(proxy.hits.requests - n, 1, 'older than the TTL: one HEAD');
  assert.equal(proxy.hits.log.at(-1)!.method, 'HEAD');
  n = proxy.hits.requests;
  await ok(['pull', name], { ...env, USERDOCK_PULL_TTL: '1' });
  assert.equal(proxy.hits.requests - n, 0, 'the HEAD confirmed it again');
});

test('offline: a present image is used with a warning; an absent one fails clearly', { timeout: 120_000 }, async () => {
  const { env: e0 } = dirs();
  const env = { ...e0, USERDOCK_PULL_TTL: '0' };
  const p = await startFaultProxy(reg.url);
  const name = `${p.host}/library/busybox`;
  await ok(['pull', name], env);
  await p.stop();
  const r = await userdock(['pull', name], { env: { ...env, USERDOCK_RETRIES: '1' }, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: .*using the stored image/);
  const r2 = await userdock(['pull', `${p.host}/library/absent`], { env: { ...env, USERDOCK_RETRIES: '1' }, timeoutMs: 60_000 });
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /cannot reach 127\.0\.0\.1:\d+/);
});

test('unknown image and malformed reference', { timeout: 60_000 }, async () => {
  const { env } = dirs();
  const r = await userdock(['pull', `${reg.host}/library/nope:1`], { env, timeoutMs: 60_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not found/);
  const m = await userdock(['pull', 'Bad:Name:x'], { env, timeoutMs: 60_000 });
  assert.equal(m.code, 2);
  assert.match(m.stderr, /invalid image reference/);
});

test('mirror via USERDOCK_MIRRORS: the image keeps its docker.io name', { timeout: 120_000 }, async () => {
  const { env, store } = dirs();
  const e = { ...env, USERDOCK_MIRRORS: `docker.io=http://${reg.host},noorigin` };
  const r = await ok(['pull', 'busybox'], e);
  assert.equal(r.stdout, 'docker.io/library/busybox:latest\n');
  assert.ok(fs.readdirSync(path.join(store, 'refs')).some((f) => decodeURIComponent(f) === 'docker.io/library/busybox:latest.json'));
  const imgs = await ok(['images'], e);
  assert.match(imgs.stdout, /^busybox +latest +[0-9a-f]{12} /m);
  const j = await inspectJson('docker.io/library/busybox:latest', e);
  assert.deepEqual(j.config.config.Cmd, ['sh']);
});

test('mirrors are tried in order, a dead one skipped; the origin after them is not needed', { timeout: 120_000 }, async () => {
  const { env } = dirs();
  // "origin" 127.0.0.2:9 has nothing listening: it must never spoil the answer of the working mirror.
  const e = { ...env, USERDOCK_RETRIES: '0', USERDOCK_PULL_TTL: '0', USERDOCK_MIRRORS: `127.0.0.2:9=http://127.0.0.1:1,http://${proxy.host}` };
  const r = await ok(['pull', '127.0.0.2:9/library/bbzstd'], e);
  assert.equal(r.stdout, '127.0.0.2:9/library/bbzstd:latest\n');
  const n = proxy.hits.requests;
  await ok(['pull', '127.0.0.2:9/library/bbzstd'], e);
  assert.equal(proxy.hits.requests - n, 1);
});

test('images, tag, rmi frees blobs no other image uses', { timeout: 120_000 }, async () => {
  const { env, store } = dirs();
  await ok(['pull', `${reg.host}/library/busybox`], env);
  await ok(['pull', `${reg.host}/library/bbzstd`], env);
  const shared = await inspectJson(`${reg.host}/library/busybox`, env);
  const zstd = await inspectJson(`${reg.host}/library/bbzstd`, env);
  assert.equal(shared.id, zstd.id, 'same config blob');
  await ok(['tag', `${reg.host}/library/busybox`, 'mine/bb:1'], env);
  const list = JSON.parse((await ok(['images', '--json'], env)).stdout) as Array<{ name: string; size: number; id: string }>;
  assert.deepEqual(list.map((i) => i.name).sort(), [`${reg.host}/library/bbzstd:latest`, `${reg.host}/library/busybox:latest`, 'docker.io/mine/bb:1'].sort());
  assert.ok(list.every((i) => i.size > 1000));
  const table = await ok(['images', '--no-trunc'], env);
  assert.match(table.stdout, /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE/);
  assert.match(table.stdout, new RegExp(`^mine/bb +1 +${shared.id} `, 'm'));

  const blobs = (d: string) => fs.readdirSync(path.join(store, 'blobs', 'sha256')).includes(d.slice(7));
  const r = await ok(['rmi', `${reg.host}/library/bbzstd`], env);
  assert.match(r.stdout, /Untagged: /);
  assert.ok(!blobs(zstd.manifest.layers[0].digest), 'the zstd layer is freed');
  assert.ok(!blobs(zstd.digest), 'its manifest is freed');
  assert.ok(blobs(zstd.id), 'the shared config stays');
  await ok(['verify', `${reg.host}/library/busybox`], env);
  await ok(['rmi', `${reg.host}/library/busybox`], env);
  assert.ok(blobs(shared.manifest.layers[0].digest), 'still used by mine/bb:1');
  await ok(['rmi', 'mine/bb:1'], env);
  assert.deepEqual(fs.readdirSync(path.join(store, 'blobs', 'sha256')), []);
  const gone = await userdock(['rmi', 'mine/bb:1'], { env });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no such image/);
});

test('find by id prefix; search via the catalog', { timeout: 120_000 }, async () => {
  const { env } = dirs();
  await ok(['pull', `${reg.host}/library/busybox`], env);
  const j = await inspectJson(`${reg.host}/library/busybox`, env);
  const byId = await inspectJson((j.id as string).slice(7, 19), env);
  assert.equal(byId.name, `${reg.host}/library/busybox:latest`);
  const s = await ok(['search', `${reg.host}/bb`], env);
  assert.match(s.stdout, /library\/bbv2/);
  assert.match(s.stdout, /library\/bbzstd/);
  assert.doesNotMatch(s.stdout, /library\/multi/);
});

test('inspect -p prints a container\'s root; rmi removes the pristine tree once no name uses the manifest', { timeout: 180_000 }, async () => {
  const { env: e0, store } = dirs();
  const rootfsBase = path.join(path.dirname(store), 'rootfs');
  const env = { ...e0, USERDOCK_ROOTFS_DIR: rootfsBase };
  const name = `${reg.host}/library/busybox`;
  await ok(['pull', name], env);
  const j = await inspectJson(name, env);
  const id = (await ok(['create', '--name=c1', name], env)).stdout.trim().split('\n').pop()!;
  const pristine = path.join(rootfsBase, (j.digest as string).slice(7));
  await ok(['run', name, '/bin/true'], env);
  assert.ok(fs.existsSync(path.join(pristine, 'rootfs', 'bin')), 'run IMAGE extracted the pristine tree');

  const byName = (await ok(['inspect', '-p', 'c1'], env)).stdout;
  const byId = (await ok(['inspect', '-p', id], env)).stdout;
  assert.equal(byName, byId);
  const root = byName.trim();
  assert.ok(path.isAbsolute(root), root);
  assert.ok(root.startsWith(path.join(store, 'containers') + path.sep), root);
  assert.ok(fs.existsSync(path.join(root, 'bin')), 'the container root holds the image files');
  const missing = await userdock(['inspect', '-p', 'no-such-container'], { env });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no container/);

  await ok(['tag', name, 'mine/keep:1'], env);
  await ok(['rmi', name], env);
  assert.ok(fs.existsSync(pristine), 'mine/keep:1 still uses the manifest: its tree stays');
  await ok(['rmi', 'mine/keep:1'], env);
  assert.ok(!fs.existsSync(pristine), 'the last name is gone: so is the pristine tree');
  assert.ok(fs.existsSync(path.join(root, 'bin')), 'the container is a copy and stays');
  assert.equal((await ok(['inspect', '-p', 'c1'], env)).stdout, byName);
});
