import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from './command.js';
import { debug, type Context } from './context.js';
import { parseArgs, str, bool, list, type OptSpec, type Parsed } from './args.js';
import { EXIT, readFailure, UsageError, UserError } from '../errors.js';
import { openStore, type Image, type ImageConfig, type Store } from '../image/store.js';
import { parseReference } from '../image/reference.js';
import { buildRunProfile, parseEnvAssignment, parseEnvFile, parseSize, type BindOp } from '../isolation/profile.js';
import { splitVolume, parseMount, createNestedMountpoints } from '../isolation/volumes.js';
import { runProfile } from '../engines/index.js';
import { parseEngineId } from '../engines/ladder.js';
import { findContainer, imageRootfs, createContainer, removeContainer, updateContainer } from '../rootfs/index.js';

// Loaded on demand: the image module (registry client) costs ~0.3 s to import, which `run --rootfs` never needs.
const images = () => import('../image/index.js');

const RUN_SPEC: Record<string, OptSpec> = {
  volume: { kind: 'list', aliases: ['-v'] },
  mount: { kind: 'list' },
  workdir: { kind: 'string', aliases: ['-w'] },
  env: { kind: 'list', aliases: ['-e'] },
  'env-file': { kind: 'list' },
  user: { kind: 'string', aliases: ['-u'] },
  hostenv: { kind: 'bool' },
  nosysdirs: { kind: 'bool' },
  hostauth: { kind: 'bool' },
  containerauth: { kind: 'bool' },
  bindhome: { kind: 'bool' },
  rm: { kind: 'bool' },
  name: { kind: 'string' },
  entrypoint: { kind: 'string' },
  nometa: { kind: 'bool' },
  'cpuset-cpus': { kind: 'string' },
  nobanner: { kind: 'bool' },
  gpus: { kind: 'string' },
  'shm-size': { kind: 'string' },
  engine: { kind: 'string', aliases: ['--execmode'] },
  hostname: { kind: 'string' },
  net: { kind: 'string', aliases: ['--network'] },
  // docker flags cwltool and Toil pass: accepted (no effect, or as noted)
  interactive: { kind: 'bool', aliases: ['-i'] },
  tty: { kind: 'bool', aliases: ['-t'] },
  'read-only': { kind: 'bool' },
  'writable-tmpfs': { kind: 'bool' },
  'log-driver': { kind: 'string' },
  cidfile: { kind: 'string' },
  init: { kind: 'bool' },
  pull: { kind: 'string' },
  platform: { kind: 'string' },
  rootfs: { kind: 'string' },
};

const RUN_USAGE = `userdock run [options] IMAGE|CONTAINER|--rootfs=DIR [COMMAND [ARG...]]

  -v, --volume=HOST:CONT[:ro|:rw]   bind a host path (colons in paths are fine; options as docker's, case-sensitive)
  --mount=type=bind,source=S,target=T[,readonly]
  -w, --workdir=DIR   -e, --env=NAME=VALUE | NAME   --env-file=FILE
  -u, --user=NAME|UID[:GID]   --hostauth  --bindhome  --hostenv  --nosysdirs
  --entrypoint=CMD  --nometa  --name=NAME  --rm  --hostname=H  --net=none
  --cpuset-cpus=LIST  --shm-size=SIZE  --engine=P1|P2|U1|R1|F1|S1  (--gpus: refused, not supported yet)
  --writable-tmpfs    a private writable copy of the image for this run (the image itself is read-only)
  -i, -t (or -it): as docker's; with -t the container gets TERM (the caller's, else xterm)
The command's exit code is returned; 125 userdock failed, 126 not executable, 127 not found.`;

/** Collect binds in command-line order (--volume and --mount interleaved as given). */
function orderedBinds(argv: string[], p: Parsed): BindOp[] {
  const vols = list(p, 'volume'); const mounts = list(p, 'mount');
  const out: BindOp[] = [];
  let vi = 0; let mi = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a === '-v' || a === '--volume' || a.startsWith('--volume=') || (a.startsWith('-v') && a.length > 2 && !a.startsWith('--'))) {
      if (vi < vols.length) out.push(splitVolume(vols[vi++]));
    } else if (a === '--mount' || a.startsWith('--mount=')) {
      if (mi < mounts.length) out.push(parseMount(mounts[mi++]));
    }
  }
  while (vi < vols.length) out.push(splitVolume(vols[vi++]));
  while (mi < mounts.length) out.push(parseMount(mounts[mi++]));
  return out;
}

interface Target { rootfs: string; writable: boolean; config?: ImageConfig['config']; execmode?: string; containerId?: string }

// ------------------------------------------------------------------ hot path
//
// `run CONTAINER` and `run IMAGE` with the image and its pristine tree present
// must not pay for the registry client (src/image/index, loaded on demand
// below). src/rootfs is imported statically: it loads its layer extractor
// (tar, fzstd) only when it has to extract, so finding a container or a
// present pristine tree through it costs a stat or two.

/** An image by manifest digest, reading its two JSON blobs once. */
function imageByDigest(store: Store, name: string, digest: string): Image | undefined {
  try {
    const manifest = store.readJSONBlob<Image['manifest']>(digest);
    const config = store.readJSONBlob<ImageConfig>(manifest.config.digest);
    return { ref: { name, digest, updated: '' }, manifest, config, id: manifest.config.digest };
  } catch { return undefined; }
}

/** A stored image by exact name (no id prefixes, no registry code loaded). */
function imageByName(store: Store, what: string): Image | undefined {
  let storeName: string;
  try { storeName = parseReference(what).storeName; } catch { return undefined; }
  const ref = store.getRef(storeName);
  if (!ref) return undefined;
  try { return store.loadImage(ref); } catch { return undefined; }
}

async function resolveTarget(ctx: Context, what: string, p: Parsed, mark: (m: string) => void): Promise<Target> {
  const rootfsOpt = str(p, 'rootfs');
  if (rootfsOpt) {
    const r = path.resolve(rootfsOpt);
    if (!fs.statSync(r, { throwIfNoEntry: false })?.isDirectory()) throw new UserError(`--rootfs ${r} is not a directory`, EXIT.internal);
    return { rootfs: r, writable: false };
  }
  const store = openStore(ctx.storeDir);
  const c = findContainer(ctx, what);
  if (c) {
    const img = (c.imageDigest ? imageByDigest(store, c.image ?? '', c.imageDigest) : undefined)
      ?? (c.image ? imageByName(store, c.image) ?? (await images()).findImage(store, c.image) : undefined);
    mark(`container ${c.id}`);
    return { rootfs: c.rootfs, writable: true, config: img?.config.config, execmode: c.execmode, containerId: c.id };
  }
  const pull = str(p, 'pull');
  let image: Image | undefined = pull === 'always' ? undefined : imageByName(store, what);
  if (!image && pull !== 'always') image = (await images()).findImage(store, what);
  if (!image) {
    if (pull === 'never') throw new UserError(`image "${what}" is not in the store ${ctx.storeDir} and --pull=never`, EXIT.internal, `pull it first: 'userdock pull ${what}'`);
    image = await (await images()).pullImage(ctx, what, pull === 'always' ? { ttlMs: 0 } : {});
  }
  mark(`image ${image.ref.name}`);
  const name = str(p, 'name');
  if (name) {
    const created = await createContainer(ctx, image, { name });
    return { rootfs: created.rootfs, writable: true, config: image.config.config, containerId: created.id };
  }
  return { rootfs: await imageRootfs(ctx, image), writable: false, config: image.config.config };
}

async function runCmd(ctx: Context, argv: string[]): Promise<number> {
  // -D: where start-up time goes (ms since the process started, node's own boot included).
  const mark = (m: string) => { if (ctx.debug) debug(ctx, `+${performance.now().toFixed(1)} ms ${m}`); };
  mark('run: modules loaded');
  const p = parseArgs(argv, RUN_SPEC, 'run', true);
  const rootfsMode = !!str(p, 'rootfs');
  const [what, ...cmd] = rootfsMode ? ['', ...p.positional] : p.positional;
  if (!rootfsMode && !what) throw new UsageError('run: missing IMAGE or CONTAINER', `usage: ${RUN_USAGE.split('\n')[0]}`);
  const engine = str(p, 'engine');
  if (engine) parseEngineId(engine);
  // Fail loudly rather than run on the CPU while the caller asked for GPUs.
  const gpus = str(p, 'gpus');
  if (gpus !== undefined) {
    throw new UserError(`run: --gpus=${gpus}: userdock cannot pass GPUs into containers yet (no driver libraries or device nodes would be visible, so the command would silently run on the CPU)`,
      EXIT.internal, 'run without --gpus for a CPU run, or use a GPU-aware runtime for this step');
  }
  const net = str(p, 'net');
  const env: Array<[string, string]> = [];
  for (const f of list(p, 'env-file')) {
    let text: string;
    try { text = fs.readFileSync(f, 'utf8'); } catch (e) {
      throw new UserError(`--env-file ${f}: cannot read it: ${readFailure(e)}`, EXIT.internal, 'give a readable file of NAME=VALUE lines');
    }
    env.push(...parseEnvFile(text, ctx.env));
  }
  for (const e of list(p, 'env')) { const kv = parseEnvAssignment(e, ctx.env); if (kv) env.push(kv); }
  const binds = orderedBinds(argv, p);
  createNestedMountpoints(binds);
  if (bool(p, 'writable-tmpfs') && bool(p, 'read-only')) throw new UsageError('run: --writable-tmpfs and --read-only contradict each other', 'give one of them');
  const target = await resolveTarget(ctx, what, p, mark);
  mark(`target ${target.rootfs}`);
  const shm = str(p, 'shm-size');
  const profile = buildRunProfile({
    rootfs: target.rootfs,
    rootfsWritable: target.writable,
    // --writable-tmpfs: a private copy-on-write view for this run only, never the shared tree (a container is writable already).
    rootfsOverlay: bool(p, 'writable-tmpfs') && !target.writable,
    config: target.config,
    nometa: bool(p, 'nometa'),
    cmd,
    entrypoint: str(p, 'entrypoint'),
    binds,
    env,
    hostenv: bool(p, 'hostenv'),
    callerEnv: ctx.env,
    workdir: str(p, 'workdir'),
    user: str(p, 'user'),
    nosysdirs: bool(p, 'nosysdirs'),
    hostauth: bool(p, 'hostauth') && !bool(p, 'containerauth'),
    bindhome: bool(p, 'bindhome'),
    home: ctx.env.HOME || os.homedir(),
    hostname: str(p, 'hostname'),
    network: net === 'none' ? 'none' : 'host',
    cpusetCpus: str(p, 'cpuset-cpus'),
    shmSizeBytes: shm ? parseSize(shm) : undefined,
    gpus: str(p, 'gpus'),
    tty: bool(p, 'tty'),
  });
  const cidfile = str(p, 'cidfile');
  if (cidfile && target.containerId) fs.writeFileSync(cidfile, target.containerId);
  try {
    mark('profile built');
    return await runProfile(ctx, profile, { engine, execmode: target.execmode, mark });
  } finally {
    if (bool(p, 'rm') && target.containerId) {
      try { await removeContainer(ctx, target.containerId, { force: true }); } catch (e) {
        process.stderr.write(`userdock run: warning: --rm: ${(e as Error).message}\n`);
      }
    }
  }
}

const ENGINES_SPEC: Record<string, OptSpec> = { json: { kind: 'bool' }, bench: { kind: 'bool' }, refresh: { kind: 'bool' }, 'no-probe': { kind: 'bool' } };

async function enginesCmd(ctx: Context, argv: string[]): Promise<number> {
  const p = parseArgs(argv, ENGINES_SPEC, 'engines');
  const { enginesReport, printEngines, benchEngines } = await import('../engines/report.js');
  const report = await enginesReport(ctx, { refresh: bool(p, 'refresh'), probe: !bool(p, 'no-probe') });
  if (bool(p, 'bench')) report.bench = await benchEngines(ctx, report);
  if (bool(p, 'json')) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else process.stdout.write(printEngines(report));
  return report.rungs.some((r) => r.usable) ? 0 : 1;
}

const SETUP_SPEC: Record<string, OptSpec> = {
  execmode: { kind: 'string', aliases: ['--engine'] },
  'install-engines': { kind: 'bool' },
  url: { kind: 'string' },
  force: { kind: 'bool' },
  purge: { kind: 'bool' },
  nvidia: { kind: 'bool' },
};

async function setupCmd(ctx: Context, argv: string[]): Promise<number> {
  const p = parseArgs(argv, SETUP_SPEC, 'setup');
  if (bool(p, 'nvidia') || bool(p, 'purge')) {
    throw new UserError(`setup --${bool(p, 'nvidia') ? 'nvidia' : 'purge'}: passing the host's NVIDIA driver into containers is not supported yet`, 1,
      'containers run on the CPU; nothing was changed');
  }
  let did = false;
  if (bool(p, 'install-engines')) {
    const { installEngines } = await import('../engines/install.js');
    const got = await installEngines(ctx, { url: str(p, 'url') ?? ctx.env.USERDOCK_ENGINES_URL, force: bool(p, 'force') });
    process.stderr.write(`userdock setup: installed ${got.join(', ')} into ${path.join(ctx.storeDir, 'engines')}\n`);
    did = true;
  }
  const mode = str(p, 'execmode');
  if (mode !== undefined) {
    const id = parseEngineId(mode, '--execmode');
    const name = p.positional[0];
    if (!name) throw new UsageError('setup --execmode needs a CONTAINER', 'usage: userdock setup --execmode=P1|P2|U1|R1|F1|S1 CONTAINER');
    if (!findContainer(ctx, name)) throw new UserError(`container "${name}" not found in ${ctx.storeDir}`, 1, "see 'userdock ps'");
    await updateContainer(ctx, name, (c) => { c.execmode = id; });
    did = true;
  } else if (p.positional.length) {
    const c = findContainer(ctx, p.positional[0]);
    if (!c) throw new UserError(`container "${p.positional[0]}" not found in ${ctx.storeDir}`, 1, "see 'userdock ps'");
    process.stdout.write(`${c.id} execmode=${c.execmode ?? 'auto'}\n`);
    did = true;
  }
  if (!did) throw new UsageError('setup: nothing to do', 'usage: userdock setup --execmode=MODE CONTAINER | setup --install-engines [--url=URL]');
  return 0;
}

export const commands: Record<string, Command> = {
  run: { summary: 'Run a command in an image or container, without root.', usage: RUN_USAGE, run: runCmd },
  engines: {
    summary: 'Show the engine ladder on this host: each rung, usable or why not, what it enforces and costs.',
    usage: 'userdock engines [--json] [--bench] [--refresh] [--no-probe]',
    run: enginesCmd,
  },
  setup: {
    summary: 'Set a container\'s engine, or install engine binaries into the store.',
    usage: 'userdock setup --execmode=P1|P2|U1|R1|F1|S1 CONTAINER\nuserdock setup --install-engines [--url=URL] [--force]',
    run: setupCmd,
  },
};
