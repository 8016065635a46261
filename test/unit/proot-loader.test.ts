import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { extractProotLoader } from '../../src/engines/proot-loader.js';

const PROOT = ['/usr/bin/proot', '/bin/proot'].find((p) => fs.existsSync(p));

test("PRoot's embedded loader is found, written executable, and PRoot runs programs through it (PROOT_LOADER)", { skip: !PROOT && 'proot not installed' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-loader-'));
  try {
    const loader = extractProotLoader(PROOT!, dir)!;
    assert.ok(loader, 'a loader was found');
    const b = fs.readFileSync(loader);
    assert.equal(b.subarray(0, 4).toString('latin1'), '\x7fELF');
    assert.equal(b.readUInt16LE(16), 2, 'ET_EXEC');
    assert.ok(b.length < 64 << 10, `small: ${b.length} bytes`);
    assert.equal(fs.statSync(loader).mode & 0o777, 0o700);
    const r = spawnSync(PROOT!, ['-r', '/', '/bin/sh', '-c', 'echo through-loader'], { env: { PATH: '/usr/bin:/bin', PROOT_LOADER: loader }, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.stdout, 'through-loader\n', r.stderr);
    // A broken loader makes the same run fail: PRoot really used this file.
    fs.writeFileSync(loader, Buffer.alloc(64));
    const bad = spawnSync(PROOT!, ['-r', '/', '/bin/true'], { env: { PATH: '/usr/bin:/bin', PROOT_LOADER: loader }, encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(bad.status, 0);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('a binary without an embedded loader: undefined, nothing written', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-loader-'));
  try {
    assert.equal(extractProotLoader('/bin/true', dir), undefined);
    assert.equal(extractProotLoader(path.join(dir, 'missing'), dir), undefined);
    assert.deepEqual(fs.readdirSync(dir), []);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});
