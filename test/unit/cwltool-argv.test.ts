import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { splitVolume, parseMount, createNestedMountpoints } from '../../src/isolation/volumes.js';

/** The argv shapes Debian's cwltool and Toil send (docs/cwltool.md). */
const hostHas = (paths: string[]) => (p: string) => paths.includes(p);

test('--mount written by python csv: quoted pieces with commas and doubled quotes', () => {
  const ex = hostHas(['/w,x/in,put.txt', '/a"b']);
  assert.deepEqual(parseMount('type=bind,"source=/w,x/in,put.txt","target=/var/lib/cwl/stg1/in,put.txt",readonly', ex),
    { type: 'bind', source: '/w,x/in,put.txt', target: '/var/lib/cwl/stg1/in,put.txt', readonly: true });
  assert.deepEqual(parseMount('type=bind,"source=/a""b",target=/x', ex), { type: 'bind', source: '/a"b', target: '/x', readonly: false });
});

test('--volume from UDockerCommandLineJob after cwltool strips :ro/:rw: commas in paths', () => {
  const ex = hostHas(['/tmp/w,x/in,put.txt']);
  assert.deepEqual(splitVolume('/tmp/w,x/in,put.txt:/var/lib/cwl/stg2/in,put.txt', ex),
    { type: 'bind', source: '/tmp/w,x/in,put.txt', target: '/var/lib/cwl/stg2/in,put.txt', readonly: false });
});

test('createNestedMountpoints: a bind inside a bound outdir gets its mount point on the host, like docker', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'nested-'));
  try {
    const out = path.join(d, 'out'); fs.mkdirSync(out);
    const file = path.join(d, 'in.txt'); fs.writeFileSync(file, 'x');
    const dir = path.join(d, 'indir'); fs.mkdirSync(dir);
    createNestedMountpoints([
      { type: 'bind', source: out, target: '/RupVyR', readonly: false },
      { type: 'bind', source: file, target: '/RupVyR/subdir/in.txt', readonly: true },
      { type: 'bind', source: dir, target: '/RupVyR/d2', readonly: true },
      { type: 'bind', source: file, target: '/var/lib/cwl/stg/in.txt', readonly: true },
    ]);
    assert.ok(fs.statSync(path.join(out, 'subdir', 'in.txt')).isFile());
    assert.equal(fs.statSync(path.join(out, 'subdir', 'in.txt')).size, 0);
    assert.ok(fs.statSync(path.join(out, 'd2')).isDirectory());
    assert.deepEqual(fs.readdirSync(out).sort(), ['d2', 'subdir']);
  } finally { fs.rmSync(d, { recursive: true, force: true }); }
});
