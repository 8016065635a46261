import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference, familiarizeName, splitStoredName } from '../../src/image/reference.js';
import { UsageError } from '../../src/errors.js';

const D = 'sha256:' + 'a'.repeat(64);

test('docker.io names get library/ and latest', () => {
  const r = parseReference('debian');
  assert.equal(r.registry, 'docker.io');
  assert.equal(r.repository, 'library/debian');
  assert.equal(r.tag, 'latest');
  assert.equal(r.digest, undefined);
  assert.equal(r.canonical, 'docker.io/library/debian:latest');
  assert.equal(r.familiar, 'debian:latest');
  assert.equal(r.storeName, 'docker.io/library/debian:latest');
});

test('tags, namespaces, explicit docker.io and index.docker.io', () => {
  assert.equal(parseReference('debian:12').canonical, 'docker.io/library/debian:12');
  assert.equal(parseReference('docker.io/library/debian:stable-slim').canonical, 'docker.io/library/debian:stable-slim');
  assert.equal(parseReference('docker.io/debian:stable-slim').canonical, 'docker.io/library/debian:stable-slim');
  assert.equal(parseReference('index.docker.io/library/debian').canonical, 'docker.io/library/debian:latest');
  const u = parseReference('biocontainers/samtools:1.9');
  assert.equal(u.repository, 'biocontainers/samtools');
  assert.equal(u.familiar, 'biocontainers/samtools:1.9');
});

test('other registries: domains, ports, localhost, IPv6', () => {
  const q = parseReference(`quay.io/org/img@${D}`);
  assert.deepEqual([q.registry, q.repository, q.tag, q.digest], ['quay.io', 'org/img', undefined, D]);
  assert.equal(q.canonical, `quay.io/org/img@${D}`);
  assert.equal(q.storeName, `quay.io/org/img@${D}`);
  const p = parseReference('127.0.0.1:5000/x:y');
  assert.deepEqual([p.registry, p.repository, p.tag], ['127.0.0.1:5000', 'x', 'y']);
  assert.equal(p.familiar, '127.0.0.1:5000/x:y');
  const l = parseReference('localhost/x');
  assert.deepEqual([l.registry, l.repository, l.tag], ['localhost', 'x', 'latest']);
  assert.equal(parseReference('localhost:5000/a/b/c').repository, 'a/b/c');
  assert.equal(parseReference('[::1]:5000/x').registry, '[::1]:5000');
  assert.equal(parseReference('Example.com/x').registry, 'Example.com');
  // No dot, no port, not localhost: a namespace on docker.io
  assert.equal(parseReference('foo/bar').registry, 'docker.io');
  // A bare host:port parses as name:tag, as in docker
  assert.deepEqual([parseReference('localhost:5000').repository, parseReference('localhost:5000').tag], ['library/localhost', '5000']);
});

test('tag and digest together', () => {
  const r = parseReference(`debian:12@${D}`);
  assert.equal(r.tag, '12');
  assert.equal(r.digest, D);
  assert.equal(r.canonical, `docker.io/library/debian:12@${D}`);
  assert.equal(r.storeName, `docker.io/library/debian@${D}`);
});

test('valid separators in path components', () => {
  for (const ok of ['a.b/c_d', 'a__b', 'a-b', 'a---b', 'a/b.c-d__e', 'x/y/z/w:v1.0-rc_1', 'UPPER.example.com/x']) {
    assert.doesNotThrow(() => parseReference(ok), ok);
  }
});

test('malformed references get a clear usage error', () => {
  const bad = ['', ' ', 'Debian', 'debian:', 'debian@sha256:abc', ':tag', 'a//b', 'a/', '-a', 'a-', 'a..b', 'a___b',
    'debian:-x', `debian:${'t'.repeat(129)}`, 'debian@md5:' + 'a'.repeat(32), 'a b', 'http://x/y',
    'a'.repeat(64), 'localhost:abc/x', `${'a/'.repeat(130)}x`, 'debian@', 'x:y:z'];
  for (const b of bad) {
    assert.throws(() => parseReference(b), (e: unknown) => e instanceof UsageError && /invalid image reference/.test(e.message), JSON.stringify(b));
  }
  try { parseReference('Debian'); } catch (e) {
    assert.match((e as UsageError).message, /lowercase/);
    assert.ok((e as UsageError).hint);
  }
});

test('familiar names and stored names', () => {
  assert.equal(familiarizeName('docker.io/library/debian'), 'debian');
  assert.equal(familiarizeName('docker.io/x/y'), 'x/y');
  assert.equal(familiarizeName('docker.io/library/a/b'), 'library/a/b');
  assert.equal(familiarizeName('quay.io/x/y'), 'quay.io/x/y');
  assert.deepEqual(splitStoredName('127.0.0.1:5000/x:y'), { name: '127.0.0.1:5000/x', tag: 'y' });
  assert.deepEqual(splitStoredName(`q.io/x@${D}`), { name: 'q.io/x', digest: D });
});
