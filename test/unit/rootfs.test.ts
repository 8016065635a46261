import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { decompressStream } from '../../src/rootfs/decompress.js';
import { imageRootfs, rootfsDir, setFsTypeProbe, createContainer, listContainers, removeContainer, updateContainer, findContainer } from '../../src/rootfs/index.js';
import { openStore, type Image, type Manifest } from '../../src/image/store.js';
import { makeContext } from '../../src/cli/context.js';
import { rawTar } from '../fixtures/hostile/tar.js';

function tmp(label: string): string { return fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`)); }
async function collect(s: Readable): Promise<Buffer> { const out: Buffer[] = []; for await (const c of s) out.push(c as Buffer); return Buffer.concat(out); }

const TAR = rawTar([{ path: 'hello', data: 'world'.repeat(1000) }]);

test('decompress: gzip, zstd and plain tar by magic; bzip2 is a clear error', async () => {
  assert.deepEqual(await collect(decompressStream(Readable.from([zlib.gzipSync(TAR)]))), TAR);
  assert.deepEqual(await collect(decompressStream(Readable.from([TAR]))), TAR);
  const zst = execFileSync('zstd', ['-q', '-c'], { input: TAR });
  // feed in small chunks to exercise streaming
  const chunks: Buffer[] = []; for (let i = 0; i < zst.length; i += 7) chunks.push(zst.subarray(i, i + 7));
  assert.deepEqual(await collect(decompressStream(Readable.from(chunks), 'application/vnd.oci.image.layer.v1.tar+zstd')), TAR);
  const bz = execFileSync('bzip2', ['-c'], { input: TAR });
  await assert.rejects(collect(decompressStream(Readable.from([bz]), 'application/x-bzip2', 'layer sha256:feed')),
    (e: Error) => /layer sha256:feed .*neither gzip, zstd nor a plain tar \(bzip2\)/.test(e.message));
  await assert.rejects(collect(decompressStream(Readable.from([zlib.gzipSync(TAR).subarray(0, 40)]), undefined, 'layer X')), /layer X/);
});

test('rootfsDir: env, config key, node-local default on a (pretend) Lustre store', () => {
  const base = tmp('rdir');
  const ctx = makeContext({ storeDir: path.join(base, 'store'), configDir: path.join(base, 'cfg'), env: { TMPDIR: path.join(base, 'local') } });
  const prev = setFsTypeProbe(() => 0xef53);
  try {
    assert.equal(rootfsDir(ctx), path.join(base, 'store', 'rootfs'));
    setFsTypeProbe(() => 0x0bd00bd0); // Lustre
    assert.equal(rootfsDir(ctx), path.join(base, 'local', `userdock-${process.getuid!()}`, 'rootfs'));
    setFsTypeProbe(() => 0x6969); // NFS
    assert.match(rootfsDir(ctx), /userdock-\d+\/rootfs$/);
    fs.mkdirSync(ctx.configDir, { recursive: true });
    fs.writeFileSync(path.join(ctx.configDir, 'config.json'), JSON.stringify({ rootfsDir: path.join(base, 'cfgdir') }));
    setFsTypeProbe(() => 0x0bd00bd0);
    assert.equal(rootfsDir(ctx), path.join(base, 'cfgdir'));
    const ctx2 = makeContext({ ...ctx, env: { ...ctx.env, USERDOCK_ROOTFS_DIR: path.join(base, 'envdir') } });
    assert.equal(rootfsDir(ctx2), path.join(base, 'envdir'));
  } finally { setFsTypeProbe(prev); }
});

async function tinyImage(storeDir: string): Promise<Image> {
  const store = openStore(storeDir);
  const l1 = await store.putBlob(zlib.gzipSync(rawTar([{ path: 'bin/', type: 'dir', mode: 0o555 }, { path: 'bin/tool', data: 'v1' }, { path: 'etc/gone', data: 'x' }])));
  const l2 = await store.putBlob(rawTar([{ path: 'etc/.wh.gone' }, { path: 'bin/tool', data: 'v2', mode: 0o755 }]));
  const cfg = await store.putBlob(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest: Manifest = { schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l1 }, { mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l2 }] };
  const m = await store.putBlob(JSON.stringify(manifest));
  store.setRef({ name: 'localhost/tiny:1', digest: m.digest, updated: new Date().toISOString() });
  return store.loadImage(store.getRef('localhost/tiny:1')!);
}

test('imageRootfs: extracted once (concurrently safe), then reused; containers are real copies', async () => {
  const base = tmp('irf');
  const ctx = makeContext({ storeDir: path.join(base, 'store'), configDir: path.join(base, 'cfg'), env: {} });
  const img = await tinyImage(ctx.storeDir);
  const paths = await Promise.all([imageRootfs(ctx, img), imageRootfs(ctx, img), imageRootfs(ctx, img)]);
  assert.equal(new Set(paths).size, 1);
  const root = paths[0];
  assert.equal(root, path.join(ctx.storeDir, 'rootfs', img.ref.digest.slice(7), 'rootfs'));
  assert.equal(fs.readFileSync(path.join(root, 'bin/tool'), 'utf8'), 'v2');
  assert.ok(!fs.existsSync(path.join(root, 'etc/gone')));
  const ino = fs.statSync(root).ino;
  assert.equal(await imageRootfs(ctx, img), root);
  assert.equal(fs.statSync(root).ino, ino, 'not re-extracted');
  assert.deepEqual(fs.readdirSync(path.join(ctx.storeDir, 'rootfs', '.tmp')), []);

  const c = await createContainer(ctx, img, { name: 'tiny' });
  fs.writeFileSync(path.join(c.rootfs, 'bin/tool'), 'changed');
  assert.equal(fs.readFileSync(path.join(root, 'bin/tool'), 'utf8'), 'v2', 'writes in a container never reach the pristine tree');
  assert.equal(findContainer(ctx, 'tiny')?.id, c.id);
  await assert.rejects(createContainer(ctx, img, { name: 'tiny' }), /already used/);
  await updateContainer(ctx, c.id, (x) => { x.protected = true; });
  await assert.rejects(removeContainer(ctx, 'tiny'), (e: Error & { hint?: string }) => /is protected/.test(e.message) && /unprotect/.test(e.hint ?? ''));
  await updateContainer(ctx, c.id, (x) => { delete x.protected; });
  await removeContainer(ctx, 'tiny');
  assert.deepEqual(listContainers(ctx), []);
  fs.rmSync(base, { recursive: true });
});
