import { crypto, randomHex } from '../lazy.js';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { UserError, UsageError } from '../errors.js';
import { openStore, writeFileAtomic, type Image, type Manifest, type Store } from '../image/store.js';
import type { Context } from '../cli/context.js';
import type { ApplyOptions } from './layer.js';

// The extractor (tar, fzstd: ~50-60 ms to import) is loaded only by the
// functions that extract, and the lock module only by those that write, so
// finding containers and present trees stays cheap for `run`
// (src/cli/run-commands.ts imports this module on its hot path).
async function withLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  return (await import('../lock.js')).withLock(target, fn);
}
const extractor = async () => {
  const [{ decompressStream }, { TreeWriter }] = await Promise.all([import('./decompress.js'), import('./layer.js')]);
  return { decompressStream, TreeWriter };
};

/**
 * Root filesystems.
 *
 * PRISTINE TREES. Each image manifest digest is flattened ONCE into
 * `<rootfsDir>/<manifest hex>/rootfs` (extracted into `<rootfsDir>/.tmp/…` and
 * renamed into place under a src/lock.ts lock, so a killed extraction leaves
 * only a temp dir that is cleaned later and never a half tree at the final
 * path). `run IMAGE` reuses it on every call: the fast path is one stat.
 * Pristine trees are SEALED: once extracted, every file and directory loses
 * its owner write bit (sealTree), so on the engines that cannot mount the
 * tree read-only (P1, P2, F1: the process runs as the tree's owner) the
 * kernel refuses every write, creation, deletion, rename and truncation with
 * EACCES; U1 and R1 also mount it read-only (EROFS). Extraction gives every
 * file u+rw and every directory u+rwx, so unsealing (containers copied from
 * the tree, removal) restores exactly the extracted modes. A `sealed` file
 * beside the tree marks the seal; trees of older versions are sealed on
 * first use. The owner can still chmod: `verify` finds any change and
 * removes a changed tree, which the next run extracts again.
 *
 * CONTAINERS (`create`, udocker's meaning: a writable tree of one's own).
 * Decision: a container is a REAL COPY of the pristine tree
 * (`cp -a --reflink=auto`: a reflink clone on btrfs/xfs, a byte copy
 * elsewhere). A hard-link copy would be cheaper, but every write to an
 * existing file inside the container (sed -i aside, `>>` appends and in-place
 * writes) would go through the shared inode and silently corrupt the pristine
 * tree and every other container. Layout: `<store>/containers/<id>/ROOT` plus
 * `container.json`, committed by renaming a temp dir from
 * `<store>/containers/.tmp/`, so `ps` never lists a half-made container.
 *
 * WHERE. `rootfsDir` is, in order: $USERDOCK_ROOTFS_DIR; "rootfsDir" in
 * `<configDir>/config.json`; node-local `${TMPDIR:-/tmp}/userdock-<uid>/rootfs`
 * when the store is on Lustre, NFS or GPFS (millions of small-file metadata
 * operations on a shared fs are slow and hurt everyone; blobs stay on the
 * shared store); else `<store>/rootfs`.
 */

export interface Container {
  id: string;
  names: string[];
  /** Image name the container was created from. */
  image: string;
  /** Manifest digest of that image ('' when imported from a tarball). */
  imageDigest: string;
  /** Absolute path of the container's root tree. */
  rootfs: string;
  execmode?: string;
  protected?: boolean;
  created: string;
}

type StoredContainer = Omit<Container, 'rootfs'>;

// ---- where pristine trees live ---------------------------------------------

export const SHARED_FS_MAGIC: Record<number, string> = { 0x0bd00bd0: 'Lustre', 0x6969: 'NFS', 0x47504653: 'GPFS' };

export type FsTypeProbe = (p: string) => number | undefined;

/** statfs type of the nearest existing ancestor of p. */
export function statfsType(p: string): number | undefined {
  let cur = path.resolve(p);
  for (;;) {
    try { return fs.statfsSync(cur).type; } catch {
      const up = path.dirname(cur);
      if (up === cur) return undefined;
      cur = up;
    }
  }
}

let fsTypeProbe: FsTypeProbe = statfsType;
/** Replace the statfs probe (tests pretend the store is on Lustre). Returns the previous one. */
export function setFsTypeProbe(probe: FsTypeProbe = statfsType): FsTypeProbe {
  const prev = fsTypeProbe; fsTypeProbe = probe; dirCache.clear(); return prev;
}

/** Which shared filesystem, if any, p is on. */
export function sharedFsName(p: string): string | undefined {
  const t = fsTypeProbe(p);
  return t === undefined ? undefined : SHARED_FS_MAGIC[t];
}

const dirCache = new Map<string, string>();

export function rootfsDir(ctx: Context): string {
  const key = `${ctx.storeDir}\0${ctx.configDir}\0${ctx.env.USERDOCK_ROOTFS_DIR ?? ''}\0${ctx.env.TMPDIR ?? ''}`;
  const hit = dirCache.get(key);
  if (hit) return hit;
  const dir = computeRootfsDir(ctx);
  dirCache.set(key, dir);
  return dir;
}

function computeRootfsDir(ctx: Context): string {
  if (ctx.env.USERDOCK_ROOTFS_DIR) return path.resolve(ctx.env.USERDOCK_ROOTFS_DIR);
  const cfgFile = path.join(ctx.configDir, 'config.json');
  let cfg: { rootfsDir?: unknown } | undefined;
  try { cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as { rootfsDir?: unknown }; } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UserError(`cannot read ${cfgFile}: ${(e as Error).message}`, 1, 'fix or remove that file');
    }
  }
  if (cfg && cfg.rootfsDir !== undefined) {
    if (typeof cfg.rootfsDir !== 'string' || !cfg.rootfsDir) throw new UserError(`${cfgFile}: "rootfsDir" must be a non-empty string`, 1, 'fix that key or remove it');
    return path.resolve(ctx.configDir, cfg.rootfsDir.replace(/^~(?=\/|$)/, ctx.env.HOME ?? os.homedir()));
  }
  if (sharedFsName(ctx.storeDir)) {
    const uid = process.getuid?.() ?? 0;
    return path.join(ctx.env.TMPDIR || '/tmp', `userdock-${uid}`, 'rootfs');
  }
  return path.join(ctx.storeDir, 'rootfs');
}

/** mkdir -p base; when base is in a shared tmp (the node-local default) make sure we own its parent. */
function ensureBase(dir: string): void {
  const parent = path.dirname(dir);
  if (/^userdock-\d+$/.test(path.basename(parent))) {
    fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(parent);
    if (!st.isDirectory() || st.uid !== (process.getuid?.() ?? st.uid)) {
      throw new UserError(`${parent} is not a directory owned by you`, 1, 'set USERDOCK_ROOTFS_DIR to a directory of your own');
    }
  }
  fs.mkdirSync(path.join(dir, '.tmp'), { recursive: true });
}

// ---- temp dirs and removal -------------------------------------------------

function tempName(label: string): string {
  return `${label}.${os.hostname()}.${process.pid}.${randomHex(4)}`;
}

export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Remove temp dirs in tmpDir left by dead processes of this host. */
export function cleanStaleTemps(tmpDir: string): void {
  let names: string[] = [];
  try { names = fs.readdirSync(tmpDir); } catch { return; }
  const host = os.hostname();
  for (const n of names) {
    const m = /^.+\.(.+)\.(\d+)\.[0-9a-f]{8}$/.exec(n);
    if (!m || m[1] !== host || pidAlive(Number(m[2]))) continue;
    removeTree(path.join(tmpDir, n));
  }
}

/**
 * Add (`writable`) or remove the owner write bit on every file and directory
 * of a tree (symlinks have no modes of their own). Children first, so a
 * directory is sealed after what is in it.
 */
export function sealTree(root: string, writable = false): void {
  const set = (p: string, mode: number) => {
    const m = writable ? mode | 0o200 : mode & ~0o200;
    if (m !== mode) fs.chmodSync(p, m & 0o7777);
  };
  const walk = (d: string) => {
    if (writable) set(d, fs.lstatSync(d).mode);
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const c = d + '/' + e.name;
      if (e.isDirectory()) walk(c);
      else if (!e.isSymbolicLink()) set(c, fs.lstatSync(c).mode);
    }
    if (!writable) set(d, fs.lstatSync(d).mode);
  };
  walk(root);
}

/** rm -rf that also copes with directories a program made read-only. */
export function removeTree(p: string): void {
  try { fs.rmSync(p, { recursive: true, force: true }); return; } catch { /* fix modes and retry */ }
  const fix = (d: string) => {
    try { fs.chmodSync(d, 0o700); } catch { /* ignore */ }
    let names: string[] = [];
    try { names = fs.readdirSync(d); } catch { return; }
    for (const n of names) {
      const c = path.join(d, n);
      const st = fs.lstatSync(c, { throwIfNoEntry: false });
      if (st?.isDirectory()) fix(c);
    }
  };
  fix(p);
  fs.rmSync(p, { recursive: true, force: true });
}

// ---- layers -> tree --------------------------------------------------------

/** Apply a manifest's layers, in order, to dest. */
export async function extractLayers(store: Store, manifest: Manifest, dest: string, opts: ApplyOptions & { name?: string } = {}): Promise<void> {
  const { decompressStream, TreeWriter } = await extractor();
  const writer = new TreeWriter(dest, opts);
  for (const [i, layer] of manifest.layers.entries()) {
    const label = `layer ${i + 1}/${manifest.layers.length} ${layer.digest}${opts.name ? ` of ${opts.name}` : ''}`;
    const blob = store.blobPath(layer.digest);
    if (!fs.existsSync(blob)) throw new UserError(`${label} is missing from the store ${store.dir}`, 1, 'pull or load the image again');
    const raw = fs.createReadStream(blob, { highWaterMark: 1 << 20 });
    writer.label = label;
    await writer.apply(decompressStream(raw, layer.mediaType, label));
  }
}

/** Apply one (possibly compressed) tar stream to a new or existing tree. */
export async function extractStream(input: Readable, dest: string, opts: ApplyOptions = {}): Promise<unknown> {
  fs.mkdirSync(dest, { recursive: true });
  const { decompressStream, TreeWriter } = await extractor();
  return new TreeWriter(dest, opts).apply(decompressStream(input, undefined, opts.label ?? 'tarball'));
}

function reporter(ctx: Context): ((m: string) => void) | undefined {
  return ctx.debug ? (m: string) => process.stderr.write(`debug: ${m}\n`) : undefined;
}

/** Where an image's pristine tree lives: <rootfsDir>/<manifest hex>/rootfs. */
function pristinePath(ctx: Context, image: Image): { base: string; hex: string; final: string; rootfs: string } {
  const hex = image.ref.digest.replace(/^sha256:/, '');
  const base = rootfsDir(ctx);
  const final = path.join(base, hex);
  return { base, hex, final, rootfs: path.join(final, 'rootfs') };
}

/** The pristine tree of an image, when it has been extracted. */
function pristineTree(ctx: Context, image: Image): string | undefined {
  const { rootfs } = pristinePath(ctx, image);
  return fs.statSync(rootfs, { throwIfNoEntry: false }) ? rootfs : undefined;
}

/**
 * The pristine rootfs of an image, extracted once per manifest digest and
 * reused afterwards (one stat when present).
 */
export async function imageRootfs(ctx: Context, image: Image): Promise<string> {
  const { base, hex, final, rootfs } = pristinePath(ctx, image);
  const sealed = path.join(final, 'sealed');
  if (fs.statSync(sealed, { throwIfNoEntry: false })) {
    if (ctx.debug) process.stderr.write(`debug: pristine tree ${rootfs} present: not extracting\n`);
    return rootfs;
  }
  ensureBase(base);
  await withLock(final, async () => {
    if (fs.existsSync(sealed)) return;
    if (fs.existsSync(rootfs)) {
      // A tree of an older userdock, never sealed.
      sealTree(rootfs);
      fs.writeFileSync(sealed, '');
      return;
    }
    const tmpDir = path.join(base, '.tmp');
    cleanStaleTemps(tmpDir);
    const tmp = path.join(tmpDir, tempName(hex.slice(0, 16)));
    try {
      fs.mkdirSync(path.join(tmp, 'rootfs'), { recursive: true, mode: 0o755 });
      const store = openStore(ctx.storeDir);
      const t0 = Date.now();
      await extractLayers(store, image.manifest, path.join(tmp, 'rootfs'), { name: image.ref.name, report: reporter(ctx) });
      fs.writeFileSync(path.join(tmp, 'image.json'), JSON.stringify({ name: image.ref.name, digest: image.ref.digest, extracted: new Date().toISOString() }) + '\n');
      sealTree(path.join(tmp, 'rootfs'));
      // Written after the seal: no inode of the tree has a later ctime unless something changed it since.
      fs.writeFileSync(path.join(tmp, 'sealed'), '');
      fs.renameSync(tmp, final);
      if (ctx.debug) process.stderr.write(`debug: extracted ${image.ref.name} into ${rootfs} in ${Date.now() - t0} ms\n`);
    } catch (e) {
      removeTree(tmp);
      throw e;
    }
  });
  return rootfs;
}

/**
 * Check an image's pristine tree against its layers (`verify`): the layers are
 * extracted again into a temp tree, sealed the same way, and both trees are
 * compared entry by entry (type, mode, size, content, link target). Returns
 * undefined when the image has no tree, else the differences (empty: intact).
 * A changed tree is removed (the next run extracts it again from the blobs).
 */
export async function verifyPristineTree(ctx: Context, image: Image): Promise<string[] | undefined> {
  const { base, rootfs } = pristinePath(ctx, image);
  if (!fs.existsSync(rootfs)) return undefined;
  ensureBase(base);
  const tmp = path.join(base, '.tmp', tempName('verify'));
  try {
    fs.mkdirSync(tmp, { recursive: true });
    await extractLayers(openStore(ctx.storeDir), image.manifest, tmp, { name: image.ref.name });
    sealTree(tmp);
    const diffs = compareTrees(tmp, rootfs);
    if (diffs.length) await removeImageRootfs(ctx, image.ref.digest);
    return diffs;
  } finally {
    removeTree(tmp);
  }
}

/** Differences of tree `got` from tree `want`, as "PATH: what" lines. */
export function compareTrees(want: string, got: string): string[] {
  const out: string[] = [];
  const kind = (st: fs.Stats) => st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'special file';
  const walk = (rel: string) => {
    const a = fs.lstatSync(path.join(want, rel), { throwIfNoEntry: false });
    const b = fs.lstatSync(path.join(got, rel), { throwIfNoEntry: false });
    const name = '/' + rel;
    if (!a || !b) { out.push(`${name}: ${a ? 'deleted' : 'added'}`); return; }
    if (kind(a) !== kind(b)) { out.push(`${name}: was a ${kind(a)}, is a ${kind(b)}`); return; }
    if ((a.mode & 0o7777) !== (b.mode & 0o7777) && !a.isSymbolicLink()) out.push(`${name}: mode ${(a.mode & 0o7777).toString(8)} is now ${(b.mode & 0o7777).toString(8)}`);
    if (a.isSymbolicLink()) {
      if (fs.readlinkSync(path.join(want, rel)) !== fs.readlinkSync(path.join(got, rel))) out.push(`${name}: link target changed`);
    } else if (a.isFile()) {
      const content = unreadable(() => fs.readFileSync(path.join(got, rel)), name);
      if (content && (a.size !== b.size || !fs.readFileSync(path.join(want, rel)).equals(content))) out.push(`${name}: content changed`);
    } else if (a.isDirectory()) {
      const inGot = unreadable(() => fs.readdirSync(path.join(got, rel)), name);
      if (!inGot) return;
      const names = new Set([...fs.readdirSync(path.join(want, rel)), ...inGot]);
      for (const n of [...names].sort()) walk(rel ? `${rel}/${n}` : n);
    }
  };
  // A run may have chmod-ed a path of the tree to 000: that is a difference, not an error.
  const unreadable = <T>(read: () => T, name: string): T | undefined => {
    try { return read(); } catch (e) { out.push(`${name}: cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`); return undefined; }
  };
  walk('');
  return out;
}

/**
 * Remove the pristine tree of a manifest digest (`rmi` calls it once no name
 * points to the manifest). Safe against concurrent userdock processes: under
 * the same lock as the extraction, the tree is first renamed aside into
 * `.tmp/` (atomic), so a concurrent `run`/`create` either finds the whole
 * tree or none and extracts a new one; only then is the renamed copy
 * deleted. Containers are copies and are not affected. A run ALREADY using
 * the tree is not protected: a bind-mounting engine keeps its mount but sees
 * files vanish as they are deleted, a path-translating one (proot) fails on
 * the next file access. Same as udocker: do not rmi an image while it runs.
 */
export async function removeImageRootfs(ctx: Context, manifestDigest: string): Promise<void> {
  const final = path.join(rootfsDir(ctx), manifestDigest.replace(/^sha256:/, ''));
  if (!fs.existsSync(final)) return;
  await withLock(final, async () => {
    const aside = path.join(rootfsDir(ctx), '.tmp', tempName('rm'));
    try { fs.renameSync(final, aside); } catch { return; }
    removeTree(aside);
  });
}

// ---- containers ------------------------------------------------------------

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function checkContainerName(name: string): void {
  if (!NAME_RE.test(name) || ID_RE.test(name)) {
    throw new UsageError(`invalid container name "${name}"`, 'names are 1-128 characters of letters, digits, "_", "." and "-", starting with a letter or digit');
  }
}

function containersDir(ctx: Context): string { return openStore(ctx.storeDir).containersDir; }
function metaLock(ctx: Context): string { return path.join(openStore(ctx.storeDir).locksDir, 'containers'); }

function readContainer(dir: string): Container | undefined {
  try {
    const c = JSON.parse(fs.readFileSync(path.join(dir, 'container.json'), 'utf8')) as StoredContainer;
    return { ...c, names: c.names ?? [], rootfs: path.join(dir, 'ROOT') };
  } catch { return undefined; }
}

function writeContainer(dir: string, c: Container): void {
  const { rootfs: _r, ...stored } = c;
  writeFileAtomic(path.join(dir, 'container.json'), JSON.stringify(stored, null, 2) + '\n');
}

export function listContainers(ctx: Context): Container[] {
  const dir = containersDir(ctx);
  let names: string[] = [];
  try { names = fs.readdirSync(dir); } catch { return []; }
  const out: Container[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    const c = readContainer(path.join(dir, n));
    if (c && c.id === n) out.push(c);
  }
  return out.sort((a, b) => a.created.localeCompare(b.created));
}

export function findContainer(ctx: Context, idOrName: string): Container | undefined {
  // Fast path (`run CONTAINER-ID`): one read instead of every container.json.
  // Same answer as the scan: the scan keeps exactly the dirs whose container.json has id === dir name.
  if (idOrName && !idOrName.includes('/') && !idOrName.startsWith('.')) {
    const c = readContainer(path.join(containersDir(ctx), idOrName));
    if (c && c.id === idOrName) return c;
  }
  const all = listContainers(ctx);
  const exact = all.find((c) => c.id === idOrName) ?? all.find((c) => c.names.includes(idOrName));
  if (exact) return exact;
  if (idOrName.length >= 4) {
    const pre = all.filter((c) => c.id.startsWith(idOrName));
    if (pre.length === 1) return pre[0];
  }
  return undefined;
}

export function getContainer(ctx: Context, idOrName: string): Container {
  const c = findContainer(ctx, idOrName);
  if (!c) throw new UserError(`no container with id or name "${idOrName}" in ${containersDir(ctx)}`, 1, "list containers with 'userdock ps'");
  return c;
}

/** Root path of a container (for `inspect -p`). */
export function containerRootfsPath(ctx: Context, idOrName: string): string {
  return getContainer(ctx, idOrName).rootfs;
}

function assertNameFree(ctx: Context, name: string): void {
  const other = listContainers(ctx).find((c) => c.names.includes(name));
  if (other) throw new UserError(`container name "${name}" is already used by ${other.id}`, 1, "pick another name or free it with 'userdock rmname'");
}

function copyTree(src: string, dest: string, deniedFix?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('cp', ['-a', '--reflink=auto', src, dest], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('error', (e) => reject(new UserError(`cannot run cp to copy ${src}: ${e.message}`, 1, 'install coreutils')));
    child.on('close', (code) => code === 0 ? resolve() : reject(copyError(src, dest, err, deniedFix)));
  });
}

/**
 * cp's failure as one line that names its cause: a path cp may not read (a
 * run chmod-ed it to 000) is not a disk problem. A full disk or quota is
 * named by the CLI from cp's text (errors.ts diskFull).
 */
function copyError(src: string, dest: string, stderr: string, deniedFix?: string): UserError {
  const denied = /cp: cannot [^']*'(.+?)'[^\n]*: Permission denied/.exec(stderr);
  if (denied) {
    return new UserError(`copying ${src} failed: permission denied on ${denied[1]}`, 1,
      `a run in it took the owner's read or search permission away (chmod); ${deniedFix ?? `give it back with: chmod -R u+rX '${denied[1]}'`}`);
  }
  return new UserError(`copying ${src} to ${dest} failed: ${stderr.trim().split('\n')[0]}`, 1, 'check free space and quota');
}

/**
 * Make a new container in a temp dir with `fill(rootDir)`, then commit it by
 * rename under the metadata lock (name checked again there).
 */
async function makeContainer(ctx: Context, meta: Omit<Container, 'id' | 'rootfs' | 'created'>, fill: (root: string) => Promise<void>): Promise<Container> {
  for (const n of meta.names) { checkContainerName(n); assertNameFree(ctx, n); }
  const dir = containersDir(ctx);
  const tmpDir = path.join(dir, '.tmp');
  fs.mkdirSync(tmpDir, { recursive: true });
  cleanStaleTemps(tmpDir);
  const id = crypto().randomUUID();
  const tmp = path.join(tmpDir, tempName(id.slice(0, 8)));
  fs.mkdirSync(tmp, { mode: 0o755 });
  try {
    await fill(path.join(tmp, 'ROOT'));
    const c: Container = { ...meta, id, created: new Date().toISOString(), rootfs: path.join(dir, id, 'ROOT') };
    writeContainer(tmp, c);
    await withLock(metaLock(ctx), async () => {
      for (const n of meta.names) assertNameFree(ctx, n);
      fs.renameSync(tmp, path.join(dir, id));
    });
    return c;
  } catch (e) {
    removeTree(tmp);
    throw e;
  }
}

/**
 * A container of an image: a copy of the image's pristine tree when `run
 * IMAGE` has made one, else the layers extracted straight into the
 * container (one pass; no pristine tree is made for a create alone).
 */
export async function createContainer(ctx: Context, image: Image, opts: { name?: string } = {}): Promise<Container> {
  if (opts.name) checkContainerName(opts.name);
  const pristine = pristineTree(ctx, image);
  return makeContainer(ctx, { names: opts.name ? [opts.name] : [], image: image.ref.name, imageDigest: image.ref.digest },
    async (root) => {
      if (ctx.debug) process.stderr.write(pristine ? `debug: copying the pristine tree ${pristine}\n` : 'debug: extracting the layers into the container\n');
      if (pristine) {
        // A changed pristine tree is not mended by hand: verify removes it, and the next create or run extracts the image again.
        await copyTree(pristine, root, `'userdock verify ${image.ref.name}' removes the changed tree; then create again`);
        sealTree(root, true);
        return;
      }
      fs.mkdirSync(root, { mode: 0o755 });
      await extractLayers(openStore(ctx.storeDir), image.manifest, root, { name: image.ref.name, report: reporter(ctx) });
    });
}

/** A container from a flat rootfs tarball (`import --tocontainer`). */
export async function containerFromTar(ctx: Context, input: Readable, opts: { name?: string; image: string }): Promise<Container> {
  if (opts.name) checkContainerName(opts.name);
  return makeContainer(ctx, { names: opts.name ? [opts.name] : [], image: opts.image, imageDigest: '' },
    async (root) => { await extractStream(input, root, { label: opts.image, report: reporter(ctx) }); });
}

/** A container from an `export --clone` tarball (container.json + ROOT/). */
export async function containerFromClone(ctx: Context, input: Readable, opts: { name?: string; label: string }): Promise<Container> {
  if (opts.name) checkContainerName(opts.name);
  const store = openStore(ctx.storeDir);
  const stage = store.tempPath('clone-import');
  fs.mkdirSync(stage, { recursive: true });
  try {
    await extractStream(input, stage, { label: opts.label, report: reporter(ctx) });
    const meta = readContainer(stage);
    if (!meta || !fs.existsSync(path.join(stage, 'ROOT'))) {
      throw new UserError(`${opts.label} is not a userdock clone export (no container.json and ROOT/)`, 1, "make it with 'userdock export --clone', or import it without --clone");
    }
    return await makeContainer(ctx, { names: opts.name ? [opts.name] : [], image: meta.image, imageDigest: meta.imageDigest, execmode: meta.execmode },
      async (root) => { fs.renameSync(path.join(stage, 'ROOT'), root); });
  } finally {
    removeTree(stage);
  }
}

export async function cloneContainer(ctx: Context, idOrName: string, opts: { name?: string } = {}): Promise<Container> {
  const src = getContainer(ctx, idOrName);
  if (opts.name) checkContainerName(opts.name);
  return makeContainer(ctx, { names: opts.name ? [opts.name] : [], image: src.image, imageDigest: src.imageDigest, execmode: src.execmode },
    (root) => copyTree(src.rootfs, root));
}

/** Change a container's metadata under the lock. */
export async function updateContainer(ctx: Context, idOrName: string, fn: (c: Container) => void): Promise<Container> {
  return withLock(metaLock(ctx), async () => {
    const c = getContainer(ctx, idOrName);
    fn(c);
    writeContainer(path.dirname(c.rootfs), c);
    return c;
  });
}

export async function nameContainer(ctx: Context, idOrName: string, name: string): Promise<void> {
  checkContainerName(name);
  await withLock(metaLock(ctx), async () => {
    const c = getContainer(ctx, idOrName);
    if (c.names.includes(name)) return;
    assertNameFree(ctx, name);
    c.names.push(name);
    writeContainer(path.dirname(c.rootfs), c);
  });
}

export async function removeName(ctx: Context, name: string): Promise<void> {
  await withLock(metaLock(ctx), async () => {
    const c = listContainers(ctx).find((x) => x.names.includes(name));
    if (!c) throw new UserError(`no container is named "${name}"`, 1, "list names with 'userdock ps'");
    c.names = c.names.filter((n) => n !== name);
    writeContainer(path.dirname(c.rootfs), c);
  });
}

export async function renameContainer(ctx: Context, name: string, newName: string): Promise<void> {
  checkContainerName(newName);
  await withLock(metaLock(ctx), async () => {
    const c = listContainers(ctx).find((x) => x.names.includes(name));
    if (!c) throw new UserError(`no container is named "${name}"`, 1, "list names with 'userdock ps'");
    if (name === newName) return;
    assertNameFree(ctx, newName);
    c.names = c.names.map((n) => (n === name ? newName : n));
    writeContainer(path.dirname(c.rootfs), c);
  });
}

export async function removeContainer(ctx: Context, idOrName: string, opts: { force?: boolean } = {}): Promise<Container> {
  const dir = containersDir(ctx);
  const aside = path.join(dir, '.tmp', tempName('rm'));
  fs.mkdirSync(path.dirname(aside), { recursive: true });
  const c = await withLock(metaLock(ctx), async () => {
    const c = getContainer(ctx, idOrName);
    if (c.protected && !opts.force) {
      throw new UserError(`container ${c.id}${c.names.length ? ` (${c.names.join(', ')})` : ''} is protected`, 1, `run 'userdock unprotect ${idOrName}' first`);
    }
    fs.renameSync(path.dirname(c.rootfs), aside);
    return c;
  });
  removeTree(aside);
  return c;
}

/** Disk use of a tree in bytes (allocated blocks; hard links counted once). */
export function treeSize(root: string): number {
  const seen = new Set<string>();
  let total = 0;
  const walk = (d: string) => {
    let names: string[] = [];
    try { names = fs.readdirSync(d); } catch { return; }
    for (const n of names) {
      const p = d + '/' + n;
      const st = fs.lstatSync(p, { throwIfNoEntry: false, bigint: false });
      if (!st) continue;
      if (st.nlink > 1 && !st.isDirectory()) {
        const k = `${st.dev}:${st.ino}`;
        if (seen.has(k)) continue;
        seen.add(k);
      }
      total += st.blocks * 512;
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return total;
}
