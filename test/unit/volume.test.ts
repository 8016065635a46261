import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitVolume, parseMount } from '../../src/isolation/volumes.js';
import { UserError } from '../../src/errors.js';

const hostHas = (paths: string[]) => (p: string) => paths.includes(p);

test('splitVolume: plain HOST:CONT, :ro and :rw', () => {
  const ex = hostHas(['/data']);
  assert.deepEqual(splitVolume('/data:/in', ex), { type: 'bind', source: '/data', target: '/in', readonly: false });
  assert.deepEqual(splitVolume('/data:/in:ro', ex), { type: 'bind', source: '/data', target: '/in', readonly: true });
  assert.deepEqual(splitVolume('/data:/in:rw', ex), { type: 'bind', source: '/data', target: '/in', readonly: false });
});

test('splitVolume: colons inside paths (cwltool staging names)', () => {
  const ex = hostHas(['/data/A:Gln2Cys']);
  const b = splitVolume('/data/A:Gln2Cys:/var/lib/cwl/stgX/A:Gln2Cys', ex);
  assert.equal(b.source, '/data/A:Gln2Cys');
  assert.equal(b.target, '/var/lib/cwl/stgX/A:Gln2Cys');
  const ro = splitVolume('/data/A:Gln2Cys:/var/lib/cwl/stgX/A:Gln2Cys:ro', ex);
  assert.equal(ro.readonly, true);
  assert.equal(ro.target, '/var/lib/cwl/stgX/A:Gln2Cys');
});

test('splitVolume: a colon followed by / inside the host path is chosen by existence', () => {
  const ex = hostHas(['/x:/y', '/x']);
  // both /x and /x:/y exist: the longest existing host path wins
  assert.deepEqual(splitVolume('/x:/y:/z', ex), { type: 'bind', source: '/x:/y', target: '/z', readonly: false });
  assert.deepEqual(splitVolume('/x:/y:/z', hostHas(['/x'])), { type: 'bind', source: '/x', target: '/y:/z', readonly: false });
});

test('splitVolume: a lone path binds to itself; trailing slashes go', () => {
  assert.deepEqual(splitVolume('/scratch', hostHas(['/scratch'])), { type: 'bind', source: '/scratch', target: '/scratch', readonly: false });
  assert.equal(splitVolume('/a:/b/', hostHas(['/a'])).target, '/b');
});

test('splitVolume: errors name the problem', () => {
  assert.throws(() => splitVolume('rel:/x', hostHas([])), (e: unknown) => e instanceof UserError && /absolute/.test(e.message));
  assert.throws(() => splitVolume('/nope:/x', hostHas([])), (e: unknown) => e instanceof UserError && /does not exist/.test(e.message) && /\/nope/.test(e.message));
  assert.throws(() => splitVolume('/a:/', hostHas(['/a'])), (e: unknown) => e instanceof UserError && /container's \//.test(e.message));
  assert.throws(() => splitVolume('/a:/b/../..', hostHas(['/a'])), (e: unknown) => e instanceof UserError && e.exitCode === 2 && /container's \//.test(e.message));
});

const usage = (re: RegExp) => (e: unknown) => e instanceof UserError && e.exitCode === 2 && re.test(e.message);

test('splitVolume: options are docker\'s, case-sensitive; unknown ones are usage errors naming them', () => {
  const ex = hostHas(['/h']);
  assert.equal(splitVolume('/h:/data:ro,z', ex).readonly, true);
  assert.equal(splitVolume('/h:/data:Z', ex).readonly, false);
  assert.equal(splitVolume('/h:ro', ex).target, '/h');
  for (const o of ['RO', 'rx', 'ro,rx', 'readonly', 'Rw']) {
    assert.throws(() => splitVolume(`/h:/data:${o}`, ex), usage(new RegExp(`unknown volume option "${o.split(',').find((x) => x !== 'ro')}"`)), o);
  }
  assert.throws(() => splitVolume('/h:/data:ro,rw', ex), usage(/conflict/));
  // a container path ending in :letters: written with its options it binds as before
  assert.equal(splitVolume('/h:/c/x:foo:rw', ex).target, '/c/x:foo');
});

test('splitVolume: HOST:relative is a usage error naming the container path, not a missing host path', () => {
  assert.throws(() => splitVolume('/h:data', hostHas(['/h'])), usage(/container path "data" must be absolute/));
  assert.throws(() => splitVolume('/h:data1', hostHas(['/h'])), usage(/container path "data1" must be absolute/));
  assert.throws(() => splitVolume('/h:RO', hostHas(['/h'])), usage(/container path "RO" must be absolute/));
  // a host file whose name has a colon still binds to itself
  assert.equal(splitVolume('/h:data', hostHas(['/h:data'])).target, '/h:data');
});

test('parseMount: docker --mount forms', () => {
  const ex = hostHas(['/h', '/h,with,commas']);
  assert.deepEqual(parseMount('type=bind,source=/h,target=/c', ex), { type: 'bind', source: '/h', target: '/c', readonly: false });
  assert.deepEqual(parseMount('type=bind,src=/h,dst=/c,readonly', ex), { type: 'bind', source: '/h', target: '/c', readonly: true });
  assert.deepEqual(parseMount('type=bind,source=/h,destination=/c,readonly=false', ex), { type: 'bind', source: '/h', target: '/c', readonly: false });
  assert.equal(parseMount('type=bind,source=/h,with,commas,target=/c', ex).source, '/h,with,commas');
  assert.throws(() => parseMount('type=volume,source=/h,target=/c', ex), /only type=bind/);
  assert.throws(() => parseMount('type=bind,target=/c', ex), /needs source/);
});
