import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startFaultProxy } from '../support/fault-proxy.js';
import { BUILD_SCRIPT, FIXTURE_IMAGES, fixtureCache, fixtureLayout } from '../support/images.js';
import { pushConformanceImages, pushImage, run, skopeoInspect, startRegistry, type Registry } from '../support/registry.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

function readJson(file: string): any { return JSON.parse(fs.readFileSync(file, 'utf8')); }
function blobPath(layout: string, digest: string): string { return path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, '')); }
function tagDescriptor(layout: string, tag: string): any {
  return readJson(path.join(layout, 'index.json')).manifests.find((m: any) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
}

async function shouldFail(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => { assert.match(e.message, re); return true; });
}

describe('fixture images', { timeout: 15 * 60_000 }, () => {
  let cache = '';
  before(async () => { cache = await fixtureCache(); });

  test('build is cached: a second run takes seconds and names the same dir', () => {
    const t0 = Date.now();
    const out = execFileSync('bash', [BUILD_SCRIPT], { encoding: 'utf8', timeout: 60_000 }).trim();
    assert.equal(out, cache);
    assert.ok(Date.now() - t0 < 5000, `cached build took ${Date.now() - t0} ms`);
  });

  test('every fixture layout exists with its tag', () => {
    for (const [name, img] of Object.entries(FIXTURE_IMAGES)) {
      const d = tagDescriptor(path.join(cache, img.dir), img.tag);
      assert.ok(d, `${name}: no tag ${img.tag}`);
    }
  });

  test('deb2 has two layers and a whiteout in layer 2', async () => {
    const { layout, tag } = await fixtureLayout('deb2');
    const m = readJson(blobPath(layout, tagDescriptor(layout, tag).digest));
    assert.ok(m.layers.length >= 2);
    const list = execFileSync('tar', ['-tzf', blobPath(layout, m.layers[1].digest)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.match(list, /(^|\/)\.wh\.issue\.net$/m);
    assert.match(list, /usr\/bin\/python3/);
    const cfg = readJson(blobPath(layout, m.config.digest));
    assert.deepEqual(cfg.config.Cmd, ['bash']);
    assert.ok(cfg.config.Env.includes('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'));
  });

  test('busybox-zstd has a zstd layer; multi is an index of amd64 + arm64', async () => {
    const z = await fixtureLayout('busybox-zstd');
    const zm = readJson(blobPath(z.layout, tagDescriptor(z.layout, z.tag).digest));
    assert.equal(zm.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    const head = fs.readFileSync(blobPath(z.layout, zm.layers[0].digest)).subarray(0, 4);
    assert.deepEqual([...head], [0x28, 0xb5, 0x2f, 0xfd]);
    const mu = await fixtureLayout('multi');
    const d = tagDescriptor(mu.layout, mu.tag);
    assert.equal(d.mediaType, OCI_INDEX);
    const idx = readJson(blobPath(mu.layout, d.digest));
    assert.deepEqual(idx.manifests.map((m: any) => m.platform.architecture).sort(), ['amd64', 'arm64']);
    assert.notEqual(idx.manifests[0].digest, idx.manifests[1].digest);
  });

  test('bash:4.4 has the entrypoint; alpine has alpine-release', async () => {
    const b = await fixtureLayout('bash:4.4');
    const bm = readJson(blobPath(b.layout, tagDescriptor(b.layout, b.tag).digest));
    const bc = readJson(blobPath(b.layout, bm.config.digest));
    assert.deepEqual(bc.config.Entrypoint, ['docker-entrypoint.sh']);
    assert.deepEqual(bc.config.Cmd, ['bash']);
    const a = await fixtureLayout('alpine');
    const am = readJson(blobPath(a.layout, tagDescriptor(a.layout, a.tag).digest));
    const list = am.layers.map((l: any) => execFileSync('tar', ['-tzf', blobPath(a.layout, l.digest)], { encoding: 'utf8' })).join('\n');
    assert.match(list, /etc\/alpine-release/);
    assert.doesNotMatch(list, /bin\/bash$/m);
  });
});

describe('registries', { timeout: 15 * 60_000 }, () => {
  const regs: Registry[] = [];
  before(async () => { await fixtureCache(); });
  after(async () => { await Promise.all(regs.map((r) => r.stop())); });

  test('auth none: push busybox (oci and v2s2), the index, and the conformance images', async () => {
    const reg = await startRegistry();
    regs.push(reg);
    assert.match(reg.host, /^127\.0\.0\.1:\d+$/);
    assert.equal(reg.url, `http://${reg.host}`);
    const ref = await pushImage(reg, 'busybox', 'library/busybox:latest');
    assert.equal(ref, `${reg.host}/library/busybox:latest`);
    const info = await skopeoInspect(ref);
    assert.equal(info.Architecture, 'amd64');
    const raw = await skopeoInspect(ref, { raw: true });
    assert.equal(raw.mediaType, 'application/vnd.oci.image.manifest.v1+json');

    await pushImage(reg, 'busybox', 'v2/busybox:v2s2', { format: 'v2s2' });
    const raw2 = await skopeoInspect(`${reg.host}/v2/busybox:v2s2`, { raw: true });
    assert.equal(raw2.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');

    await pushImage(reg, 'multi', 'library/multi');
    const idx = await skopeoInspect(`${reg.host}/library/multi:latest`, { raw: true });
    assert.equal(idx.mediaType, OCI_INDEX);
    assert.equal(idx.manifests.length, 2);

    await pushImage(reg, 'busybox-zstd', 'library/busybox-zstd');
    const rz = await skopeoInspect(`${reg.host}/library/busybox-zstd:latest`, { raw: true });
    assert.equal(rz.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');

    await pushImage(reg, 'deb2', 'test/deb2');
    const d2 = await skopeoInspect(`${reg.host}/test/deb2:latest`);
    assert.ok(d2.Layers.length >= 2);

    const pushed = await pushConformanceImages(reg);
    assert.equal(pushed.length, 4);
    const b = await skopeoInspect(`${reg.host}/library/bash:4.4`, { config: true });
    assert.deepEqual(b.config.Entrypoint, ['docker-entrypoint.sh']);
  });

  test('auth htpasswd: creds required, wrong creds fail', async () => {
    const reg = await startRegistry({ auth: 'htpasswd', users: { alice: 's3cret' } });
    regs.push(reg);
    assert.equal(reg.creds, 'alice:s3cret');
    const r = await fetch(`${reg.url}/v2/`);
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Basic /);
    const ref = await pushImage(reg, 'busybox', 'private/busybox:1');
    const info = await skopeoInspect(ref, { creds: 'alice:s3cret' });
    assert.equal(info.Os, 'linux');
    await shouldFail(skopeoInspect(ref), /unauthorized|authentication required|401/i);
    await shouldFail(skopeoInspect(ref, { creds: 'alice:wrong' }), /unauthorized|authentication required|401/i);
    await shouldFail(pushImage(reg, 'busybox', 'private/busybox:2', { creds: 'bob:nope' }), /unauthorized|authentication required|401/i);
  });

  test('auth token: anonymous pull, authenticated push, wrong password is 401', async () => {
    const reg = await startRegistry({ auth: 'token', users: { tok: 'tokpass' } });
    regs.push(reg);
    const iss = reg.tokenIssuer!;
    const r = await fetch(`${reg.url}/v2/`);
    assert.equal(r.status, 401);
    const wa = r.headers.get('www-authenticate') ?? '';
    assert.match(wa, /^Bearer /);
    assert.ok(wa.includes(`realm="${iss.realm}"`), wa);

    const bad = await fetch(`${iss.realm}?service=${iss.service}&scope=repository:x/y:pull`, { headers: { authorization: `Basic ${Buffer.from('tok:wrong').toString('base64')}` } });
    assert.equal(bad.status, 401);
    const anon = await (await fetch(`${iss.realm}?service=${iss.service}&scope=repository:x/y:pull,push`)).json() as any;
    const claims = JSON.parse(Buffer.from(anon.token.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'x/y', actions: ['pull'] }]);

    await shouldFail(pushImage(reg, 'busybox', 'library/busybox:t', { creds: 'tok:wrong' }), /unauthorized|authentication required|401/i);
    const ref = await pushImage(reg, 'busybox', 'library/busybox:t');
    assert.ok(iss.requests.some((q) => q.authenticated && q.granted.some((g) => g.actions.includes('push'))));
    const info = await skopeoInspect(ref); // anonymous pull
    assert.equal(info.Architecture, 'amd64');
    const info2 = await skopeoInspect(ref, { creds: 'tok:tokpass' });
    assert.equal(info2.Digest, info.Digest);
    await shouldFail(skopeoInspect(ref, { creds: 'tok:wrong' }), /unauthorized|authentication required|401/i);
  });

  test('token registry without anonymous pull refuses anonymous clients', async () => {
    const reg = await startRegistry({ auth: 'token', anonymousPull: false });
    regs.push(reg);
    const ref = await pushImage(reg, 'busybox', 'library/busybox:p');
    await shouldFail(skopeoInspect(ref), /unauthorized|authentication required|401|denied/i);
    const info = await skopeoInspect(ref, { creds: reg.creds });
    assert.equal(info.Os, 'linux');
  });

  test('fault proxy: errors, drops, corruption, ignored Range, pass-through', async () => {
    const reg = await startRegistry({ auth: 'htpasswd' });
    regs.push(reg);
    const ref = await pushImage(reg, 'busybox', 'library/busybox:latest');
    const raw = await skopeoInspect(ref, { raw: true, creds: reg.creds });
    const layer = raw.layers[0];
    const authz = { authorization: `Basic ${Buffer.from(reg.creds!).toString('base64')}` };
    const blobUrl = (base: string) => `${base}/v2/library/busybox/blobs/${layer.digest}`;
    const sha = (b: ArrayBuffer) => `sha256:${crypto.createHash('sha256').update(Buffer.from(b)).digest('hex')}`;

    const p = await startFaultProxy(reg.url, {
      errors: [{ pattern: /\/manifests\//, status: 503, count: 2, retryAfter: 0 }],
      dropBlobGets: 1,
      corruptBlobGets: 1,
      ignoreRange: true,
    });
    try {
      // pass-through keeps WWW-Authenticate
      const r0 = await fetch(`${p.url}/v2/`);
      assert.equal(r0.status, 401);
      assert.match(r0.headers.get('www-authenticate') ?? '', /^Basic /);
      // first two manifest requests: 503, then through
      const murl = `${p.url}/v2/library/busybox/manifests/latest`;
      const accept = { ...authz, accept: 'application/vnd.oci.image.manifest.v1+json' };
      assert.equal((await fetch(murl, { headers: accept })).status, 503);
      assert.equal((await fetch(murl, { headers: accept })).status, 503);
      const m3 = await fetch(murl, { headers: accept });
      assert.equal(m3.status, 200);
      await m3.arrayBuffer();
      // blob GET 1: dropped mid-body
      await assert.rejects(async () => { const r = await fetch(blobUrl(p.url), { headers: authz }); await r.arrayBuffer(); });
      // blob GET 2: corrupted, same length
      const c = await fetch(blobUrl(p.url), { headers: authz });
      const cb = await c.arrayBuffer();
      assert.equal(cb.byteLength, layer.size);
      assert.notEqual(sha(cb), layer.digest);
      // blob GET 3: clean, and Range is ignored (200, whole body)
      const g = await fetch(blobUrl(p.url), { headers: { ...authz, range: 'bytes=100-' } });
      assert.equal(g.status, 200);
      assert.equal(sha(await g.arrayBuffer()), layer.digest);
      // the registry itself honours Range
      const direct = await fetch(blobUrl(reg.url), { headers: { ...authz, range: 'bytes=100-' } });
      assert.equal(direct.status, 206);
      await direct.arrayBuffer();
      assert.equal(p.hits.dropped, 1);
      assert.equal(p.hits.corrupted, 1);
      assert.equal(p.hits.errored, 2);
      assert.equal(p.hits.blobGets, 3);
      assert.equal(p.hits.rangeRequests, 1);
    } finally { await p.stop(); }

    // a push through the proxy works: upload Locations are rewritten to the proxy
    const p2 = await startFaultProxy(reg.url, {});
    try {
      await pushImage(reg, 'alpine', 'via/proxy:1', { host: p2.host });
      const uploads = p2.hits.log.filter((h) => /\/blobs\/uploads\/.+/.test(h.path));
      assert.ok(uploads.length > 0, 'upload PUT/PATCH went through the proxy');
      const info = await skopeoInspect(`${reg.host}/via/proxy:1`, { creds: reg.creds });
      assert.equal(info.Os, 'linux');
      // skopeo copy through a proxy that drops the first blob GET fails
      const p3 = await startFaultProxy(reg.url, { dropBlobGets: 5 });
      try {
        const dest = fs.mkdtempSync('/tmp/ud-fx-');
        await shouldFail(run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--retry-times', '0', '--src-creds', reg.creds!, `docker://${p3.host}/library/busybox:latest`, `oci:${dest}:x`], 60_000), /failed/);
        fs.rmSync(dest, { recursive: true, force: true });
        assert.ok(p3.hits.dropped >= 1);
      } finally { await p3.stop(); }
    } finally { await p2.stop(); }
  });
});

describe('unpackFixture', { timeout: 10 * 60_000 }, () => {
  test('busybox unpacks as the test user with sh runnable', async () => {
    const { unpackFixture } = await import('../support/images.js');
    const { userTempDir, testUser } = await import('../support/user.js');
    const parent = userTempDir('ud-unpack');
    try {
      const rootfs = await unpackFixture('busybox', path.join(parent, 'bundle'), { asUser: true });
      const st = fs.lstatSync(path.join(rootfs, 'bin', 'busybox'));
      assert.equal(st.uid, testUser().uid);
      assert.equal(fs.readlinkSync(path.join(rootfs, 'bin', 'sh')), '/bin/busybox');
      assert.equal((fs.statSync(path.join(rootfs, 'tmp')).mode & 0o7777), 0o1777);
    } finally { fs.rmSync(parent, { recursive: true, force: true }); }
  });
});
