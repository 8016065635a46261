import fs from 'node:fs';
import path from 'node:path';
import { EXIT, UserError } from '../errors.js';
import type { Profile } from '../isolation/profile.js';
import { checkCommand, resolveContainerPath } from '../isolation/resolve.js';
import type { HostFacts } from './facts.js';
import type { Engine, EngineContext, Invocation } from './types.js';

/** True when the ELF file has no PT_INTERP (a static binary). undefined: not ELF. */
export function isStaticElf(file: string): boolean | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const h = Buffer.alloc(64);
    fs.readSync(fd, h, 0, 64, 0);
    if (h.readUInt32BE(0) !== 0x7f454c46) return undefined;
    const is64 = h[4] === 2;
    const phoff = is64 ? Number(h.readBigUInt64LE(32)) : h.readUInt32LE(28);
    const phentsize = is64 ? h.readUInt16LE(54) : h.readUInt16LE(42);
    const phnum = is64 ? h.readUInt16LE(56) : h.readUInt16LE(44);
    const ph = Buffer.alloc(phentsize * phnum);
    fs.readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3) return false; // PT_INTERP
    return true;
  } catch { return undefined; } finally { if (fd !== undefined) fs.closeSync(fd); }
}

/**
 * F1: fakechroot (LD_PRELOAD of libfakechroot into the image's own dynamic
 * loader). No kernel feature needed, near-native speed, but: no static
 * binaries, musl images fail, the host libfakechroot must match the image's
 * glibc, binds only where host path == container path.
 */
export const F1: Engine = {
  id: 'F1', name: 'fakechroot (LD_PRELOAD)', binaries: ['fakechroot', 'chroot'],
  summary: 'fakechroot: path rewriting by LD_PRELOAD inside the dynamic loader',
  cost: '~1.2x native (library interposition only)',
  enforces: {
    readonlyBinds: false, readonlyRootfs: false, rootEmulation: false, networkIsolation: false,
    pidIsolation: false, hostname: false, staticBinaries: false,
  },
  limits: [
    'static binaries (busybox, Go programs) escape or fail: not supported',
    'musl images (Alpine) fail; images with a glibc newer than the host libfakechroot fail',
    'binds only at the same path inside as outside; no read-only binds; no root emulation',
    'LD_PRELOAD and FAKECHROOT_* are visible in the environment; the host /tmp is visible at /tmp',
  ],
  fix: 'install fakechroot (apt install fakechroot)',
  unusable(f: HostFacts) {
    if (!f.binaries.fakechroot) return 'fakechroot not found';
    if (!f.binaries.chroot) return 'chroot (coreutils) not found';
    return undefined;
  },
  build(p: Profile, ec: EngineContext): Invocation {
    const warnings: string[] = [];
    const exclude = new Set<string>();
    for (const s of ['proc', 'dev', 'sys'] as const) if (p.sysdirs[s]) exclude.add(`/${s}`);
    for (const op of p.ops) {
      if (op.type !== 'bind') continue; // tmpfs/dir ops: see below
      if (op.source !== op.target) {
        throw new UserError(`engine F1 (fakechroot) cannot bind ${op.source} at a different path ${op.target}`, EXIT.internal,
          ec.fix?.('F1', 'bind at the same path (-v /data:/data)', ['P1', 'U1']) ?? 'bind at the same path (-v /data:/data) or choose another engine with --engine=P1 or U1');
      }
      exclude.add(op.target);
      if (op.readonly) warnings.push(`F1 cannot make ${op.target} read-only`);
    }
    const tmpOp = p.ops.find((o) => o.type === 'tmpfs' && o.target === '/tmp');
    if (tmpOp) {
      // fakechroot cannot map a fresh directory at /tmp: the host's /tmp is passed through (stated in limits).
      exclude.add('/tmp');
      warnings.push("F1 shows the host's /tmp at /tmp");
    }
    if (p.user.rootEmulation) warnings.push('F1 does not emulate root: the command runs as your own uid');
    if (p.resources?.shmSizeBytes !== undefined) warnings.push("F1 cannot size /dev/shm: the host's is used");
    const cmd = p.argv[0];
    // The command as the image's PATH finds it (busybox's `echo` is a link to a static binary).
    const resolved = checkCommand(p).resolved ?? cmd;
    const loc = resolved.includes('/') ? resolveContainerPath(p.rootfs, p.ops, resolved).loc : undefined;
    if (loc?.kind === 'host' && loc.host && isStaticElf(loc.host)) {
      throw new UserError(`engine F1 (fakechroot) cannot run the static binary ${resolved === cmd ? cmd : `${resolved} (${cmd})`}`, EXIT.internal,
        ec.fix?.('F1', 'use an image whose programs are dynamically linked', ['P1', 'U1']) ?? 'use --engine=P1 or U1 for static binaries');
    }
    const cwdHost = resolveContainerPath(p.rootfs, p.ops, p.workdir).loc;
    const cwd = cwdHost.kind === 'host' && cwdHost.host ? cwdHost.host : p.rootfs;
    return {
      cmd: ec.bins.fakechroot!,
      args: ['-e', 'none', ec.bins.chroot!, p.rootfs, ...p.argv],
      env: { ...p.env, ...ec.binEnv, FAKECHROOT_EXCLUDE_PATH: [...exclude].join(':') },
      cwd: fs.existsSync(cwd) ? cwd : p.rootfs,
      warnings,
    };
  },
};

/**
 * S1: apptainer / singularity `exec` on the rootfs directory (a sandbox).
 * Only when installed by the site.
 */
export const S1: Engine = {
  id: 'S1', name: 'apptainer / singularity', binaries: ['apptainer', 'singularity'],
  summary: 'apptainer (or singularity) exec --contain on the rootfs as a sandbox directory',
  cost: '~1x native; ~0.3 s start-up',
  enforces: {
    readonlyBinds: true, readonlyRootfs: true, rootEmulation: true, networkIsolation: true,
    pidIsolation: true, hostname: true, staticBinaries: true,
  },
  limits: ['needs a site installation of apptainer or singularity', 'root emulation needs --fakeroot support configured by the site'],
  fix: 'load the site module (module load apptainer)',
  unusable(f: HostFacts) {
    if (!f.binaries.apptainer && !f.binaries.singularity) return 'apptainer/singularity not found';
    return undefined;
  },
  build(p: Profile, ec: EngineContext): Invocation {
    const bin = ec.bins.apptainer ?? ec.bins.singularity!;
    const prefix = path.basename(bin) === 'singularity' ? 'SINGULARITYENV_' : 'APPTAINERENV_';
    const args = ['exec', '--contain', '--cleanenv', '--no-home', '--pid', '--ipc', '--pwd', p.workdir];
    if (p.user.rootEmulation) args.push('--fakeroot');
    if (p.network === 'none') args.push('--net', '--network', 'none');
    if (p.hostname) args.push('--uts', '--hostname', p.hostname);
    if (!p.sysdirs.dev) args.push('--no-mount', 'dev');
    for (const op of p.ops) {
      if (op.type === 'bind') args.push('--bind', `${op.source}:${op.target}:${op.readonly ? 'ro' : 'rw'}`);
      else if (op.target === '/tmp') { /* --contain gives a private /tmp */ } else {
        const d = path.join(ec.scratch, `t${op.target.replace(/\//g, '_')}`);
        fs.mkdirSync(d, { recursive: true });
        args.push('--bind', `${d}:${op.target}:rw`);
      }
    }
    args.push(p.rootfs, ...p.argv);
    const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...ec.binEnv };
    for (const [k, v] of Object.entries(p.env)) env[prefix + k] = v;
    const warnings = p.resources?.shmSizeBytes !== undefined ? ["S1 does not size /dev/shm: apptainer's is used"] : [];
    return { cmd: bin, args, env, warnings };
  },
};
