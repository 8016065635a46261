import fs from 'node:fs';
import { UserError, EXIT } from '../errors.js';
import { getReq, type Process } from './load.js';
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
  image: string;
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
  let ref: string | undefined;
  const req = dr?.req;
  if (req) {
    if (req.dockerFile !== undefined && !req.dockerPull && !req.dockerImageId) {
      throw new UserError('DockerRequirement.dockerFile (building images) is not supported by cwl-run', EXIT.unsupported, 'build the image elsewhere and use dockerPull, or run with --no-container');
    }
    ref = req.dockerImageId ?? req.dockerPull;
    if (!ref && (req.dockerLoad || req.dockerImport)) {
      throw new UserError('DockerRequirement dockerLoad/dockerImport is not supported yet', EXIT.unsupported, 'use dockerPull, or run with --no-container');
    }
  }
  if (!ref) ref = opts.defaultContainer;
  if (!ref) return undefined;
  const { openStore } = await storeMod();
  const { findImage, pullImage } = await imageMod();
  const { imageRootfs } = await rootfsMod();
  const store = openStore(opts.ctx.storeDir);
  let image: Image | undefined;
  try { image = findImage(store, ref); } catch { image = undefined; }
  if (!image) {
    if (req?.dockerImageId && !req.dockerPull) image = undefined;
    opts.log(`[container] pulling ${req?.dockerPull ?? ref}`);
    image = await pullImage(opts.ctx, req?.dockerPull ?? ref);
  }
  const rootfs = await imageRootfs(opts.ctx, image);
  const imageEnv: Record<string, string> = {};
  for (const kv of image.config?.config?.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) imageEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { image: ref, rootfs, outputDirectory: req?.dockerOutputDirectory, imageEnv, entrypoint: image.config?.config?.Entrypoint ?? [] };
}

export async function runContainer(spec: ContainerSpec, opts: ExecOptions, run: ContainerRun): Promise<number> {
  const ops: MountOp[] = run.binds.map((b) => ({ type: 'bind', source: b.host, target: b.container, readonly: b.readonly }));
  const profile: Profile = {
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
  const validateProfile: (p: unknown) => asserts p is Profile = (await profileMod()).validateProfile;
  validateProfile(profile);
  const { runProfile } = await enginesMod();
  const fds: number[] = [];
  const open = (p: string, f: string): number => { const fd = fs.openSync(p, f); fds.push(fd); return fd; };
  try {
    const io: [number | 'ignore', number | 'inherit', number | 'inherit'] = [run.stdin ? open(run.stdin, 'r') : 'ignore', run.stdout ? open(run.stdout, 'w') : 2, run.stderr ? open(run.stderr, 'w') : 2];
    const code = await runProfile(opts.ctx, profile, { engine: opts.engine, fds: io, timeoutMs: run.timeoutSec > 0 ? run.timeoutSec * 1000 : undefined });
    return run.timeoutSec > 0 && code === 128 + 9 ? -1 : code;
  } finally {
    for (const fd of fds) try { fs.closeSync(fd); } catch { /* */ }
  }
}
