import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { userdock, userTempDir, testUser } from '../support/user.js';
import { fixtureLayout } from '../support/images.js';

/**
 * Concurrent runs of one image, the way cwltool --parallel and cwltest -j
 * start them: each binds its own outdir at /var/spool/cwl (busybox has an
 * empty /var), its own /tmp and an input file at /var/lib/cwl/stgN/in.txt. PRoot
 * used to mkdir those mount points INTO the shared pristine tree (a loaded
 * image belongs to the user, so that succeeds) and rmdir them at exit, so one
 * run pulled /var from under another ("can't create out.txt: nonexistent
 * directory"). All runs must succeed, and the pristine tree is never written.
 */
const N = 12;
let store: string;
let work: string;
let rootfs: string;

before(async () => {
  testUser();
  store = userTempDir('udstore');
  work = userTempDir('udpar');
  const { layout } = await fixtureLayout('busybox');
  const r = await userdock([`--repo=${store}`, 'load', '-i', layout], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  // Extract the pristine tree once, so the concurrent runs below only share it.
  const r2 = await userdock([`--repo=${store}`, 'run', '--engine=U1', 'busybox', 'true'], { timeoutMs: 120_000 });
  assert.equal(r2.code, 0, r2.stderr);
  const base = path.join(store, 'rootfs');
  const hex = fs.readdirSync(base).filter((n) => !n.startsWith('.'));
  assert.equal(hex.length, 1);
  rootfs = path.join(base, hex[0], 'rootfs');
  assert.ok(!fs.existsSync(path.join(rootfs, 'var', 'spool')) && !fs.existsSync(path.join(rootfs, 'var', 'lib')), 'the busybox fixture has no /var/spool, /var/lib');
  assert.equal(fs.statSync(rootfs).uid, testUser().uid, 'the pristine tree belongs to the user (writable, as after a pull)');
});
after(() => {
  for (const d of [store, work]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

/** The entries of / and /var in the pristine tree. */
function listing(): string[] {
  const out: string[] = [];
  for (const d of ['', 'var']) {
    try { for (const n of fs.readdirSync(path.join(rootfs, d))) out.push(path.posix.join('/', d, n)); } catch { /* vanished */ }
  }
  return out;
}

for (const engine of ['P1', 'P2', 'U1']) {
  test(`${engine}: ${N} concurrent runs binding under a directory the image lacks`, async () => {
    const u = testUser();
    const dirs = Array.from({ length: N }, (_, i) => {
      const d = path.join(work, `${engine}-${i}`);
      for (const s of ['out', 'tmp', 'in']) fs.mkdirSync(path.join(d, s), { recursive: true });
      fs.writeFileSync(path.join(d, 'in', 'in.txt'), `input ${i}\n`);
      for (const s of ['', 'out', 'tmp', 'in', 'in/in.txt']) fs.chownSync(path.join(d, s), u.uid, u.gid);
      return d;
    });
    // Watch the pristine tree while the runs are in flight: nothing may appear in it.
    const seen = new Set<string>();
    const before = new Set(listing());
    const watch = setInterval(() => { for (const n of listing()) if (!before.has(n)) seen.add(n); }, 5);
    let results;
    try {
      results = await Promise.all(dirs.map((d, i) => userdock([`--repo=${store}`, 'run', `--engine=${engine}`,
        `--volume=${path.join(d, 'out')}:/var/spool/cwl`, `--volume=${path.join(d, 'tmp')}:/tmp`,
        `--volume=${path.join(d, 'in', 'in.txt')}:/var/lib/cwl/stg${i}/in.txt:ro`, '-w', '/var/spool/cwl',
        'busybox', 'sh', '-c', `cat /var/lib/cwl/stg${i}/in.txt > out.txt && echo run ${i} >> out.txt && echo t > /tmp/t`],
      { timeoutMs: 120_000 })));
    } finally { clearInterval(watch); }
    const failed = results.map((r, i) => ({ i, r })).filter(({ r }) => r.code !== 0);
    assert.deepEqual(failed.map(({ i, r }) => `run ${i}: exit ${r.code}: ${r.stderr.trim()}`), [], `${failed.length}/${N} runs failed`);
    dirs.forEach((d, i) => {
      assert.equal(fs.readFileSync(path.join(d, 'out', 'out.txt'), 'utf8'), `input ${i}\nrun ${i}\n`, `run ${i} wrote its own file`);
      assert.equal(fs.readFileSync(path.join(d, 'tmp', 't'), 'utf8'), 't\n');
    });
    assert.deepEqual([...seen], [], 'no mount point was created in the pristine tree, even for a moment');
    assert.deepEqual(listing().sort(), [...before].sort(), 'the pristine tree is unchanged');
  });
}
