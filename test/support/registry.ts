import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CONFORMANCE_IMAGES, fixtureImage, fixtureLayout, type FixtureRef } from './images.js';
import { startTokenIssuer, type TokenIssuer } from './token-issuer.js';

export { fixtureCache, fixtureLayout, FIXTURE_IMAGES, CONFORMANCE_IMAGES } from './images.js';

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface RegistryOptions {
  auth?: RegistryAuth;
  /** user -> password, for htpasswd and token auth. Default { testuser: 'testpass' }. */
  users?: Record<string, string>;
  /** token auth: may anonymous clients pull? Default true (like Docker Hub). */
  anonymousPull?: boolean;
  /** Serve https with a self-signed certificate for these DNS names (and 127.0.0.1). */
  tlsNames?: string[];
}

export interface Registry {
  /** '127.0.0.1:PORT' */
  host: string;
  /** 'http://127.0.0.1:PORT' (https with tlsNames) */
  url: string;
  /** With tlsNames: the PEM file of its (self-signed) certificate, world-readable. */
  caPath?: string;
  /** Temp dir holding config.yml, htpasswd, data/ (storage) and registry.log. */
  dir: string;
  auth: RegistryAuth;
  users: Record<string, string>;
  /** 'user:pass' of the first user (for skopeo --creds), undefined when auth is 'none'. */
  creds?: string;
  /** The token server, when auth is 'token'. */
  tokenIssuer?: TokenIssuer;
  /** The registry's log so far. */
  log(): string;
  stop(): Promise<void>;
}

/** Registries still running; killed if the test process exits without stop(). */
const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => { for (const c of live) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function waitForV2(url: string, child: ChildProcess, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}):\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
    }
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const mod = url.startsWith('https:') ? https : http;
        const req = mod.get(`${url}/v2/`, { rejectUnauthorized: false, timeout: 1000 }, (r) => { r.resume(); resolve(r.statusCode ?? 0); });
        req.on('error', reject); req.on('timeout', () => req.destroy(new Error('timeout')));
      });
      if (status === 200 || status === 401) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry at ${url} did not answer /v2/ within ${timeoutMs} ms:\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
}

/**
 * Start Debian's docker-registry (distribution 2.8) on 127.0.0.1 with
 * filesystem storage in a temp dir. auth: 'none' (default), 'htpasswd'
 * (bcrypt via `htpasswd -Bbn`) or 'token' (a startTokenIssuer() server).
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const auth = opts.auth ?? 'none';
  const users = opts.users ?? { testuser: 'testpass' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-registry-'));
  fs.mkdirSync(path.join(dir, 'data'));
  let tokenIssuer: TokenIssuer | undefined;
  let authYaml = '';
  if (auth === 'htpasswd') {
    const lines = Object.entries(users).map(([u, p]) => execFileSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' }).trim());
    fs.writeFileSync(path.join(dir, 'htpasswd'), lines.join('\n') + '\n');
    authYaml = `auth:\n  htpasswd:\n    realm: userdock-test\n    path: ${path.join(dir, 'htpasswd')}\n`;
  } else if (auth === 'token') {
    tokenIssuer = await startTokenIssuer({ users, anonymousPull: opts.anonymousPull });
    authYaml = `auth:\n  token:\n    realm: ${tokenIssuer.realm}\n    service: ${tokenIssuer.service}\n    issuer: ${tokenIssuer.issuer}\n    rootcertbundle: ${tokenIssuer.certPath}\n`;
  }
  let tlsYaml = '';
  let caPath: string | undefined;
  if (opts.tlsNames) {
    caPath = path.join(dir, 'cert.pem');
    const san = [...opts.tlsNames.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '30', '-subj', `/CN=${opts.tlsNames[0]}`,
      '-addext', `subjectAltName=${san}`, '-keyout', path.join(dir, 'key.pem'), '-out', caPath], { stdio: 'pipe', timeout: 60_000 });
    fs.chmodSync(dir, 0o755); fs.chmodSync(caPath, 0o644);
    tlsYaml = `  tls:\n    certificate: ${caPath}\n    key: ${path.join(dir, 'key.pem')}`;
  }
  const logFile = path.join(dir, 'registry.log');
  let lastErr: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const url = `${opts.tlsNames ? 'https' : 'http'}://${host}`;
    const config = [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: false',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: ${host}`,
      '  secret: userdock-test-secret',
      '  headers:',
      '    X-Content-Type-Options: [nosniff]',
      tlsYaml,
      authYaml,
    ].join('\n');
    const configPath = path.join(dir, 'config.yml');
    fs.writeFileSync(configPath, config);
    const out = fs.openSync(logFile, 'a');
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_')) delete env[k];
    const child = spawn('/usr/bin/docker-registry', ['serve', configPath], { stdio: ['ignore', out, out], env });
    fs.closeSync(out);
    track(child);
    try {
      await waitForV2(url, child, logFile, 20_000);
    } catch (e) {
      lastErr = e;
      child.kill('SIGKILL');
      if (/address already in use/.test(fs.readFileSync(logFile, 'utf8'))) continue;
      break;
    }
    const [first] = Object.entries(users);
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      await tokenIssuer?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    };
    return {
      host, url, dir, auth, users, tokenIssuer, stop, caPath,
      creds: auth === 'none' || !first ? undefined : `${first[0]}:${first[1]}`,
      log: () => { try { return fs.readFileSync(logFile, 'utf8'); } catch { return ''; } },
    };
  }
  await tokenIssuer?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}

export interface PushOptions {
  /** Manifest format in the registry. Default: as built (OCI). */
  format?: 'v2s2' | 'oci';
  /** 'user:pass'. Default: the registry's own creds (first user) when it has auth. */
  creds?: string;
  /** Push to this host instead of reg.host (a fault proxy, say). */
  host?: string;
  timeoutMs?: number;
}

/** Run a command, resolve with stdout, reject with stderr in the message. */
export function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`), { stdout, stderr, code: (err as NodeJS.ErrnoException).code }));
      else resolve({ stdout, stderr });
    });
  });
}

/**
 * Push a fixture image into the registry:
 *   skopeo copy --dest-tls-verify=false [--format F] [--dest-creds C] [--all] oci:CACHE/DIR:TAG docker://HOST/DEST
 * dest is 'repo/name:tag' (e.g. 'library/debian:stable-slim'); without a tag
 * it gets the fixture's own tag. Returns the pushed reference 'HOST/DEST'.
 */
export async function pushImage(reg: Registry, image: FixtureRef | string, dest: string, opts: PushOptions = {}): Promise<string> {
  const img = fixtureImage(image);
  const { ref, index } = await fixtureLayout(img.name);
  const lastSeg = dest.slice(dest.lastIndexOf('/') + 1);
  const fullDest = lastSeg.includes(':') || lastSeg.includes('@') ? dest : `${dest}:${img.tag}`;
  const target = `${opts.host ?? reg.host}/${fullDest}`;
  const args = ['copy', '--quiet', '--dest-tls-verify=false', '--retry-times', '0'];
  if (opts.format) args.push('--format', opts.format);
  const creds = opts.creds ?? reg.creds;
  if (creds) args.push('--dest-creds', creds);
  if (index) args.push('--all');
  args.push(ref, `docker://${target}`);
  await run('skopeo', args, opts.timeoutMs ?? 180_000);
  return target;
}

/** Push debian:stable-slim, python:3-slim, bash:4.4, alpine:latest as library/<name>:<tag>. */
export async function pushConformanceImages(reg: Registry, opts: PushOptions = {}): Promise<string[]> {
  const out: string[] = [];
  for (const { image, dest } of CONFORMANCE_IMAGES) out.push(await pushImage(reg, image, dest, opts));
  return out;
}

/** `skopeo inspect --tls-verify=false [--creds C] [--raw] docker://REF` parsed as JSON. */
export async function skopeoInspect(ref: string, opts: { creds?: string; raw?: boolean; config?: boolean; timeoutMs?: number } = {}): Promise<any> {
  const args = ['inspect', '--tls-verify=false', '--retry-times', '0'];
  if (opts.creds) args.push('--creds', opts.creds); else args.push('--no-creds');
  if (opts.raw) args.push('--raw');
  if (opts.config) args.push('--config');
  args.push(`docker://${ref}`);
  const { stdout } = await run('skopeo', args, opts.timeoutMs ?? 60_000);
  return JSON.parse(stdout);
}
