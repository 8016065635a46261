import { UsageError, UserError } from '../errors.js';
import { readline } from '../lazy.js';
import { openStore, type Image } from '../image/store.js';
import { freshStoredImage } from '../image/fresh.js';
import { familiarizeName, parseReference, splitStoredName } from '../image/reference.js';
import { formatPlatform } from '../image/platform.js';
import { humanSize } from '../image/progress.js';
import { credentialKey, removeCredentials, saveCredentials } from '../image/auth.js';
import { loadRegistryConfig, originEndpoint } from '../image/config.js';
import { bool, parseArgs, str } from './args.js';
import type { Command } from './command.js';
import type { Context } from './context.js';
import { verifyPristineTree } from '../rootfs/index.js';

// The registry client and the image operations load on demand: a `pull` of
// an image the registry confirmed within USERDOCK_PULL_TTL (what cwltool
// runs before every step) needs only the store.
const images = () => import('../image/images.js');
const registryClient = () => import('../image/registry.js');

function out(s: string): void { process.stdout.write(s.endsWith('\n') ? s : s + '\n'); }

async function needImage(ctx: Context, name: string): Promise<Image> {
  const img = (await images()).findImage(openStore(ctx.storeDir), name);
  if (!img) throw new UserError(`no such image: ${name} in ${ctx.storeDir}`, 1, `pull it first: 'userdock pull ${name}'`);
  return img;
}

function ago(iso: string | undefined): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return 'N/A';
  const s = Math.max(0, (Date.now() - t) / 1000);
  const units: Array<[number, string]> = [[365 * 86400, 'year'], [30 * 86400, 'month'], [7 * 86400, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [n, u] of units) if (s >= n) { const k = Math.floor(s / n); return `${k} ${u}${k > 1 ? 's' : ''} ago`; }
  return 'less than a minute ago';
}

function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i] + 3))).join('').trimEnd()).join('\n');
}

const pullCmd: Command = {
  summary: `Download an image into the store. Mirrors: USERDOCK_MIRRORS or <configDir>/registries.json.
An image already present costs one request (or none when pulled by digest);
none either when the registry confirmed the tag less than USERDOCK_PULL_TTL
seconds ago (default 300; 0 = always ask).
If the registry is unreachable, the stored image is used with a warning.`,
  usage: 'userdock pull [--platform=os/arch[/variant]] [--quiet|-q] IMAGE',
  async run(ctx, argv) {
    const p = parseArgs(argv, { platform: { kind: 'string' }, quiet: { kind: 'bool', aliases: ['-q'] },
      'all-tags': { kind: 'bool', aliases: ['-a'] }, index: { kind: 'string' }, registry: { kind: 'string' },
      'disable-content-trust': { kind: 'bool' } }, 'pull');
    if (p.positional.length !== 1) throw new UsageError('pull: expected exactly one IMAGE', pullCmd.usage);
    if (bool(p, 'all-tags')) throw new UsageError('pull: --all-tags is not supported', 'pull the tags you need one by one');
    let name = p.positional[0];
    const reg = str(p, 'registry');
    if (reg) {
      const host = reg.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
      const r = parseReference(name);
      if (r.registry === 'docker.io' && !name.startsWith('docker.io/')) name = `${host}/${name}`;
    }
    const c: Context = { ...ctx, quiet: ctx.quiet || bool(p, 'quiet') };
    const platform = str(p, 'platform');
    const fresh = freshStoredImage(c, name, { platform });
    if (fresh && ctx.debug) process.stderr.write(`debug: ${name}: confirmed by its registry at ${fresh.ref.checked}, within USERDOCK_PULL_TTL: no request\n`);
    const r = fresh ? { image: fresh, upToDate: true } : await (await import('../image/pull.js')).pull(c, name, { platform });
    if (!c.quiet && process.stderr.isTTY) {
      process.stderr.write(`Digest: ${r.image.ref.sourceDigest ?? r.image.ref.digest}\n`);
      process.stderr.write(r.upToDate ? `Status: Image is up to date for ${parseReference(name).familiar}\n`
        : `Status: Downloaded newer image for ${parseReference(name).familiar}\n`);
    }
    out(parseReference(name).canonical);
    return 0;
  },
};

const imagesCmd: Command = {
  summary: 'List the images in the store, with their sizes (compressed blobs).',
  usage: 'userdock images [--json] [--quiet|-q] [--no-trunc] [--digests] [--all|-a]',
  async run(ctx, argv) {
    const p = parseArgs(argv, { json: { kind: 'bool' }, quiet: { kind: 'bool', aliases: ['-q'] }, 'no-trunc': { kind: 'bool' },
      digests: { kind: 'bool' }, all: { kind: 'bool', aliases: ['-a'] }, long: { kind: 'bool', aliases: ['-l'] } }, 'images');
    const filter = p.positional[0];
    const store = openStore(ctx.storeDir);
    const { imageSize } = await images();
    const items: Array<{ stored: string; repository: string; tag?: string; digest?: string; img?: Image }> = [];
    for (const ref of store.listRefs()) {
      const { name, tag, digest } = splitStoredName(ref.name);
      let img: Image | undefined;
      try { img = store.loadImage(ref); } catch { /* broken ref */ }
      const repository = familiarizeName(name);
      if (filter && repository !== filter && name !== filter && repository !== filter.split(':')[0]) continue;
      items.push({ stored: ref.name, repository, tag, digest, img });
    }
    if (bool(p, 'json')) {
      out(JSON.stringify(items.map((i) => ({
        name: i.stored, repository: i.repository, tag: i.tag ?? null, digest: i.img?.ref.sourceDigest ?? i.digest ?? null,
        manifestDigest: i.img?.ref.digest ?? null, id: i.img?.id ?? null, size: i.img ? imageSize(i.img) : null,
        created: i.img?.config.created ?? null, platform: i.img?.ref.platform ? formatPlatform(i.img.ref.platform) : null,
      })), null, 2));
      return 0;
    }
    const noTrunc = bool(p, 'no-trunc');
    const id = (i: (typeof items)[number]) => (i.img ? (noTrunc ? i.img.id : i.img.id.slice(7, 19)) : '<missing>');
    if (bool(p, 'quiet')) {
      out([...new Set(items.map(id))].join('\n'));
      return 0;
    }
    const digests = bool(p, 'digests');
    const rows = [['REPOSITORY', 'TAG', ...(digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE']];
    for (const i of items) {
      rows.push([i.repository, i.tag ?? '<none>', ...(digests ? [i.img?.ref.sourceDigest ?? i.digest ?? '<none>'] : []), id(i),
        ago(i.img?.config.created), i.img ? humanSize(imageSize(i.img)) : 'N/A']);
    }
    out(table(rows));
    return 0;
  },
};

const inspectCmd: Command = {
  summary: `Show an image's configuration and layers; --json gives the raw config and manifest.
With -p, print the root directory of each CONTAINER instead (as udocker does).`,
  usage: 'userdock inspect [--json] IMAGE...\n       userdock inspect -p CONTAINER...',
  async run(ctx, argv) {
    const p = parseArgs(argv, { json: { kind: 'bool' }, format: { kind: 'string', aliases: ['-f'] },
      path: { kind: 'bool', aliases: ['-p'] } }, 'inspect');
    if (!p.positional.length) throw new UsageError(`inspect: expected ${bool(p, 'path') ? 'CONTAINER' : 'IMAGE'}`, inspectCmd.usage);
    if (bool(p, 'path')) {
      const { containerRootfsPath } = await import('../rootfs/index.js');
      out(p.positional.map((c) => containerRootfsPath(ctx, c)).join('\n'));
      return 0;
    }
    const imgs = await Promise.all(p.positional.map((n) => needImage(ctx, n)));
    const { imageSize } = await images();
    if (bool(p, 'json') || str(p, 'format')) {
      const docs = imgs.map((img) => ({
        name: img.ref.name, id: img.id, digest: img.ref.digest, sourceDigest: img.ref.sourceDigest ?? null,
        platform: img.ref.platform ?? null, config: img.config, manifest: img.manifest,
      }));
      out(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2));
      return 0;
    }
    const blocks: string[] = [];
    for (const img of imgs) {
      const c = img.config.config ?? {};
      const lines = [
        `Name:        ${img.ref.name}`,
        `Id:          ${img.id}`,
        `Digest:      ${img.ref.sourceDigest ?? img.ref.digest}`,
        ...(img.ref.sourceDigest && img.ref.sourceDigest !== img.ref.digest ? [`Manifest:    ${img.ref.digest}`] : []),
        `Platform:    ${img.ref.platform ? formatPlatform(img.ref.platform) : `${img.config.os ?? '?'}/${img.config.architecture ?? '?'}`}`,
        `Created:     ${img.config.created ?? 'N/A'}`,
        `User:        ${c.User ?? ''}`,
        `WorkingDir:  ${c.WorkingDir ?? ''}`,
        `Entrypoint:  ${c.Entrypoint ? JSON.stringify(c.Entrypoint) : ''}`,
        `Cmd:         ${c.Cmd ? JSON.stringify(c.Cmd) : ''}`,
        'Env:',
        ...(c.Env ?? []).map((e) => `  ${e}`),
        `Layers:      ${img.manifest.layers.length}, ${humanSize(imageSize(img))}`,
        ...img.manifest.layers.map((l) => `  ${l.digest}  ${humanSize(l.size).padStart(7)}  ${l.mediaType}`),
      ];
      blocks.push(lines.join('\n'));
    }
    out(blocks.join('\n\n'));
    return 0;
  },
};

const rmiCmd: Command = {
  summary: `Remove image names; frees the blobs no other image uses, and the image's
extracted root tree once no name points to its manifest (containers are copies and stay).`,
  usage: 'userdock rmi [--force|-f] IMAGE...',
  async run(ctx, argv) {
    const p = parseArgs(argv, { force: { kind: 'bool', aliases: ['-f'] }, 'no-prune': { kind: 'bool' } }, 'rmi');
    if (!p.positional.length) throw new UsageError('rmi: expected IMAGE', rmiCmd.usage);
    const store = openStore(ctx.storeDir);
    let code = 0;
    for (const n of p.positional) {
      try {
        const r = (await images()).removeImage(store, n, bool(p, 'force'));
        for (const u of r.untagged) out(`Untagged: ${u}`);
        for (const d of r.deleted) out(`Deleted: ${d}`);
        if (r.orphaned.length) {
          const { removeImageRootfs } = await import('../rootfs/index.js');
          for (const d of r.orphaned) await removeImageRootfs(ctx, d);
        }
      } catch (e) {
        if (!(e instanceof UserError) || p.positional.length === 1) throw e;
        process.stderr.write(`userdock rmi: ${e.message}${e.hint ? ` (${e.hint})` : ''}\n`);
        code = 1;
      }
    }
    return code;
  },
};

const tagCmd: Command = {
  summary: 'Give a stored image another name.',
  usage: 'userdock tag SOURCE_IMAGE TARGET_IMAGE[:TAG]',
  async run(ctx, argv) {
    const p = parseArgs(argv, {}, 'tag');
    if (p.positional.length !== 2) throw new UsageError('tag: expected SOURCE and TARGET', tagCmd.usage);
    (await images()).tagImage(openStore(ctx.storeDir), p.positional[0], p.positional[1]);
    return 0;
  },
};

const verifyCmd: Command = {
  summary: 'Re-hash every blob of an image, compare its extracted tree with them, and report damage.',
  usage: 'userdock verify IMAGE...',
  async run(ctx, argv) {
    const p = parseArgs(argv, {}, 'verify');
    if (!p.positional.length) throw new UsageError('verify: expected IMAGE', verifyCmd.usage);
    const store = openStore(ctx.storeDir);
    let bad = 0;
    for (const n of p.positional) {
      const img = await needImage(ctx, n);
      const problems = await (await images()).verifyImage(store, img);
      if (problems.length) {
        bad++;
        for (const pr of problems) process.stderr.write(`${n}: ${pr.what} ${pr.digest}: ${pr.problem}\n`);
        out(`${n}: FAILED (${problems.length} bad blob${problems.length > 1 ? 's' : ''}; pull it again)`);
        continue;
      }
      // The blobs are sound: the pristine tree made from them must match them too.
      const diffs = await verifyPristineTree(ctx, img);
      if (diffs?.length) {
        bad++;
        for (const d of diffs.slice(0, 20)) process.stderr.write(`${n}: rootfs ${d}\n`);
        if (diffs.length > 20) process.stderr.write(`${n}: rootfs: ${diffs.length - 20} more differences\n`);
        out(`${n}: FAILED (its extracted tree was changed in ${diffs.length} place${diffs.length > 1 ? 's' : ''}; removed: the next run extracts it again)`);
      } else {
        out(`${n}: OK${diffs ? ' (blobs and extracted tree)' : ''}`);
      }
    }
    return bad ? 1 : 0;
  },
};

const searchCmd: Command = {
  summary: `Search a registry: Docker Hub's search, or the v2 catalog of another registry
(many registries do not offer it).`,
  usage: 'userdock search [--registry=HOST] [--limit=N] TERM',
  async run(ctx, argv) {
    const p = parseArgs(argv, { registry: { kind: 'string' }, limit: { kind: 'string' }, index: { kind: 'string' },
      'no-trunc': { kind: 'bool' }, list: { kind: 'bool', aliases: ['-a'] } }, 'search');
    if (p.positional.length !== 1) throw new UsageError('search: expected one TERM', searchCmd.usage);
    let term = p.positional[0];
    let registry = str(p, 'registry')?.replace(/^https?:\/\//, '').replace(/\/.*$/, '') ?? 'docker.io';
    const slash = term.indexOf('/');
    if (!str(p, 'registry') && slash > 0 && /[.:]|^localhost$/.test(term.slice(0, slash))) {
      registry = term.slice(0, slash); term = term.slice(slash + 1);
    }
    const limit = Number(str(p, 'limit') ?? 25);
    const { searchRegistry } = await import('../image/search.js');
    const hits = await searchRegistry(ctx, registry, term, Number.isFinite(limit) && limit > 0 ? limit : 25);
    if (!hits.length) { process.stderr.write(`no images match "${term}" on ${registry}\n`); return 0; }
    const rows = [['NAME', 'DESCRIPTION']];
    for (const h of hits) rows.push([h.name, (h.description ?? '').replace(/\s+/g, ' ').slice(0, 60)]);
    out(table(rows));
    return 0;
  },
};

/** Read a line from the TTY without echo. */
async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new UsageError('no TTY to ask for the password', 'pipe it in with --password-stdin');
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let s = '';
    const onData = (b: Buffer) => {
      for (const ch of b.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') { done(); resolve(s); return; }
        if (ch === '\u0003') { done(); reject(new UserError('login cancelled')); return; }
        if (ch === '\u007f' || ch === '\b') s = s.slice(0, -1); else s += ch;
      }
    };
    const done = () => { stdin.off('data', onData); stdin.setRawMode(false); stdin.pause(); process.stderr.write('\n'); };
    stdin.on('data', onData);
  });
}

async function promptLine(question: string): Promise<string> {
  if (!process.stdin.isTTY) throw new UsageError('no TTY to ask for the username', 'give --username');
  const rl = readline().createInterface({ input: process.stdin, output: process.stderr });
  try { return (await rl.question(question)).trim(); } finally { rl.close(); }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function registryArg(s: string | undefined): string {
  if (!s) return 'docker.io';
  return credentialKey(s.replace(/^https?:\/\//, '').replace(/\/.*$/, ''));
}

const loginCmd: Command = {
  summary: `Store credentials for a registry in <configDir>/auth.json (mode 0600), after checking them.
The password is read from stdin (--password-stdin) or a TTY prompt, never from the command line.`,
  usage: 'userdock login [--username|-u USER] [--password-stdin] [REGISTRY]',
  async run(ctx, argv) {
    if (argv.some((a) => a === '-p' || a === '--password' || a.startsWith('--password='))) {
      throw new UsageError('login: passwords are not accepted on the command line', 'use --password-stdin, or let login prompt for it');
    }
    const p = parseArgs(argv, { username: { kind: 'string', aliases: ['-u'] }, 'password-stdin': { kind: 'bool' } }, 'login');
    if (p.positional.length > 1) throw new UsageError('login: expected at most one REGISTRY', loginCmd.usage);
    const registry = registryArg(p.positional[0]);
    const username = str(p, 'username') ?? await promptLine('Username: ');
    if (!username) throw new UsageError('login: empty username');
    const password = bool(p, 'password-stdin') ? await readStdin() : await promptHidden('Password: ');
    if (!password) throw new UsageError('login: empty password', 'give it on stdin with --password-stdin');
    const { closeAgent, RegistryClient, RegistryError } = await registryClient();
    const cfg = loadRegistryConfig(ctx.configDir, ctx.env);
    const ep = { url: originEndpoint(registry, cfg), mirror: false };
    const client = new RegistryClient({ registry, repository: '', endpoints: [ep], config: cfg, configDir: ctx.configDir,
      env: ctx.env, credentials: { username, password }, debug: ctx.debug ? (m) => process.stderr.write(`debug: ${m}\n`) : undefined });
    try {
      await client.ping(ep);
    } catch (e) {
      if (e instanceof RegistryError && e.kind === 'auth') {
        throw new UserError(`login to ${registry} failed: the registry rejected the username or password`, 1, 'check them and try again');
      }
      throw e;
    } finally {
      await closeAgent();
    }
    saveCredentials(ctx.configDir, registry, { username, password });
    process.stderr.write(`Login Succeeded (${registry})\n`);
    return 0;
  },
};

const logoutCmd: Command = {
  summary: 'Forget the stored credentials for a registry.',
  usage: 'userdock logout [REGISTRY]',
  async run(ctx, argv) {
    const p = parseArgs(argv, {}, 'logout');
    const registry = registryArg(p.positional[0]);
    if (removeCredentials(ctx.configDir, registry)) process.stderr.write(`Removing login credentials for ${registry}\n`);
    else process.stderr.write(`Not logged in to ${registry}\n`);
    return 0;
  },
};


export const commands: Record<string, Command> = {
  pull: pullCmd, images: imagesCmd, inspect: inspectCmd, rmi: rmiCmd, tag: tagCmd, verify: verifyCmd,
  search: searchCmd, login: loginCmd, logout: logoutCmd,
};
