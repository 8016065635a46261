import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as transport from '../../src/image/http.js';
import { closeConnections, httpRequest } from '../../src/image/http.js';
import { isNetworkError } from '../../src/image/registry.js';

/** The registry client's transport (undici): lazy loading, bodies, HEAD, keep-alive, timeouts, truncation. */
let server: http.Server;
let base: string;
const sockets = new Set<import('node:net').Socket>();

before(async () => {
  server = http.createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname === '/data') {
      const body = Buffer.alloc(300_000, 7);
      res.writeHead(200, { 'content-length': String(body.length), 'docker-content-digest': 'sha256:x' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } else if (u.pathname === '/small') {
      res.writeHead(404, { 'content-length': '9' }); res.end('not found');
    } else if (u.pathname === '/stall-headers') {
      // never answers
    } else if (u.pathname === '/stall-body') {
      res.writeHead(200, { 'content-length': '1000' }); res.write(Buffer.alloc(10));
    } else if (u.pathname === '/truncated') {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(5000), () => res.socket?.destroy());
    } else if (u.pathname === '/json') {
      res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"ok":true}');
    } else {
      res.writeHead(500); res.end();
    }
  });
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await closeConnections();
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

const opts = (method: 'GET' | 'HEAD' = 'GET', timeoutMs = 5000) => ({ method, headers: { 'user-agent': 'test' }, timeoutMs });

test('undici is loaded on the first request only, through its deep modules', async () => {
  assert.equal(transport.undiciLoad, undefined);
  const r = await httpRequest(`${base}/small`, opts());
  await r.body.dump();
  assert.equal(transport.undiciLoad, 'deep');
});

test('GET streams the whole body; HEAD has none; dump lets the connection be reused', async () => {
  let conns = 0;
  const count = () => { conns++; };
  server.on('connection', count);
  const r = await httpRequest(`${base}/data`, opts());
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['docker-content-digest'], 'sha256:x');
  let n = 0;
  for await (const c of r.body) { n += c.length; assert.ok(c.every((b) => b === 7)); }
  assert.equal(n, 300_000);
  const s = await httpRequest(`${base}/small`, opts());
  assert.equal(s.statusCode, 404);
  await s.body.dump();
  const again = await httpRequest(`${base}/small`, opts());
  assert.equal(again.statusCode, 404);
  await again.body.dump();
  server.off('connection', count);
  assert.equal(conns, 0, `${conns} new connections for 3 sequential requests after the first`);
  // (undici closes the connection after a HEAD, against servers that send a body anyway.)
  const h = await httpRequest(`${base}/data`, opts('HEAD'));
  assert.equal(h.statusCode, 200);
  assert.equal(h.headers['content-length'], '300000');
  await h.body.dump();
});

test('a server that never answers times out with a network error', async () => {
  const t = Date.now();
  await assert.rejects(httpRequest(`${base}/stall-headers`, opts('GET', 300)), (e: unknown) => {
    assert.equal((e as { code?: string }).code, 'ETIMEDOUT');
    assert.ok(isNetworkError(e));
    return true;
  });
  assert.ok(Date.now() - t < 4000);
});

test('a body that stalls or is cut short fails as a network error', async () => {
  const r = await httpRequest(`${base}/stall-body`, opts('GET', 300));
  await assert.rejects((async () => { for await (const _ of r.body) { /* drain */ } })(), (e: unknown) => isNetworkError(e));
  const t = await httpRequest(`${base}/truncated`, opts());
  let n = 0;
  await assert.rejects((async () => { for await (const c of t.body) n += c.length; })(), (e: unknown) => isNetworkError(e));
  assert.ok(n < 100_000);
});

test('connection refused is a network error', async () => {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  await assert.rejects(httpRequest(`http://127.0.0.1:${port}/`, opts()), (e: unknown) => isNetworkError(e));
});

test('the stream: data events, and a cut-short body closes without ending', async () => {
  const t = await httpRequest(`${base}/truncated`, opts());
  let n = 0;
  const outcome = await new Promise<string>((resolve) => {
    t.body.stream.on('data', (c: Buffer) => { n += c.length; });
    t.body.stream.once('end', () => resolve('end'));
    t.body.stream.once('error', () => undefined);
    t.body.stream.once('close', () => resolve(t.body.stream.readableEnded ? 'end' : 'cut'));
  });
  assert.equal(outcome, 'cut');
  assert.ok(n < 100_000);
  const j = await httpRequest(`${base}/json`, opts());
  assert.deepEqual(await j.body.json(), { ok: true });
});

test('the CLI bundle\'s undici (dist/bundle/undici.cjs) serves requests without loading node:http2 or node:tls', async () => {
  const { execFile } = await import('node:child_process');
  const path = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const bundle = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bundle', 'undici.cjs');
  // The child asks this test's server for /data with the bundled Agent and request API.
  const script = `
    const { Agent, request } = require(${JSON.stringify(bundle)});
    const u = new URL(${JSON.stringify(`${base}/data`)});
    const agent = new Agent();
    request.call(agent, { origin: u.origin, path: u.pathname, method: 'GET' }).then(async (r) => {
      let n = 0; for await (const c of r.body) n += c.length;
      const loaded = process.moduleLoadList.filter((m) => /^NativeModule (http2|tls)$/.test(m));
      console.log(JSON.stringify({ status: r.statusCode, n, loaded }));
      await agent.close();
    });`;
  const out = await new Promise<string>((resolve, reject) => execFile(process.execPath, ['-e', script], (e, so) => (e ? reject(e) : resolve(so))));
  assert.deepEqual(JSON.parse(out), { status: 200, n: 300_000, loaded: [] });
});

test('proxyHostFor: the proxy per scheme, never its credentials; loopback and unset = none', () => {
  const env = { https_proxy: 'http://u:s3cret@proxy.site:3128', http_proxy: 'http://plain.site:8080' };
  assert.equal(transport.proxyHostFor(new URL('https://registry-1.docker.io/v2/'), env), 'proxy.site:3128');
  assert.equal(transport.proxyHostFor(new URL('http://registry.lan:5000/v2/'), env), 'plain.site:8080');
  assert.equal(transport.proxyHostFor(new URL('https://quay.io/v2/'), { HTTP_PROXY: 'http://only-http:3128' }), 'only-http:3128', 'https falls back to the http proxy');
  assert.equal(transport.proxyHostFor(new URL('http://127.0.0.1:5000/v2/'), env), undefined);
  assert.equal(transport.proxyHostFor(new URL('https://quay.io/v2/'), {}), undefined);
  assert.equal(transport.proxySettings({}).httpsProxy, '', 'no proxy configured');
  assert.equal(transport.proxySettings({ HTTPS_PROXY: 'http://p:1' }).httpsProxy, 'http://p:1');
});

test('minorGc runs a young-generation collection (the pull frees its spent socket buffers with it)', async () => {
  const { minorGc } = await import('../../src/lazy.js');
  const { PerformanceObserver, constants } = await import('node:perf_hooks');
  const kinds: number[] = [];
  const obs = new PerformanceObserver((list) => { for (const e of list.getEntries()) kinds.push((e as unknown as { detail: { kind: number } }).detail.kind); });
  obs.observe({ entryTypes: ['gc'] });
  minorGc();
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), `gc kinds seen: ${kinds.join(',')}`);
});

test('after minorGc, new contexts (CWL expressions) still have no gc', async () => {
  const { minorGc } = await import('../../src/lazy.js');
  const vm = await import('node:vm');
  minorGc();
  assert.equal(vm.runInNewContext('typeof gc'), 'undefined');
});
