import fs from 'node:fs';
import { UserError, EXIT } from '../errors.js';
import { getReq, type Process } from './load.js';
import type { ExecOptions } from './tool.js';

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

/** Modules owned by other workstreams, loaded lazily so cwl-run works without them (--no-container). */
async function optionalImport(spec: string): Promise<any | undefined> {
  try { return await import(spec); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw e;
  }
}

export async function resolveContainer(proc: Process, opts: ExecOptions): Promise<ContainerSpec | undefined> {
  const dr = getReq(proc, 'DockerRequirement');
  if (opts.noContainer) return undefined;
  let ref: string | undefined;
  const req = dr?.req;
  if (req) {
    if (req.dockerFile !== undefined) {
      if (dr.required) throw new UserError('DockerRequirement.dockerFile (building images) is not supported by cwl-run', EXIT.unsupported);
    }
    ref = req.dockerPull ?? req.dockerImageId;
    if (!ref && (req.dockerLoad || req.dockerImport)) {
      throw new UserError('DockerRequirement dockerLoad/dockerImport is not supported yet', EXIT.unsupported);
    }
  }
  if (!ref) ref = opts.defaultContainer;
  if (!ref) return undefined;
  const images = await optionalImport('../image/index.js');
  const rootfsMod = await optionalImport('../rootfs/index.js');
  const engines = await optionalImport('../engines/index.js');
  if (!images?.pullImage || !rootfsMod?.imageRootfs || !engines?.runProfile) {
    if (dr?.required) throw new UserError(`DockerRequirement ${ref}: the container engine is not available in this build`, EXIT.unsupported, 'run with --no-container');
    opts.log(`[container] engine not available; running ${ref} tool on the host`);
    return undefined;
  }
  let image = images.findImage ? await images.findImage(opts.ctx, ref).catch(() => undefined) : undefined;
  if (!image) image = await images.pullImage(opts.ctx, ref);
  const rootfs: string = await rootfsMod.imageRootfs(opts.ctx, image);
  const imageEnv: Record<string, string> = {};
  for (const kv of image?.config?.config?.Env ?? image?.config?.Env ?? []) {
    const i = String(kv).indexOf('=');
    if (i > 0) imageEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { image: ref, rootfs, outputDirectory: req?.dockerOutputDirectory, imageEnv };
}

export async function runContainer(spec: ContainerSpec, opts: ExecOptions, run: ContainerRun): Promise<number> {
  const engines = await optionalImport('../engines/index.js');
  const ops = run.binds.map((b) => ({ type: 'bind', source: b.host, target: b.container, readonly: b.readonly }));
  const profile = {
    version: 1,
    rootfs: spec.rootfs,
    rootfsWritable: false,
    ops,
    sysdirs: { proc: true, dev: true, sys: false },
    workdir: run.cwd,
    env: { ...spec.imageEnv, ...run.env },
    argv: run.argv,
    user: { uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000, rootEmulation: false },
    network: run.network ? 'host' : 'none',
  };
  const fds: number[] = [];
  const open = (p: string, f: string): number => { const fd = fs.openSync(p, f); fds.push(fd); return fd; };
  try {
    const stdio = [run.stdin ? open(run.stdin, 'r') : 'ignore', run.stdout ? open(run.stdout, 'w') : 2, run.stderr ? open(run.stderr, 'w') : 2];
    const p: Promise<number> = engines.runProfile(opts.ctx, profile, { engine: opts.engine, stdio });
    if (run.timeoutSec > 0) {
      let t: NodeJS.Timeout | undefined;
      const killer = new Promise<number>((resolve) => { t = setTimeout(() => resolve(-1), run.timeoutSec * 1000); });
      const code = await Promise.race([p, killer]);
      if (t) clearTimeout(t);
      return code;
    }
    return await p;
  } finally {
    for (const fd of fds) try { fs.closeSync(fd); } catch { /* */ }
  }
}
