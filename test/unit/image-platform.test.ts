import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePlatform, selectPlatform, hostPlatform, formatPlatform, normalizePlatform } from '../../src/image/platform.js';
import type { Descriptor } from '../../src/image/store.js';
import { UsageError, UserError } from '../../src/errors.js';

const d = (n: number, os: string, architecture: string, variant?: string, annotations?: Record<string, string>): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, size: 1,
  platform: variant ? { os, architecture, variant } : { os, architecture }, annotations,
});

const list = [d(1, 'linux', 'amd64'), d(2, 'linux', 'arm', 'v6'), d(3, 'linux', 'arm', 'v7'), d(4, 'linux', 'arm64', 'v8'),
  d(5, 'unknown', 'unknown', undefined, { 'vnd.docker.reference.type': 'attestation-manifest' }), d(6, 'windows', 'amd64')];

test('parse platforms', () => {
  assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(parsePlatform('linux/aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
  for (const b of ['linux', 'linux/', '/amd64', 'a/b/c/d', 'linux amd64']) assert.throws(() => parsePlatform(b), UsageError, b);
  assert.equal(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' }), 'linux/arm/v7');
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'armhf' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
});

test('host platform is linux and a known architecture', () => {
  const h = hostPlatform();
  assert.equal(h.os, 'linux');
  assert.ok(h.architecture && h.architecture !== 'x64');
});

test('select from an index', () => {
  assert.equal(selectPlatform(list, { os: 'linux', architecture: 'amd64' }).digest, list[0].digest);
  assert.equal(selectPlatform(list, parsePlatform('linux/arm64')).digest, list[3].digest, 'arm64 matches arm64/v8');
  assert.equal(selectPlatform(list, parsePlatform('linux/arm/v6')).digest, list[1].digest);
  assert.equal(selectPlatform(list, parsePlatform('linux/arm')).digest, list[2].digest, 'no variant: highest');
  assert.equal(selectPlatform(list, parsePlatform('windows/amd64')).digest, list[5].digest);
  assert.equal(selectPlatform([d(7, 'linux', 'arm64')], parsePlatform('linux/arm64/v8')).digest, `sha256:${'7'.repeat(64)}`);
});

test('no match lists the available platforms, skipping attestations', () => {
  assert.throws(() => selectPlatform(list, parsePlatform('linux/s390x')), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /linux\/s390x/);
    assert.match(e.message, /linux\/amd64, linux\/arm\/v6, linux\/arm\/v7, linux\/arm64, windows\/amd64/);
    assert.doesNotMatch(e.message, /unknown/);
    return true;
  });
  assert.throws(() => selectPlatform(list, parsePlatform('linux/arm/v5')), UserError);
});
