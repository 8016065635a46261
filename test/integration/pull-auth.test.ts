import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry, pushImage, type Registry } from '../support/registry.js';
import { userdock, userTempDir } from '../support/user.js';

/** Registries with htpasswd (basic) and token auth; login/logout; where credentials go. */
const regs: Registry[] = [];
after(async () => { for (const r of regs) await r.stop(); });

const PASS = 'S3cret-pa55word!';

function dirs() {
  const base = userTempDir('ud-auth');
  const store = path.join(base, 'store'); const cfg = path.join(base, 'cfg');
  return { store, cfg, env: { USERDOCK_DIR: store, USERDOCK_CONFIG_DIR: cfg } };
}

function noSecret(r: { stdout: string; stderr: string }) {
  assert.ok(!r.stdout.includes(PASS) && !r.stderr.includes(PASS), 'the password never appears in output');
}

test('htpasswd basic auth: pull refused, login (stdin), pull, logout', { timeout: 300_000 }, async () => {
  const reg = await startRegistry({ auth: 'htpasswd', users: { alice: PASS } });
  regs.push(reg);
  await pushImage(reg, 'busybox', 'private/bb:1');
  const { env, cfg } = dirs();
  const name = `${reg.host}/private/bb:1`;

  const denied = await userdock(['pull', name], { env, timeoutMs: 60_000 });
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, new RegExp(`userdock login ${reg.host.replace(/\./g, '\\.')}`));

  const pw = await userdock(['login', '-u', 'alice', '-p', PASS, reg.host], { env, timeoutMs: 60_000 });
  assert.equal(pw.code, 2, 'no password on the command line');
  assert.match(pw.stderr, /password-stdin/);

  const wrong = await userdock(['login', '--username', 'alice', '--password-stdin', reg.host], { env, input: 'nope\n', timeoutMs: 60_000 });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /login to .* failed/);
  assert.ok(!fs.existsSync(path.join(cfg, 'auth.json')), 'nothing stored for a failed login');

  const good = await userdock(['login', '--username', 'alice', '--password-stdin', reg.host], { env, input: `${PASS}\n`, timeoutMs: 60_000 });
  assert.equal(good.code, 0, good.stderr);
  noSecret(good);
  const st = fs.statSync(path.join(cfg, 'auth.json'));
  assert.equal(st.mode & 0o777, 0o600);
  assert.ok(!fs.readFileSync(path.join(cfg, 'auth.json'), 'utf8').includes(PASS), 'stored encoded, like docker');

  const pulled = await userdock(['-D', 'pull', name], { env, timeoutMs: 120_000 });
  assert.equal(pulled.code, 0, pulled.stderr);
  noSecret(pulled);
  assert.doesNotMatch(pulled.stderr, /Basic [A-Za-z0-9+/=]{8,}/, 'debug output carries no Authorization header');

  const out = await userdock(['logout', reg.host], { env });
  assert.equal(out.code, 0);
  assert.ok(!fs.readFileSync(path.join(cfg, 'auth.json'), 'utf8').includes(reg.host));
  const again = await userdock(['pull', '--quiet', `${reg.host}/private/bb:2`], { env: { ...env, USERDOCK_PULL_TTL: '0' }, timeoutMs: 60_000 });
  assert.equal(again.code, 1);
});

test('token auth: anonymous bearer flow', { timeout: 300_000 }, async () => {
  const reg = await startRegistry({ auth: 'token' });
  regs.push(reg);
  await pushImage(reg, 'busybox', 'library/busybox:latest');
  const { env } = dirs();
  const r = await userdock(['pull', `${reg.host}/library/busybox`], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  const v = await userdock(['verify', `${reg.host}/library/busybox`], { env });
  assert.equal(v.code, 0, v.stderr);
});

test('token auth with stored credentials (no anonymous pull)', { timeout: 300_000 }, async () => {
  const reg = await startRegistry({ auth: 'token', users: { bob: PASS }, anonymousPull: false });
  regs.push(reg);
  await pushImage(reg, 'busybox-zstd', 'team/bbz:1');
  const { env, cfg } = dirs();
  const name = `${reg.host}/team/bbz:1`;
  const denied = await userdock(['pull', name], { env, timeoutMs: 60_000 });
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /userdock login/);
  const wrong = await userdock(['login', '-u', 'bob', '--password-stdin', reg.host], { env, input: 'bad', timeoutMs: 60_000 });
  assert.equal(wrong.code, 1);
  const good = await userdock(['login', '-u', 'bob', '--password-stdin', reg.host], { env, input: PASS, timeoutMs: 60_000 });
  assert.equal(good.code, 0, good.stderr);
  assert.equal(fs.statSync(path.join(cfg, 'auth.json')).mode & 0o777, 0o600);
  const r = await userdock(['pull', name], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  noSecret(r);
  const reqs = reg.tokenIssuer!.requests;
  assert.ok(reqs.some((q) => q.authenticated && q.status === 200 && q.scopes.some((s) => s.includes('team/bbz'))),
    'an authenticated token request for the repository');
});
