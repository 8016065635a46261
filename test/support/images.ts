import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, runAsUser } from './user.js';

/**
 * The fixture images built by test/fixtures/build-images.sh. Each one is an
 * OCI image layout `CACHE/<dir>` holding the single tag `<tag>`.
 */
export interface FixtureImage {
  /** Layout directory name under the cache. */
  dir: string;
  /** The one tag in that layout. */
  tag: string;
  /** True for an image index (push with `skopeo copy --all`). */
  index?: boolean;
  /** What it is, for humans. */
  about: string;
}

export const FIXTURE_IMAGES = {
  busybox: { dir: 'busybox', tag: 'latest', about: 'one layer: static busybox + applet links, /etc/passwd, /etc/group, /tmp; Cmd ["sh"]' },
  'busybox-zstd': { dir: 'busybox-zstd', tag: 'latest', about: 'busybox with its layer as application/vnd.oci.image.layer.v1.tar+zstd' },
  deb2: { dir: 'deb2', tag: 'latest', about: 'layer 1 debootstrap minbase bookworm, layer 2 python3-minimal + whiteout of /etc/issue.net; Cmd ["bash"]' },
  'debian:stable-slim': { dir: 'debian', tag: 'stable-slim', about: 'debootstrap minbase bookworm, one layer; Cmd ["bash"]' },
  'python:3-slim': { dir: 'python', tag: '3-slim', about: 'deb2 + /usr/local/bin/python{,3} -> /usr/bin/python3; Cmd ["python3"]' },
  'bash:4.4': { dir: 'bash', tag: '4.4', about: 'minbase + /usr/local/bin/bash + docker-entrypoint.sh; Entrypoint ["docker-entrypoint.sh"], Cmd ["bash"]' },
  'alpine:latest': { dir: 'alpine', tag: 'latest', about: 'busybox + /etc/alpine-release and /etc/os-release (no bash); Cmd ["/bin/sh"]' },
  'multi:latest': { dir: 'multi', tag: 'latest', index: true, about: 'OCI index: busybox manifest (linux/amd64) + a tiny different manifest (linux/arm64, /hello.txt)' },
} as const satisfies Record<string, FixtureImage>;

export type FixtureName = keyof typeof FIXTURE_IMAGES;

/** Short aliases accepted wherever a FixtureName is. */
const ALIASES: Record<string, FixtureName> = {
  'busybox:latest': 'busybox',
  'busybox-zstd:latest': 'busybox-zstd',
  'deb2:latest': 'deb2',
  debian: 'debian:stable-slim',
  python: 'python:3-slim',
  bash: 'bash:4.4',
  alpine: 'alpine:latest',
  multi: 'multi:latest',
};

export type FixtureRef = FixtureName | keyof typeof ALIASES;

export function fixtureImage(name: FixtureRef | string): FixtureImage & { name: FixtureName } {
  const key = (name in FIXTURE_IMAGES ? name : ALIASES[name]) as FixtureName | undefined;
  if (!key) throw new Error(`unknown fixture image ${JSON.stringify(name)}; known: ${Object.keys(FIXTURE_IMAGES).join(', ')}`);
  return { name: key, ...FIXTURE_IMAGES[key] };
}

/** The conformance stand-ins, with the names they are pushed under. */
export const CONFORMANCE_IMAGES: Array<{ image: FixtureName; dest: string }> = [
  { image: 'debian:stable-slim', dest: 'library/debian:stable-slim' },
  { image: 'python:3-slim', dest: 'library/python:3-slim' },
  { image: 'bash:4.4', dest: 'library/bash:4.4' },
  { image: 'alpine:latest', dest: 'library/alpine:latest' },
];

export const BUILD_SCRIPT = path.join(REPO, 'test', 'fixtures', 'build-images.sh');

let building: Promise<string> | undefined;

/**
 * The fixture cache directory, building it first if needed (root only; about a
 * minute cold, milliseconds when current). Runs the build script at most once
 * per process. Honours USERDOCK_FIXTURE_CACHE.
 */
export function fixtureCache(opts: { timeoutMs?: number } = {}): Promise<string> {
  building ??= new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let out = ''; let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); if (process.env.USERDOCK_FIXTURE_VERBOSE) process.stderr.write(b); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15 * 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const dir = out.trim().split('\n').pop() ?? '';
      if (code === 0 && dir && fs.existsSync(path.join(dir, '.script-hash'))) resolve(dir);
      else reject(new Error(`build-images.sh failed (code ${code}, signal ${signal}):\n${err.slice(-4000)}`));
    });
  });
  const p = building;
  p.catch(() => { if (building === p) building = undefined; });
  return p;
}

/** Where one fixture lives: its layout dir, tag and the skopeo `oci:` reference. */
export async function fixtureLayout(name: FixtureRef | string): Promise<{ layout: string; tag: string; ref: string; index: boolean }> {
  const img = fixtureImage(name);
  const cache = await fixtureCache();
  const layout = path.join(cache, img.dir);
  return { layout, tag: img.tag, ref: `oci:${layout}:${img.tag}`, index: !!('index' in img && img.index) };
}

/**
 * Unpack a fixture (not an index) into an OCI runtime bundle `dest`
 * (dest/rootfs, dest/config.json) with `umoci unpack`. With asUser, runs as
 * the unprivileged test user (`--rootless`), so the tree is owned by it;
 * dest must not exist yet and its parent must be writable by that user.
 */
export async function unpackFixture(name: FixtureRef | string, dest: string, opts: { asUser?: boolean; timeoutMs?: number } = {}): Promise<string> {
  const { layout, tag, index } = await fixtureLayout(name);
  if (index) throw new Error(`${name} is an image index; unpack one of its manifests instead`);
  const args = ['unpack', ...(opts.asUser ? ['--rootless'] : []), '--image', `${layout}:${tag}`, dest];
  if (opts.asUser) {
    const r = await runAsUser('umoci', args, { timeoutMs: opts.timeoutMs ?? 180_000 });
    if (r.code !== 0) throw new Error(`umoci ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr}`);
  } else {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('umoci', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
      const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 180_000);
      child.on('error', (e) => { clearTimeout(t); reject(e); });
      child.on('close', (code) => { clearTimeout(t); code === 0 ? resolve() : reject(new Error(`umoci ${args.join(' ')} failed (${code}): ${err}`)); });
    });
  }
  return path.join(dest, 'rootfs');
}
