import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Profile } from '../isolation/profile.js';
import { planMounts } from '../isolation/plan.js';
import { EXIT, UserError } from '../errors.js';
import { usernsBlocker, type HostFacts } from './facts.js';
import type { Engine, EngineContext, Invocation } from './types.js';

/**
 * R1: rootless runc or crun with a generated OCI runtime config. The config
 * has no cgroups, no resources and no linux.cgroupsPath: rootless runtimes
 * cannot create cgroups on most HPC hosts, and crun 1.8 refuses hybrid
 * cgroup layouts outright ("cgroups in hybrid mode not supported"), so runc
 * is preferred there and crun is run with --cgroup-manager=disabled.
 */
/** docker's default capability set for a container's root. */
const DOCKER_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

export function ociConfig(p: Profile, ec: EngineContext): Record<string, unknown> {
  const plan = planMounts(p, ec.scratch);
  const uid = process.getuid?.() ?? 1000;
  const gid = process.getgid?.() ?? 1000;
  const inUid = p.user.rootEmulation ? 0 : p.user.uid;
  const inGid = p.user.rootEmulation ? 0 : p.user.gid;
  const mounts: Array<Record<string, unknown>> = [];
  for (const m of plan.mounts) {
    switch (m.kind) {
      case 'bind': mounts.push({ destination: m.target, type: 'bind', source: m.source, options: ['rbind', 'nosuid', m.readonly ? 'ro' : 'rw'] }); break;
      case 'tmpfs': mounts.push({ destination: m.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', ...(m.sizeBytes ? [`size=${m.sizeBytes}`] : [])] }); break;
      case 'proc': mounts.push({ destination: m.target, type: 'proc', source: 'proc' }); break;
      case 'dev': mounts.push({ destination: m.target, type: 'bind', source: '/dev', options: ['rbind', 'nosuid'] }); break;
      case 'sys': mounts.push({ destination: m.target, type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'nodev', 'noexec', 'ro'] }); break;
    }
  }
  if (p.resources?.shmSizeBytes && p.sysdirs.dev) {
    mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'nodev', 'noexec', 'mode=1777', `size=${p.resources.shmSizeBytes}`] });
  }
  const ns: Array<{ type: string }> = [{ type: 'pid' }, { type: 'mount' }, { type: 'user' }, { type: 'ipc' }];
  if (p.hostname) ns.push({ type: 'uts' });
  if (p.network === 'none') ns.push({ type: 'network' });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: inUid, gid: inGid },
      args: p.argv,
      env: Object.entries(p.env).map(([k, v]) => `${k}=${v}`),
      cwd: p.workdir,
      noNewPrivileges: true,
      // Root gets docker's default capabilities (in the user namespace only): without CAP_DAC_OVERRIDE it could not
      // write a tmpfs over a directory of the sealed image tree (runc gives the tmpfs that directory's mode).
      capabilities: p.user.rootEmulation
        ? { bounding: DOCKER_CAPS, effective: DOCKER_CAPS, permitted: DOCKER_CAPS, inheritable: [], ambient: [] }
        : { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
    },
    root: { path: plan.root, readonly: plan.rootReadonly },
    ...(p.hostname ? { hostname: p.hostname } : {}),
    mounts,
    linux: {
      namespaces: ns,
      uidMappings: [{ containerID: inUid, hostID: uid, size: 1 }],
      gidMappings: [{ containerID: inGid, hostID: gid, size: 1 }],
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list'],
    },
  };
}

export const R1: Engine = {
  id: 'R1', name: 'rootless OCI runtime (runc / crun)', binaries: ['runc', 'crun'],
  summary: 'runc or crun, rootless, with a generated OCI runtime config (no cgroups)',
  cost: '~1x native; ~50 ms extra start-up for the runtime',
  enforces: {
    readonlyBinds: true, readonlyRootfs: true, rootEmulation: true, networkIsolation: true,
    pidIsolation: true, hostname: true, staticBinaries: true,
  },
  limits: [
    'needs unprivileged user namespaces',
    'no resource limits (rootless runtimes cannot create cgroups here)',
    'crun 1.8 refuses hybrid cgroup v1/v2 hosts; runc is used there',
    'runs as uid 0 only (runc needs uid 0 mapped; rootless there is one id to map): a non-root --user or image User is refused',
  ],
  fix: 'install runc (or crun on a pure cgroup v1/v2 host) and enable unprivileged user namespaces',
  unusable(f: HostFacts) {
    const rt = f.binaries.runc ?? (f.cgroup !== 'hybrid' ? f.binaries.crun : undefined);
    if (!rt) return f.binaries.crun ? 'only crun found, and crun 1.8 refuses this hybrid cgroup layout (install runc)' : 'neither runc nor crun found';
    return usernsBlocker(f);
  },
  build(p: Profile, ec: EngineContext): Invocation {
    if (!p.user.rootEmulation && p.user.uid !== 0) {
      // runc/crun need container uid 0 mapped (HostRootUID), and rootless we own a single host id: no room for another uid.
      throw new UserError(`engine R1 (runc/crun) cannot run as uid ${p.user.uid}${p.user.name ? ` (${p.user.name})` : ''}: rootless, only uid 0 can be mapped`,
        EXIT.internal, ec.fix?.('R1', 'use --user=0', ['U1', 'P1']) ?? 'use --engine=U1 or P1 (they run any uid), or --user=0');
    }
    const useRunc = !!ec.bins.runc; // runc works on every cgroup layout without cgroups; crun only as fallback
    const bin = useRunc ? ec.bins.runc! : ec.bins.crun!;
    const bundle = path.join(ec.scratch, 'bundle');
    fs.mkdirSync(bundle, { recursive: true });
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(ociConfig(p, ec), null, 1));
    const state = path.join(ec.scratch, 'state');
    fs.mkdirSync(state, { recursive: true, mode: 0o700 });
    const id = `userdock-${process.pid}-${path.basename(ec.scratch)}`.slice(0, 60);
    const logFile = path.join(ec.scratch, 'runtime.log');
    const args = useRunc
      ? ['--root', state, '--log', logFile, 'run', '--no-new-keyring', '--bundle', bundle, id]
      : ['--root', state, '--log', logFile, '--cgroup-manager=disabled', 'run', '--no-new-keyring', '--bundle', bundle, id];
    // XDG_RUNTIME_DIR must be ours: runc puts its state there when rootless.
    return { cmd: bin, args, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: os.homedir(), XDG_RUNTIME_DIR: state, ...ec.binEnv }, logFile, warnings: [] };
  },
};
