import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseMirrorsEnv, parseConfigFile, loadRegistryConfig, endpointsFor, isLoopback, originEndpoint, isInsecure } from '../../src/image/config.js';
import { UserError } from '../../src/errors.js';

test('USERDOCK_MIRRORS syntax', () => {
  assert.deepEqual(parseMirrorsEnv('docker.io=http://127.0.0.1:5000;quay.io=https://m1,https://m2/'), {
    'docker.io': { endpoints: ['http://127.0.0.1:5000'], origin: true },
    'quay.io': { endpoints: ['https://m1', 'https://m2'], origin: true },
  });
  assert.deepEqual(parseMirrorsEnv(' index.docker.io = m.example.org/prefix , noorigin ;'), {
    'docker.io': { endpoints: ['https://m.example.org/prefix'], origin: false },
  });
  assert.deepEqual(parseMirrorsEnv(''), {});
  assert.throws(() => parseMirrorsEnv('docker.io'), UserError);
  assert.throws(() => parseMirrorsEnv('docker.io=ftp://x'), UserError);
});

test('registries.json', () => {
  const c = parseConfigFile(JSON.stringify({
    mirrors: { 'docker.io': ['http://127.0.0.1:5000'], 'quay.io': { endpoints: ['https://m1'], origin: false }, 'r.io': 'https://m3' },
    insecure: ['reg.lan:5000'],
  }), 'f');
  assert.deepEqual(c.mirrors['docker.io'], { endpoints: ['http://127.0.0.1:5000'], origin: true });
  assert.deepEqual(c.mirrors['quay.io'], { endpoints: ['https://m1'], origin: false });
  assert.deepEqual(c.mirrors['r.io'], { endpoints: ['https://m3'], origin: true });
  assert.deepEqual(c.insecure, ['reg.lan:5000']);
  assert.throws(() => parseConfigFile('{', 'f'), UserError);
  assert.throws(() => parseConfigFile('{"mirrors":{"x":[1]}}', 'f'), UserError);
});

test('env overrides the file per registry; insecure list merges', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-cfg-'));
  try {
    fs.writeFileSync(path.join(dir, 'registries.json'), JSON.stringify({ mirrors: { 'docker.io': ['https://file'], 'quay.io': ['https://q'] }, insecure: ['a:1'] }));
    const c = loadRegistryConfig(dir, { USERDOCK_MIRRORS: 'docker.io=http://127.0.0.1:9', USERDOCK_INSECURE_REGISTRIES: 'b:2,c' });
    assert.deepEqual(c.mirrors['docker.io'].endpoints, ['http://127.0.0.1:9']);
    assert.deepEqual(c.mirrors['quay.io'].endpoints, ['https://q']);
    assert.deepEqual(c.insecure, ['a:1', 'b:2', 'c']);
    assert.deepEqual(loadRegistryConfig(path.join(dir, 'none'), {}), { mirrors: {}, insecure: [] });
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('endpoints: mirrors then origin; noorigin ends the chain; http only for loopback or insecure', () => {
  const cfg = { mirrors: parseMirrorsEnv('docker.io=http://127.0.0.1:5000,https://m2;quay.io=https://q1,noorigin'), insecure: ['reg.lan:5000'] };
  assert.deepEqual(endpointsFor('docker.io', cfg).map((e) => [e.url, e.mirror]),
    [['http://127.0.0.1:5000', true], ['https://m2', true], ['https://registry-1.docker.io', false]]);
  assert.deepEqual(endpointsFor('quay.io', cfg).map((e) => e.url), ['https://q1']);
  assert.deepEqual(endpointsFor('ghcr.io', cfg).map((e) => e.url), ['https://ghcr.io']);
  assert.equal(originEndpoint('127.0.0.1:5000', cfg), 'http://127.0.0.1:5000');
  assert.equal(originEndpoint('localhost:5000', cfg), 'http://localhost:5000');
  assert.equal(originEndpoint('[::1]:5000', cfg), 'http://[::1]:5000');
  assert.equal(originEndpoint('127.9.8.7', cfg), 'http://127.9.8.7');
  assert.equal(originEndpoint('reg.lan:5000', cfg), 'http://reg.lan:5000');
  assert.equal(originEndpoint('reg.lan:6000', cfg), 'https://reg.lan:6000');
  assert.equal(originEndpoint('10.0.0.1:5000', cfg), 'https://10.0.0.1:5000');
  assert.equal(originEndpoint('128.0.0.1', cfg), 'https://128.0.0.1');
  assert.equal(isLoopback('localhost'), true);
  assert.equal(isLoopback('127.0.0.1:5000'), true);
  assert.equal(isLoopback('1270.0.0.1'), false);
  assert.equal(isInsecure('notlocalhost.example', cfg), false);
});
