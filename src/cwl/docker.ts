import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { UserError, EXIT } from '../errors.js';
import { getReq, type Json, type Process } from './load.js';
import type { ExecOptions } from './tool.js';
import type { Image } from '../image/store.js';
import type { Profile, MountOp } from '../isolation/profile.js';

// userdock's image/rootfs/engine modules are loaded only when a container is
// needed, so --no-container runs never depend on them.
const storeMod = () => import('../image/store.js');
const imageMod = () => import('../image/index.js');
const rootfsMod = () => import('../rootfs/index.js');
const enginesMod = () => import('../engines/index.js');
const profileMod = () => import('../isolation/profile.js');

/**
 * The one container path of cwl-run. DockerRequirement (or
 * --default-container) is resolved to an image and its pristine rootfs
 * through userdock's image and rootfs modules; the run is an isolation
 * Profile binding only the outdir (/var/spool/cwl), the tmpdir (/tmp) and
 * the inputs (read-only, /var/lib/cwl/stgN/...), executed by runProfile.
 */
export interface ContainerSpec {
  /** The stored name of the image and its id (config digest). */
  image: string;
  imageId: string;
  rootfs: string;
  /** Where dockerOutputDirectory asked the outdir to be. */
  outputDirectory?: string;
  imageEnv: Record<string, string>;
  entrypoint?: string[];
}

export interface Bind { host: string; container: string; readonly: boolean }

export interface ContainerRun {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  binds: Bind[];
  stdin?: string;
  stdout?: string;
  stderr?: string;
  timeoutSec: number;
  network: boolean;
}

export async function resolveContainer(proc: Process, opts: ExecOptions): Promise<ContainerSpec | undefined> {
  const dr = getReq(proc, 'DockerRequirement');
  if (opts.noContainer) return undefined;
  const req: Json | undefined = dr?.req;
  const hasReq = !!req && ['dockerPull', 'dockerImageId', 'dockerLoad', 'dockerImport', 'dockerFile'].some((k) => typeof req[k] === 'string' && req[k] !== '');
  if (!hasReq && !opts.defaultContainer) return undefined;
  const { openStore } = await storeMod();
  const { imageRootfs } = await rootfsMod();
  const store = openStore(opts.ctx.storeDir);
  const image = hasReq ? await acquireImage(store, req!, proc, opts) : await storeOrPull(store, opts.defaultContainer!, opts);
  // a remote launcher (Slurm) builds the rootfs on the node, from the shared store
  const rootfs = opts.launcher?.remote ? '' : await imageRootfs(opts.ctx, image);
  const imageEnv: Record<string, string> = {};
  for (const kv of image.config?.config?.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) imageEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { image: image.ref.name, imageId: image.id, rootfs, outputDirectory: req?.dockerOutputDirectory, imageEnv, entrypoint: image.config?.config?.Entrypoint ?? [] };
}

type StoreT = ReturnType<Awaited<ReturnType<typeof storeMod>>['openStore']>;

type ImageMod = Awaited<ReturnType<typeof imageMod>>;

function inStore(im: ImageMod, store: StoreT, ref: string): Image | undefined {
  try { return im.findImage(store, ref); } catch { return undefined; }
}

/** A name is usable for pulling when it parses as a reference and is not a bare image id. */
async function pullable(ref: string): Promise<boolean> {
  if (/^(sha256:)?[a-f0-9]{12,64}$/.test(ref)) return false;
  try { (await imageMod()).parseReference(ref); return true; } catch { return false; }
}

/** The stored image `ref` names; pulled (USERDOCK_MIRRORS honoured) only when missing, or always with --force-docker-pull. */
async function storeOrPull(store: StoreT, ref: string, opts: ExecOptions): Promise<Image> {
  const im = await imageMod();
  const pullMode = opts.pull ?? 'missing';
  const have = pullMode === 'always' ? undefined : inStore(im, store, ref);
  if (have) { opts.debug(`[container] ${ref} found in the store (${have.id.slice(0, 19)})`); return have; }
  if (pullMode === 'never') {
    throw new UserError(`image ${ref} is not in the store and pulling is disabled (--disable-pull)`, EXIT.fail, `pull it first with 'userdock pull ${ref}' or 'userdock load', or drop --disable-pull`);
  }
  if (!(await pullable(ref))) throw new UserError(`image ${ref} is not in the store and cannot be pulled (it is not an image reference)`, EXIT.fail, "load it with 'userdock load' or give dockerPull/dockerLoad");
  opts.log(`[container] pulling ${ref}`);
  return im.pullImage(opts.ctx, ref);
}

/**
 * DockerRequirement -> a stored image, the way cwltool orders it: an image
 * already in the store under dockerImageId (or dockerPull) is used as is;
 * otherwise dockerPull is pulled, dockerFile is refused (exit 33), dockerLoad
 * is loaded (docker save / OCI archive) and dockerImport imported (docker
 * export tarball), then named dockerImageId.
 */
async function acquireImage(store: StoreT, req: Json, proc: Process, opts: ExecOptions): Promise<Image> {
  const im = await imageMod();
  const id: string | undefined = str(req.dockerImageId);
  const pullRef: string | undefined = str(req.dockerPull);
  const name = id ?? pullRef;
  if (name && opts.pull !== 'always') {
    const have = inStore(im, store, name) ?? (id && pullRef ? inStore(im, store, pullRef) : undefined);
    if (have) { opts.debug(`[container] ${name} found in the store (${have.id.slice(0, 19)})`); return have; }
  }
  if (pullRef) return storeOrPull(store, pullRef, opts);
  if (str(req.dockerFile) !== undefined) {
    throw new UserError('DockerRequirement.dockerFile: building images is not supported; build elsewhere and push, or use dockerPull/dockerLoad', EXIT.unsupported, 'or run with --no-container');
  }
  const { loadArchive, importTarball } = await import('../rootfs/archive.js');
  if (str(req.dockerLoad)) {
    const src = str(req.dockerLoad)!;
    const { stream, label, dir } = await openSource(src, proc, opts);
    opts.log(`[container] loading ${label}`);
    const names = dir ? await loadArchive(opts.ctx, dir, label) : await loadArchive(opts.ctx, stream!, label);
    if (!names.length) throw new UserError(`dockerLoad ${label}: the archive holds no image`, EXIT.fail);
    const loaded = inStore(im, store, names[0]);
    if (!loaded) throw new UserError(`dockerLoad ${label}: loaded ${names[0]} but cannot read it back from the store`, EXIT.fail);
    if (id && !inStore(im, store, id)) {
      if (/^(sha256:)?[a-f0-9]{12,64}$/.test(id)) {
        throw new UserError(`dockerLoad ${label}: image id ${id} is not among the loaded images (${names.join(', ')})`, EXIT.fail, 'fix dockerImageId, or leave it out');
      }
      im.tagImage(store, names[0], id);
    }
    return (id ? inStore(im, store, id) : undefined) ?? loaded;
  }
  if (str(req.dockerImport)) {
    const src = str(req.dockerImport)!;
    const { stream, label, dir } = await openSource(src, proc, opts);
    if (dir) throw new UserError(`dockerImport ${label} is a directory; it must be a tarball of a root filesystem (docker export)`, EXIT.fail);
    const target = id ?? importName(label);
    if (!(await pullable(target))) throw new UserError(`dockerImport: dockerImageId ${target} is not a valid image name`, EXIT.fail, 'name the imported image like repo:tag');
    opts.log(`[container] importing ${label} as ${target}`);
    return importTarball(opts.ctx, stream!, label, target);
  }
  if (id) return storeOrPull(store, id, opts);
  throw new UserError('DockerRequirement names no image (dockerPull, dockerImageId, dockerLoad or dockerImport)', EXIT.fail);
}

function str(v: unknown): string | undefined { return typeof v === 'string' && v !== '' ? v : undefined; }

function importName(label: string): string {
  const base = path.basename(label).replace(/\.(tar|tgz|tar\.gz|tar\.zst)$/i, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '') || 'imported';
  return `localhost/cwl-import-${base}:latest`;
}

/** A dockerLoad/dockerImport source: http(s) URL, file:// URI, or a path (relative to the tool document, then the cwd). */
async function openSource(src: string, proc: Process, opts: ExecOptions): Promise<{ stream?: Readable; dir?: string; label: string }> {
  if (/^https?:\/\//i.test(src)) {
    if (opts.pull === 'never') throw new UserError(`cannot download ${src}: pulling is disabled (--disable-pull)`, EXIT.fail);
    let res: Response;
    try { res = await fetch(src); } catch (e) {
      throw new UserError(`cannot download ${src}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`, EXIT.fail, 'check the URL and the network, or download it and give a path');
    }
    if (!res.ok || !res.body) throw new UserError(`cannot download ${src}: HTTP ${res.status}`, EXIT.fail, 'check the URL');
    return { stream: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), label: src };
  }
  let p: string;
  if (/^file:\/\//i.test(src)) p = fileURLToPath(src);
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) throw new UserError(`unsupported URI scheme in ${src} (http, https, file or a path)`, EXIT.fail);
  else if (path.isAbsolute(src)) p = src;
  else {
    const inDoc = path.resolve(proc.baseDir, src);
    p = fs.existsSync(inDoc) ? inDoc : path.resolve(src);
  }
  let st: fs.Stats;
  try { st = fs.statSync(p); } catch (e) {
    throw new UserError(`cannot read image archive ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.fail, 'check the dockerLoad/dockerImport path (relative paths are resolved against the tool document)');
  }
  if (st.isDirectory()) return { dir: p, label: p };
  return { stream: fs.createReadStream(p), label: p };
}

/** The isolation Profile of one CWL container run (also serialized for Slurm jobs: src/cwl/slurm). */
export function containerProfile(spec: ContainerSpec, run: ContainerRun): Profile {
  const ops: MountOp[] = run.binds.map((b) => ({ type: 'bind', source: b.host, target: b.container, readonly: b.readonly }));
  return {
    version: 1,
    rootfs: spec.rootfs,
    rootfsWritable: false,
    ops,
    sysdirs: { proc: true, dev: true, sys: false },
    workdir: run.cwd,
    env: { ...spec.imageEnv, ...run.env },
    // docker semantics: the image's ENTRYPOINT runs the CWL command line
    argv: [...(spec.entrypoint ?? []), ...run.argv],
    user: { uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000, rootEmulation: false },
    network: run.network ? 'host' : 'none',
  };
}

export async function runContainer(spec: ContainerSpec, opts: ExecOptions, run: ContainerRun): Promise<number> {
  const profile = containerProfile(spec, run);
  const validateProfile: (p: unknown) => asserts p is Profile = (await profileMod()).validateProfile;
  validateProfile(profile);
  const { runProfile } = await enginesMod();
  const fds: number[] = [];
  const open = (p: string, f: string): number => { const fd = fs.openSync(p, f); fds.push(fd); return fd; };
  try {
    const io: [number | 'ignore', number | 'inherit', number | 'inherit'] = [run.stdin ? open(run.stdin, 'r') : 'ignore', run.stdout ? open(run.stdout, 'w') : 2, run.stderr ? open(run.stderr, 'w') : 2];
    const code = await runProfile(opts.ctx, profile, { engine: opts.engine, fds: io, timeoutMs: run.timeoutSec > 0 ? run.timeoutSec * 1000 : undefined,
      // a stopping workflow kills its running containers
      onSpawn: (child) => {
        const sig = opts.signal;
        if (!sig) return;
        const kill = (): void => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } };
        sig.addEventListener('abort', kill, { once: true });
        child.once('exit', () => sig.removeEventListener('abort', kill));
      } });
    return run.timeoutSec > 0 && code === 128 + 9 ? -1 : code;
  } finally {
    for (const fd of fds) try { fs.closeSync(fd); } catch { /* */ }
  }
}
