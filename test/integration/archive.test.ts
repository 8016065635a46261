import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { userdock, userTempDir, testUser } from '../support/user.js';
import { fixtureCache } from '../support/images.js';

let cache = '';
let work = '';
let env: Record<string, string> = {};

before(async () => {
  cache = await fixtureCache({ timeoutMs: 1_500_000 });
  work = userTempDir('ud-arch');
  env = { USERDOCK_DIR: path.join(work, 'store') };
}, { timeout: 1_800_000 });

async function ok(args: string[], input?: Buffer): Promise<string> {
  const r = await userdock(args, { env, input, timeoutMs: 180_000 });
  assert.equal(r.code, 0, `userdock ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function asRoot(cmd: string, args: string[]): string { return execFileSync(cmd, args, { encoding: 'utf8', timeout: 120_000 }); }
function giveToUser(p: string): void { const u = testUser(); fs.chownSync(p, u.uid, u.gid); }

test('load docker-archive (file and stdin) -> save -> skopeo reads it back', { timeout: 300_000 }, async () => {
  const da = path.join(work, 'deb2-docker.tar');
  asRoot('skopeo', ['copy', '-q', `oci:${path.join(cache, 'deb2')}:latest`, `docker-archive:${da}:deb2:t1`]);
  giveToUser(da);
  assert.match(await ok(['load', '-i', da]), /^docker\.io\/library\/deb2:t1$/m);
  assert.match(await ok(['load'], fs.readFileSync(da)), /deb2:t1/);
  const out = path.join(work, 'saved.tar');
  await ok(['save', '-o', out, 'deb2:t1']);
  const want = JSON.parse(asRoot('skopeo', ['inspect', `docker-archive:${da}`])) as { Layers: string[] };
  const got = JSON.parse(asRoot('skopeo', ['inspect', `docker-archive:${out}`])) as { Layers: string[]; Os: string };
  assert.equal(got.Os, 'linux');
  assert.deepEqual(got.Layers, want.Layers);
  const names = asRoot('tar', ['tf', out]).split('\n');
  assert.ok(names.includes('manifest.json') && names.includes('repositories'));
  const manifest = JSON.parse(asRoot('tar', ['xOf', out, 'manifest.json'])) as Array<{ RepoTags: string[] }>;
  assert.deepEqual(manifest[0].RepoTags, ['deb2:t1']);
  // and the saved archive loads back
  asRoot('skopeo', ['copy', '-q', `docker-archive:${out}`, `oci:${path.join(work, 'roundtrip')}:x`]);
});

test('load an OCI archive (tar of a layout); corrupt and foreign input fail clearly', { timeout: 300_000 }, async () => {
  const oa = path.join(work, 'busybox-oci.tar');
  asRoot('tar', ['-C', path.join(cache, 'busybox'), '-cf', oa, '.']);
  giveToUser(oa);
  assert.match(await ok(['load', '-i', oa]), /^docker\.io\/library\/busybox-oci:latest$/m, 'a bare ref.name tag is named after the archive');
  const junk = path.join(work, 'junk.tar');
  fs.writeFileSync(junk, 'not a tarball at all'.repeat(100)); giveToUser(junk);
  const r = await userdock(['load', '-i', junk], { env });
  assert.equal(r.code, 1); assert.match(r.stderr, /junk\.tar/);
  const flat = path.join(work, 'flat.tar');
  asRoot('tar', ['-C', path.join(cache, 'busybox'), '-cf', flat, 'oci-layout']); giveToUser(flat);
  const r2 = await userdock(['load', '-i', flat], { env });
  assert.equal(r2.code, 1); assert.match(r2.stderr, /neither a docker save tarball.*userdock import/);
});

test('export -> import as image and as container; export --clone -> import --clone', { timeout: 300_000 }, async () => {
  await ok(['load', '-i', path.join(cache, 'busybox')]);
  const id = await ok(['create', '--name=src', 'busybox']);
  const ex = path.join(work, 'export.tar');
  await ok(['export', '-o', ex, 'src']);
  const list = asRoot('tar', ['tf', ex]).split('\n');
  assert.ok(list.some((n) => /^(\.\/)?bin\/busybox$/.test(n)), 'tree exported at top level');
  assert.match(await ok(['import', ex, 'myimg:1']), /^docker\.io\/library\/myimg:1$/);
  const id2 = await ok(['create', 'myimg:1']);
  const js = JSON.parse(await ok(['ps', '--json'])) as Array<{ id: string; rootfs: string; names: string[] }>;
  const a = js.find((c) => c.id === id)!; const b = js.find((c) => c.id === id2)!;
  assert.equal(fs.statSync(path.join(b.rootfs, 'bin/busybox')).size, fs.statSync(path.join(a.rootfs, 'bin/busybox')).size);
  const tc = await ok(['import', '--tocontainer', '--name=flat', ex]);
  assert.ok(fs.existsSync(path.join(work, 'store', 'containers', tc, 'ROOT', 'bin', 'busybox')));
  const cl = path.join(work, 'clone.tar');
  await ok(['protect', 'src']);
  await ok(['export', '--clone', '-o', cl, 'src']);
  const restored = await ok(['import', '--clone', '--name=back', cl]);
  const after = JSON.parse(await ok(['ps', '--json'])) as Array<{ id: string; names: string[]; image: string; rootfs: string }>;
  const r = after.find((c) => c.id === restored)!;
  assert.deepEqual(r.names, ['back']);
  assert.equal(r.image, 'docker.io/library/busybox:latest');
  assert.ok(fs.statSync(path.join(r.rootfs, 'bin/busybox')).isFile());
  const noname = await userdock(['import', ex], { env });
  assert.equal(noname.code, 2); assert.match(noname.stderr, /missing REPO:TAG/);
  await ok(['unprotect', 'src']);
});
