import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startForwardProxy, type ForwardProxy } from '../support/forward-proxy.js';
import { startRegistry, pushImage, type Registry } from '../support/registry.js';
import { userdock, userTempDir } from '../support/user.js';

/**
 * Pulls through a site's forward proxy (https_proxy / http_proxy), as the
 * test user: an https registry with its own CA reached by a CONNECT tunnel
 * with proxy credentials, a plain http one by absolute-URI requests, and
 * loopback registries directly. The name registry.test resolves only in the
 * proxy (as on a node that reaches the internet only through it).
 */
const SECRET = 'pr0xy-S3cret';
let tlsReg: Registry;
let plainReg: Registry;
let proxy: ForwardProxy;
const port = (r: Registry) => r.host.split(':')[1];

before(async () => {
  tlsReg = await startRegistry({ tlsNames: ['registry.test'] });
  plainReg = await startRegistry();
  await pushImage(tlsReg, 'busybox', 'library/bb:1');
  await pushImage(plainReg, 'busybox', 'library/bb:1');
  proxy = await startForwardProxy({ hosts: { 'registry.test': '127.0.0.1' }, creds: `puser:${SECRET}` });
});
after(async () => { await proxy?.stop(); await tlsReg?.stop(); await plainReg?.stop(); });

function env(extra: Record<string, string> = {}) {
  const base = userTempDir('ud-proxy');
  return { USERDOCK_DIR: path.join(base, 'store'), USERDOCK_CONFIG_DIR: path.join(base, 'cfg'), ...extra };
}
const proxyUrl = (creds = `puser:${SECRET}`) => proxy.url.replace('http://', `http://${creds}@`);
function noSecret(r: { stdout: string; stderr: string }) {
  assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET), 'the proxy password never appears in output');
}

test('https registry through https_proxy (CONNECT, proxy credentials); its CA via NODE_EXTRA_CA_CERTS, else a clear error', { timeout: 300_000 }, async () => {
  const name = `registry.test:${port(tlsReg)}/library/bb:1`;
  const untrusted = await userdock(['pull', name], { env: env({ https_proxy: proxyUrl(), USERDOCK_RETRIES: '0' }), timeoutMs: 60_000 });
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, new RegExp(`cannot reach registry\\.test:${port(tlsReg)} through the proxy 127\\.0\\.0\\.1:\\d+: its TLS certificate is not trusted here`));
  assert.match(untrusted.stderr, /NODE_EXTRA_CA_CERTS=/);
  noSecret(untrusted);

  const tunnels = proxy.tunnels.length;
  const r = await userdock(['-D', 'pull', name], { env: env({ https_proxy: proxyUrl(), NODE_EXTRA_CA_CERTS: tlsReg.caPath! }), timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${name}\n`, 'the image keeps its registry name');
  assert.ok(proxy.tunnels.slice(tunnels).every((t) => t === `registry.test:${port(tlsReg)}`) && proxy.tunnels.length > tunnels, 'pulled through CONNECT tunnels');
  assert.ok(proxy.auth.includes(`puser:${SECRET}`), 'proxy credentials from the https_proxy URL');
  noSecret(r);

  const refused = await userdock(['pull', name], { env: env({ https_proxy: proxyUrl('puser:wrong'), NODE_EXTRA_CA_CERTS: tlsReg.caPath!, USERDOCK_RETRIES: '0' }), timeoutMs: 60_000 });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /the proxy 127\.0\.0\.1:\d+ refused the request to registry\.test:\d+ \(HTTP 407\)/);
  assert.match(refused.stderr, /https_proxy=http:\/\/USER:PASSWORD@host:port/);
});

test('plain http registry (marked insecure) through http_proxy: absolute-URI requests', { timeout: 120_000 }, async () => {
  const host = `registry.test:${port(plainReg)}`;
  const before = proxy.requests.length;
  const r = await userdock(['pull', `${host}/library/bb:1`], { env: env({ http_proxy: proxyUrl(), USERDOCK_INSECURE_REGISTRIES: host }), timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  const seen = proxy.requests.slice(before);
  assert.ok(seen.some((u) => u === `http://${host}/v2/library/bb/manifests/1`), seen.join('\n'));
  assert.ok(seen.some((u) => u.startsWith(`http://${host}/v2/library/bb/blobs/sha256:`)));
  const refused = await userdock(['pull', `${host}/library/bb:1`], { env: env({ http_proxy: proxyUrl('puser:wrong'), USERDOCK_INSECURE_REGISTRIES: host }), timeoutMs: 60_000 });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /the proxy 127\.0\.0\.1:\d+ refused the request to registry\.test:\d+ \(HTTP 407\)/);
});

test('loopback registries are reached directly even with a proxy set', { timeout: 120_000 }, async () => {
  const n = proxy.requests.length + proxy.tunnels.length + proxy.refused;
  const r = await userdock(['pull', `${plainReg.host}/library/bb:1`], { env: env({ http_proxy: proxyUrl(), https_proxy: proxyUrl(), HTTP_PROXY: proxyUrl() }), timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(proxy.requests.length + proxy.tunnels.length + proxy.refused, n, 'the proxy saw nothing');
});
