/**
 * Build step: make dist/bundle/NAME.code.cache for each command (see
 * src/cli/bin.ts) by running it once with USERDOCK_CODE_CACHE=write, on the
 * path its users start most often, in a throw-away store:
 *  - userdock: `run --rootfs=TINY /bin/true`, TINY holding the host's
 *    /bin/true and the libraries ldd names (arguments, store, host facts,
 *    ladder, profile, validation, engine start); where no engine works it
 *    stops earlier, and the cache holds less;
 *  - cwl-run: a one-line CommandLineTool with --no-container;
 *  - the Slurm node script: its usage error;
 *  - undici.cjs (only that cache): `userdock pull` of a one-layer image from
 *    a throw-away registry on loopback, served by this script.
 * Nothing here is needed for correctness: without a cache each start compiles.
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { hostPlatform } from '../image/platform.js';

const sha256 = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/** A registry on 127.0.0.1 holding warm/up:latest: one empty layer. */
async function tinyRegistry(): Promise<{ host: string; close: () => void }> {
  const tar = Buffer.alloc(1024); // an empty tar archive
  const layer = zlib.gzipSync(tar);
  const config = Buffer.from(JSON.stringify({ ...hostPlatform(), config: {}, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha256(config) },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha256(layer) }],
  }));
  const blobs = new Map([[sha256(config), config], [sha256(layer), layer]]);
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    let body: Buffer | undefined;
    const headers: Record<string, string> = { 'docker-distribution-api-version': 'registry/2.0' };
    if (url === '/v2/') body = Buffer.from('{}');
    else if (url === '/v2/warm/up/manifests/latest') {
      body = manifest;
      Object.assign(headers, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json', 'docker-content-digest': sha256(manifest) });
    } else if (url.startsWith('/v2/warm/up/blobs/')) body = blobs.get(url.slice('/v2/warm/up/blobs/'.length));
    res.writeHead(body ? 200 : 404, { ...headers, 'content-length': String(body?.length ?? 0) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

/** A root holding /bin/true and the shared libraries it needs (copied from the host). */
function tinyRootfs(root: string): void {
  fs.mkdirSync(root, { recursive: true });
  const files = ['/bin/true'];
  const ldd = spawnSync('ldd', ['/bin/true'], { encoding: 'utf8' });
  for (const m of (ldd.stdout ?? '').matchAll(/(\/\S+) \(0x/g)) files.push(m[1]);
  for (const f of files) {
    try {
      fs.mkdirSync(path.join(root, path.dirname(f)), { recursive: true });
      fs.copyFileSync(fs.realpathSync(f), path.join(root, f));
      fs.chmodSync(path.join(root, f), 0o755);
    } catch { /* a missing file: the run stops earlier */ }
  }
  for (const d of ['proc', 'dev', 'sys', 'tmp']) fs.mkdirSync(path.join(root, d), { recursive: true });
}

const bundle = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bundle');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'userdock-code-cache-'));
try {
  const env = { ...process.env, USERDOCK_CODE_CACHE: 'write', USERDOCK_DIR: path.join(tmp, 'store'), HOME: tmp, XDG_CONFIG_HOME: path.join(tmp, 'config') };
  const tiny = path.join(tmp, 'tiny');
  tinyRootfs(tiny);
  fs.writeFileSync(path.join(tmp, 'echo.cwl'), [
    'cwlVersion: v1.2', 'class: CommandLineTool', 'baseCommand: echo',
    'inputs: { word: { type: string, inputBinding: { position: 1 } } }',
    'outputs: { out: { type: stdout } }', 'stdout: out.txt', '',
  ].join('\n'));
  const runs: Array<[string, string[]]> = [
    ['userdock', ['run', `--rootfs=${tiny}`, '/bin/true']],
    ['cwl-run', ['--no-container', '--quiet', '--outdir', path.join(tmp, 'out'), path.join(tmp, 'echo.cwl'), '--word', 'hello']],
    ['node', []],
  ];
  for (const [name, args] of runs) {
    const r = spawnSync(process.execPath, [path.join(bundle, `${name}.cjs`), ...args], { env, cwd: tmp, stdio: 'ignore', timeout: 60_000 });
    const made = fs.existsSync(path.join(bundle, `${name}.code.cache`));
    process.stdout.write(`code cache ${name}: ${made ? 'made' : `not made (exit ${r.status ?? r.signal})`}\n`);
  }
  // The pull is run asynchronously: this process serves its registry.
  const reg = await tinyRegistry();
  try {
    const child = spawn(process.execPath, [path.join(bundle, 'userdock.cjs'), '--quiet', 'pull', `${reg.host}/warm/up:latest`],
      { env: { ...env, USERDOCK_CODE_CACHE: 'write:undici' }, cwd: tmp, stdio: 'ignore', timeout: 60_000 });
    const code = await new Promise((resolve) => child.on('close', (c, sig) => resolve(c ?? sig)));
    const made = fs.existsSync(path.join(bundle, 'undici.cache'));
    process.stdout.write(`code cache undici: ${made ? 'made' : `not made (exit ${code})`}\n`);
  } finally {
    reg.close();
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
