import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { importModule } from '../lazy.js';
import type { Context } from '../cli/context.js';
import { EXIT, UserError } from '../errors.js';
import { loadHostFacts } from './facts.js';

/**
 * `setup --install-engines`: put engine binaries into <store>/engines so
 * sites without proot still get a working ladder.
 *  - with --url (or USERDOCK_ENGINES_URL): fetch static binaries
 *    URL/<name>-<arch> (e.g. proot-x86_64) into <store>/engines/bin,
 *    verified against URL/SHA256SUMS when the server has one;
 *  - else where `apt-get download` works: the Debian packages, unpacked with
 *    `dpkg-deb -x` into <store>/engines/root (their libs via LD_LIBRARY_PATH).
 */
export const ENGINE_PACKAGES = ['proot', 'libtalloc2'];
export const STATIC_ENGINES = ['proot'];

function archName(): string {
  return ({ x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64le' } as Record<string, string>)[os.arch()] ?? os.arch();
}

async function fetchBuf(url: string): Promise<Buffer | undefined> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 60_000);
  try {
    const r = await fetch(url, { signal: ctl.signal });
    if (r.status === 404) return undefined;
    if (!r.ok) throw new UserError(`cannot fetch ${url}: HTTP ${r.status}`, 1, 'check --url / USERDOCK_ENGINES_URL');
    return Buffer.from(await r.arrayBuffer());
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot fetch ${url}: ${(e as Error).message}`, 1, 'check --url / USERDOCK_ENGINES_URL and the network');
  } finally { clearTimeout(timer); }
}

export async function installFromUrl(ctx: Context, base: string): Promise<string[]> {
  const bin = path.join(ctx.storeDir, 'engines', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const sums = await fetchBuf(`${base.replace(/\/$/, '')}/SHA256SUMS`);
  const want = new Map<string, string>();
  if (sums) for (const line of sums.toString('utf8').split('\n')) { const m = /^([a-f0-9]{64})\s+\*?(\S+)$/.exec(line.trim()); if (m) want.set(m[2], m[1]); }
  const got: string[] = [];
  for (const name of STATIC_ENGINES) {
    const file = `${name}-${archName()}`;
    const data = await fetchBuf(`${base.replace(/\/$/, '')}/${file}`);
    if (!data) continue;
    const hex = crypto.createHash('sha256').update(data).digest('hex');
    if (want.size && want.get(file) !== hex) {
      throw new UserError(`${file} from ${base} does not match its SHA256SUMS entry`, 1, 'the download is damaged or the server is wrong; nothing was installed');
    }
    const tmp = path.join(bin, `.${name}.${process.pid}`);
    fs.writeFileSync(tmp, data, { mode: 0o755 });
    fs.renameSync(tmp, path.join(bin, name));
    got.push(name);
  }
  if (!got.length) throw new UserError(`no engine binaries found at ${base} (looked for ${STATIC_ENGINES.map((n) => `${n}-${archName()}`).join(', ')})`, 1);
  return got;
}

/**
 * The helper tools (apt-get, dpkg-deb) run through execa. This module is
 * loaded only by `setup --install-engines`: execa costs ~75 ms of CPU, fine
 * for a one-shot setup step, not for the `run` path (engines are launched
 * with node's spawn).
 */
async function tool(cmd: string, args: string[], opts: { cwd?: string; timeout: number }): Promise<{ ok: boolean; why: string }> {
  const { execa } = await importModule<typeof import('execa')>('execa');
  const r = await execa(cmd, args, { ...opts, reject: false, stdin: 'ignore', stdout: 'ignore', stripFinalNewline: true });
  const last = (r.stderr || '').trim().split('\n').slice(-1)[0];
  return { ok: !r.failed, why: last || (r.shortMessage ?? '') };
}

export async function installFromApt(ctx: Context): Promise<string[]> {
  const root = path.join(ctx.storeDir, 'engines', 'root');
  const dl = fs.mkdtempSync(path.join(os.tmpdir(), 'userdock-debs-'));
  try {
    const r = await tool('apt-get', ['download', ...ENGINE_PACKAGES], { cwd: dl, timeout: 300_000 });
    if (!r.ok) throw new UserError(`apt-get download failed: ${r.why}`, 1,
      'give --url=URL of a server with static engine binaries (proot-x86_64), or set USERDOCK_ENGINES_URL');
    fs.mkdirSync(root, { recursive: true });
    for (const deb of fs.readdirSync(dl).filter((f) => f.endsWith('.deb'))) {
      const x = await tool('dpkg-deb', ['-x', path.join(dl, deb), root], { timeout: 120_000 });
      if (!x.ok) throw new UserError(`dpkg-deb -x ${deb} failed: ${x.why}`, 1);
    }
    return ENGINE_PACKAGES.filter((p) => !p.startsWith('lib'));
  } finally { fs.rmSync(dl, { recursive: true, force: true }); }
}

export async function installEngines(ctx: Context, opts: { url?: string; force?: boolean } = {}): Promise<string[]> {
  let got: string[];
  if (opts.url) got = await installFromUrl(ctx, opts.url);
  else {
    const hasApt = (await tool('apt-get', ['--version'], { timeout: 5000 })).ok && (await tool('dpkg-deb', ['--version'], { timeout: 5000 })).ok;
    if (!hasApt) throw new UserError('no apt-get/dpkg-deb on this host and no --url given', EXIT.usage, 'give --url=URL of a server with static engine binaries, or set USERDOCK_ENGINES_URL');
    got = await installFromApt(ctx);
  }
  loadHostFacts(ctx.storeDir, ctx.env, true); // re-probe with the new binaries
  return got;
}
