import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { TreeWriter } from '../../src/rootfs/layer.js';
import { rawTar, type RawEntry } from '../fixtures/hostile/tar.js';

function tmp(label: string): string { return fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`)); }

async function apply(root: string, layers: RawEntry[][], reports: string[] = []): Promise<string[]> {
  const w = new TreeWriter(root, { report: (m) => reports.push(m) });
  for (const [i, l] of layers.entries()) {
    w.label = `layer ${i + 1}`;
    await w.apply(Readable.from([rawTar(l)]));
  }
  return reports;
}

/** Every path under dir, with type, for "nothing outside changed" checks. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = fs.lstatSync(p);
      out.push(`${path.relative(dir, p)}:${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'}:${st.size}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

test('files, dirs, symlinks and hardlinks are created; modes are fixed up', async () => {
  const root = tmp('layer');
  await apply(root, [[
    { path: 'etc/', type: 'dir' },
    { path: 'etc/hostname', data: 'box\n', mode: 0o444 },
    { path: 'bin/', type: 'dir', mode: 0o555 },
    { path: 'bin/sh', data: '#!', mode: 0o4755 },
    { path: 'bin/ash', type: 'link', linkpath: 'bin/sh' },
    { path: 'bin/bash', type: 'symlink', linkpath: '/bin/sh' },
    { path: 'ro/', type: 'dir', mode: 0o555 },
    { path: 'ro/child', data: 'x' },
    { path: 'tmp/', type: 'dir', mode: 0o1777 },
  ]]);
  assert.equal(fs.readFileSync(path.join(root, 'etc/hostname'), 'utf8'), 'box\n');
  assert.equal(fs.statSync(path.join(root, 'etc/hostname')).mode & 0o777, 0o644, 'files are u+rw');
  assert.equal(fs.statSync(path.join(root, 'bin/sh')).mode & 0o7777, 0o755, 'setuid dropped');
  assert.equal(fs.statSync(path.join(root, 'bin/ash')).ino, fs.statSync(path.join(root, 'bin/sh')).ino);
  assert.equal(fs.readlinkSync(path.join(root, 'bin/bash')), '/bin/sh');
  assert.equal(fs.statSync(path.join(root, 'ro')).mode & 0o777, 0o755, 'read-only dir made u+w');
  assert.equal(fs.readFileSync(path.join(root, 'ro/child'), 'utf8'), 'x');
  assert.equal(fs.statSync(path.join(root, 'tmp')).mode & 0o7777, 0o1777);
  fs.rmSync(root, { recursive: true }); // the owner can always remove it
});

test('whiteouts, opaque dirs and a later chmod are honoured in layer order', async () => {
  const root = tmp('layer');
  await apply(root, [
    [
      { path: 'a/', type: 'dir' }, { path: 'a/keep', data: '1' }, { path: 'a/gone', data: '2' },
      { path: 'o/', type: 'dir' }, { path: 'o/old1', data: 'x' }, { path: 'o/sub/', type: 'dir' }, { path: 'o/sub/old2', data: 'y' },
      { path: 'tool', data: 'run', mode: 0o644 },
      { path: 'linked', data: 'shared' }, { path: 'linked2', type: 'link', linkpath: 'linked' },
    ],
    [
      { path: 'a/.wh.gone' },
      { path: 'o/', type: 'dir' }, { path: 'o/.wh..wh..opq' }, { path: 'o/new', data: 'n' },
      { path: 'tool', data: 'run', mode: 0o755 },
      { path: 'linked', data: 'changed' },
      { path: 'ro/', type: 'dir', mode: 0o555 },
    ],
    [{ path: 'ro/late', data: 'z' }, { path: 'o/after', data: 'a' }],
  ]);
  assert.ok(fs.existsSync(path.join(root, 'a/keep')));
  assert.ok(!fs.existsSync(path.join(root, 'a/gone')));
  assert.deepEqual(fs.readdirSync(path.join(root, 'o')).sort(), ['after', 'new']);
  assert.equal(fs.statSync(path.join(root, 'tool')).mode & 0o777, 0o755);
  assert.equal(fs.readFileSync(path.join(root, 'linked'), 'utf8'), 'changed');
  assert.equal(fs.readFileSync(path.join(root, 'linked2'), 'utf8'), 'shared', 'a rewrite never goes through a hard link');
  assert.equal(fs.readFileSync(path.join(root, 'ro/late'), 'utf8'), 'z');
  fs.rmSync(root, { recursive: true });
});

test('a directory replaced by a symlink, and a file replaced by a directory', async () => {
  const root = tmp('layer');
  await apply(root, [
    [{ path: 'usr/bin/', type: 'dir' }, { path: 'bin/', type: 'dir' }, { path: 'bin/old', data: 'o' }, { path: 'x', data: 'f' }],
    [{ path: 'bin', type: 'symlink', linkpath: 'usr/bin' }, { path: 'bin/new', data: 'n' }, { path: 'x/', type: 'dir' }, { path: 'x/y', data: 'y' }],
  ]);
  assert.equal(fs.readlinkSync(path.join(root, 'bin')), 'usr/bin');
  assert.equal(fs.readFileSync(path.join(root, 'usr/bin/new'), 'utf8'), 'n');
  assert.ok(fs.statSync(path.join(root, 'x')).isDirectory());
  fs.rmSync(root, { recursive: true });
});

test('hostile tar corpus: zero writes outside the root, clear reports', async () => {
  const sandbox = tmp('hostile');
  const root = path.join(sandbox, 'root');
  const sentinel = path.join(sandbox, 'sentinel');
  fs.mkdirSync(root); fs.mkdirSync(sentinel);
  fs.writeFileSync(path.join(sentinel, 'secret'), 'keep');
  const before = snapshot(sentinel);
  const long = 'd'.repeat(60) + '/' + 'e'.repeat(70) + '/' + 'f'.repeat(120);
  const reports = await apply(root, [[
    { path: '../../x', data: 'evil' },
    { path: `../sentinel/evil`, data: 'evil' },
    { path: 'a/../../sentinel/evil2', data: 'evil' },
    { path: '/abs/file', data: 'abs' },
    { path: 'link', type: 'symlink', linkpath: sentinel },
    { path: 'link/file', data: 'through' },
    { path: 'rel', type: 'symlink', linkpath: '../../../../sentinel' },
    { path: 'rel/file2', data: 'through' },
    { path: 'etc', type: 'symlink', linkpath: '/' + path.relative('/', sentinel) },
    { path: 'etc/passwd', data: 'root:x' },
    { path: 'hard', type: 'link', linkpath: path.join(sentinel, 'secret') },
    { path: 'hard2', type: 'link', linkpath: '../sentinel/secret' },
    { path: 'dev/null', type: 'char' },
    { path: 'fifo', type: 'fifo' },
    { path: long, data: 'long' },
    { path: 'dup', data: 'first' },
    { path: 'dup', data: 'second' },
    { path: 'self', type: 'symlink', linkpath: 'self' },
    { path: 'loop', type: 'symlink', linkpath: 'loop2' }, { path: 'loop2', type: 'symlink', linkpath: 'loop' },
  ]]);
  assert.deepEqual(snapshot(sentinel), before, 'nothing outside the root changed');
  assert.equal(fs.readFileSync(path.join(sentinel, 'secret'), 'utf8'), 'keep');
  assert.ok(!fs.existsSync(path.join(sandbox, 'x')) && !fs.existsSync(path.join(os.tmpdir(), 'x')));
  // written inside, as if the root were /
  assert.equal(fs.readFileSync(path.join(root, 'abs/file'), 'utf8'), 'abs');
  assert.equal(fs.readFileSync(path.join(root, sentinel, 'file'), 'utf8'), 'through');
  assert.equal(fs.readFileSync(path.join(root, 'sentinel/file2'), 'utf8'), 'through');
  assert.equal(fs.readFileSync(path.join(root, sentinel, 'passwd'), 'utf8'), 'root:x');
  assert.equal(fs.readlinkSync(path.join(root, 'link')), sentinel, 'symlinks stay symlinks');
  assert.equal(fs.readFileSync(path.join(root, long), 'utf8'), 'long');
  assert.equal(fs.readFileSync(path.join(root, 'dup'), 'utf8'), 'second');
  assert.ok(!fs.existsSync(path.join(root, 'hard')) && !fs.existsSync(path.join(root, 'hard2')));
  assert.ok(!fs.existsSync(path.join(root, 'fifo')));
  const text = reports.join('\n');
  assert.match(text, /skipped "\.\.\/\.\.\/x": path contains "\.\."/);
  assert.match(text, /skipped hard link "hard"/);
  assert.match(text, /skipped CharacterDevice "dev\/null"/);
  assert.match(text, /skipped FIFO "fifo"/);
  fs.rmSync(sandbox, { recursive: true });
});

test('writing through a symlink loop fails with a clear error, nothing outside', async () => {
  const root = tmp('layer');
  await assert.rejects(apply(root, [[
    { path: 'loop', type: 'symlink', linkpath: 'loop2' }, { path: 'loop2', type: 'symlink', linkpath: 'loop' },
    { path: 'loop/x', data: 'x' },
  ]]), /too many levels of symbolic links/);
  fs.rmSync(root, { recursive: true });
});

test('a truncated tar is an error naming the layer', async () => {
  const root = tmp('layer');
  const t = rawTar([{ path: 'big', data: 'x'.repeat(5000) }]).subarray(0, 1500);
  const w = new TreeWriter(root, { label: 'layer sha256:abc' });
  await assert.rejects(w.apply(Readable.from([t])), /layer sha256:abc/);
  fs.rmSync(root, { recursive: true });
});

test('asynchronous creation keeps stream order: same path again, hard link, file -> dir/symlink, big files, mtimes', async () => {
  const root = tmp('layer');
  const big = Buffer.alloc(3 << 20); for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  const many = Array.from({ length: 300 }, (_, i) => ({ path: `many/f${i}`, data: `n${i}`, mtime: 1_000_000 + i }));
  const layer1 = [
    { path: 'many/', type: 'dir' as const }, ...many,
    { path: 'dup', data: 'one' }, { path: 'dup', data: 'two' }, { path: 'dup', type: 'symlink' as const, linkpath: 'many/f1' },
    { path: 'x', data: 'file first' }, { path: 'x/inner', data: 'x is a dir now' },
    { path: 'big', data: big }, { path: 'big-link', type: 'link' as const, linkpath: 'big' },
    { path: 'ln', type: 'symlink' as const, linkpath: 'many' }, { path: 'ln/via', data: 'through the link' },
  ];
  // the same layer twice: the second time every path exists (not a fresh tree for the writer's shortcut)
  await apply(root, [layer1, [{ path: 'many/.wh.f0' }, { path: 'big', data: 'small now' }], layer1.slice(0, 5)]);
  assert.equal(fs.readdirSync(path.join(root, 'many')).length, 301);
  assert.equal(fs.readFileSync(path.join(root, 'many/f299'), 'utf8'), 'n299');
  assert.equal(fs.statSync(path.join(root, 'many/f7')).mtimeMs, 1_000_007_000, 'mtime kept');
  assert.equal(fs.readlinkSync(path.join(root, 'dup')), 'many/f1');
  assert.equal(fs.readFileSync(path.join(root, 'x/inner'), 'utf8'), 'x is a dir now');
  assert.equal(fs.readFileSync(path.join(root, 'big'), 'utf8'), 'small now');
  assert.ok(fs.readFileSync(path.join(root, 'big-link')).equals(big), 'the hard link kept the old inode');
  assert.equal(fs.readFileSync(path.join(root, 'many/via'), 'utf8'), 'through the link');
  assert.equal(fs.readFileSync(path.join(root, 'many/f0'), 'utf8'), 'n0', 'the third layer brought f0 back');

  // a root that is not empty: the writer must look before creating
  const other = tmp('layer');
  fs.writeFileSync(path.join(other, 'dup'), 'old'); fs.mkdirSync(path.join(other, 'x'));
  await apply(other, [[{ path: 'dup', data: 'new' }, { path: 'x', data: 'file over a dir' }]]);
  assert.equal(fs.readFileSync(path.join(other, 'dup'), 'utf8'), 'new');
  assert.equal(fs.readFileSync(path.join(other, 'x'), 'utf8'), 'file over a dir');
  fs.rmSync(root, { recursive: true }); fs.rmSync(other, { recursive: true });
});
