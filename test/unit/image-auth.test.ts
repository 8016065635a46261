import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseWWWAuthenticate, saveCredentials, getCredentials, removeCredentials, authFilePath, credentialKey } from '../../src/image/auth.js';

test('WWW-Authenticate: bearer with realm, service, scope', () => {
  const c = parseWWWAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull"');
  assert.deepEqual(c, [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/debian:pull' } }]);
});

test('WWW-Authenticate: basic, unquoted values, spaces, escapes, several challenges', () => {
  assert.deepEqual(parseWWWAuthenticate('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  assert.deepEqual(parseWWWAuthenticate('Bearer realm=http://127.0.0.1:1/t , service=reg'),
    [{ scheme: 'bearer', params: { realm: 'http://127.0.0.1:1/t', service: 'reg' } }]);
  assert.deepEqual(parseWWWAuthenticate('Bearer realm="a\\"b",scope="repository:x/y:pull,push"'),
    [{ scheme: 'bearer', params: { realm: 'a"b', scope: 'repository:x/y:pull,push' } }]);
  const two = parseWWWAuthenticate('Basic realm="r", Bearer realm="https://t/token",service="s"');
  assert.equal(two.length, 2);
  assert.equal(two[0].scheme, 'basic');
  assert.deepEqual(two[1], { scheme: 'bearer', params: { realm: 'https://t/token', service: 's' } });
  assert.deepEqual(parseWWWAuthenticate(''), []);
});

test('credentials file: mode 0600, round trip, logout', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-auth-'));
  const cfg = path.join(dir, 'cfg');
  try {
    saveCredentials(cfg, '127.0.0.1:5000', { username: 'u', password: 'p:w"d' });
    assert.equal(fs.statSync(authFilePath(cfg)).mode & 0o777, 0o600);
    assert.deepEqual(getCredentials(cfg, '127.0.0.1:5000'), { username: 'u', password: 'p:w"d' });
    assert.equal(getCredentials(cfg, 'other:1'), undefined);
    saveCredentials(cfg, 'index.docker.io', { username: 'a', password: 'b' });
    assert.deepEqual(getCredentials(cfg, 'docker.io'), { username: 'a', password: 'b' });
    assert.equal(fs.readFileSync(authFilePath(cfg), 'utf8').includes('p:w'), false, 'password not stored in clear');
    assert.equal(removeCredentials(cfg, '127.0.0.1:5000'), true);
    assert.equal(getCredentials(cfg, '127.0.0.1:5000'), undefined);
    assert.equal(removeCredentials(cfg, '127.0.0.1:5000'), false);
    assert.equal(fs.statSync(authFilePath(cfg)).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(cfg), ['auth.json'], 'no temp files left');
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('credential keys', () => {
  assert.equal(credentialKey('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(credentialKey('registry-1.docker.io'), 'docker.io');
  assert.equal(credentialKey('Quay.io'), 'quay.io');
});
