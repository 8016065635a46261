import fs from 'node:fs';
import path from 'node:path';
import type { Profile } from '../isolation/profile.js';
import { planMounts, type MountPlan } from '../isolation/plan.js';
import { usernsBlocker, type HostFacts } from './facts.js';
import type { Engine, EngineContext, Invocation } from './types.js';

/**
 * U1: unprivileged user namespaces. bubblewrap when present, else
 * util-linux `unshare` with bind mounts and a chroot done by a small host
 * shell script. Read-only binds are enforced by the kernel; the user maps to
 * itself or, with root emulation, to 0. Missing mount points are handled by
 * the skeleton plan (src/isolation/plan.ts): nothing is written into the
 * rootfs.
 */
function bwrapArgs(p: Profile, plan: MountPlan): string[] {
  const a: string[] = ['--die-with-parent', '--unshare-user', '--unshare-pid', '--unshare-ipc'];
  a.push('--uid', String(p.user.rootEmulation ? 0 : p.user.uid), '--gid', String(p.user.rootEmulation ? 0 : p.user.gid));
  if (p.network === 'none') a.push('--unshare-net');
  if (p.hostname) a.push('--unshare-uts', '--hostname', p.hostname);
  a.push(plan.rootReadonly ? '--ro-bind' : '--bind', plan.root, '/');
  for (const m of plan.mounts) {
    switch (m.kind) {
      case 'bind': a.push(m.readonly ? '--ro-bind' : '--bind', m.source, m.target); break;
      case 'tmpfs': if (m.sizeBytes) a.push('--size', String(m.sizeBytes)); a.push('--tmpfs', m.target); break;
      case 'proc': a.push('--proc', m.target); break;
      case 'dev': a.push('--dev', m.target); break;
      case 'sys': a.push('--ro-bind', '/sys', m.target); break;
    }
  }
  if (p.resources?.shmSizeBytes && p.sysdirs.dev) a.push('--size', String(p.resources.shmSizeBytes), '--tmpfs', '/dev/shm');
  a.push('--chdir', p.workdir, '--');
  return a;
}

function q(s: string): string { return `'${s.replace(/'/g, `'\\''`)}'`; }

/**
 * The root of a copy-on-write run (Profile.rootfsOverlay): an overlay of the
 * tree with an upper dir in the run's scratch, mounted in the user namespace
 * (kernel >= 5.11); where the kernel refuses, a private copy of the tree
 * there. Either way the tree itself is only read, and the scratch goes after
 * the run.
 */
function overlayRoot(lower: string, scratch: string): string[] {
  const o = q(path.join(scratch, 'overlay'));
  return [
    `mkdir -p ${o}/upper ${o}/work`,
    `if ! mount -t overlay overlay -o lowerdir=${q(lower)},upperdir=${o}/upper,workdir=${o}/work "$R" 2>/dev/null; then`,
    `  cp -a --reflink=auto ${q(lower)} ${o}/copy && chmod -R u+w ${o}/copy && mount --rbind ${o}/copy "$R"`,
    'fi',
  ];
}

/** A plan for a writable root: every mount point can be made in the root itself (no skeleton). */
function writablePlan(p: Profile): MountPlan {
  const mounts: MountPlan['mounts'] = [];
  for (const s of ['proc', 'dev', 'sys'] as const) if (p.sysdirs[s]) mounts.push({ kind: s, target: `/${s}` });
  for (const op of p.ops) {
    if (op.type === 'bind') mounts.push({ kind: 'bind', source: op.source, target: op.target, readonly: op.readonly });
    else mounts.push({ kind: 'tmpfs', target: op.target, ...(op.type === 'tmpfs' && op.sizeBytes ? { sizeBytes: op.sizeBytes } : {}) });
  }
  return { root: p.rootfs, rootReadonly: false, mounts, exploded: [] };
}

/** The unshare fallback: a host /bin/sh script run inside `unshare -U -m -p`. */
function unshareScript(p: Profile, plan: MountPlan, newroot: string, unshareBin: string, rootSetup?: string[]): string {
  const L: string[] = ['set -e', `R=${q(newroot)}`];
  L.push(...(rootSetup ?? [`mount --rbind ${q(plan.root)} "$R"`]));
  for (const m of plan.mounts) {
    const t = `"$R"${q(m.target)}`;
    switch (m.kind) {
      case 'bind': {
        let isDir = true; try { isDir = fs.statSync(m.source).isDirectory(); } catch { /* dir */ }
        L.push(isDir ? `[ -d ${t} ] || mkdir -p ${t}` : `[ -e ${t} ] || { mkdir -p "$(dirname ${t})"; : > ${t}; }`);
        L.push(`mount --rbind ${q(m.source)} ${t}`);
        if (m.readonly) L.push(`mount -o remount,bind,ro ${t}`);
        break;
      }
      case 'tmpfs': L.push(`mkdir -p ${t}`, `mount -t tmpfs ${m.sizeBytes ? `-o size=${m.sizeBytes} ` : ''}tmpfs ${t}`); break;
      case 'proc': L.push(`mount -t proc proc ${t}`); break;
      case 'dev': L.push(`mount --rbind /dev ${t}`); break;
      case 'sys': L.push(`mount --rbind /sys ${t}`); break;
    }
  }
  if (plan.rootReadonly && !rootSetup) L.splice(3, 0, 'mount -o remount,bind,ro "$R"');
  const envArgs = Object.entries(p.env).map(([k, v]) => q(`${k}=${v}`)).join(' ');
  L.push(`exec env -i ${envArgs} ${q(unshareBin)} --root="$R" --wd=${q(p.workdir)} ${p.argv.map(q).join(' ')}`);
  return L.join('\n') + '\n';
}

export const U1: Engine = {
  id: 'U1', name: 'user namespaces (bwrap / unshare)', binaries: ['bwrap', 'unshare'],
  summary: 'unprivileged user + mount + pid namespaces via bubblewrap, else util-linux unshare + chroot',
  cost: '~1x native (kernel mounts, no tracing)',
  enforces: {
    readonlyBinds: true, readonlyRootfs: true, rootEmulation: true, networkIsolation: true,
    pidIsolation: true, hostname: true, staticBinaries: true,
  },
  limits: [
    'needs unprivileged user namespaces (kernel >= 3.8, enabled by the site)',
    'inside, only your own uid exists: chown to other users fails',
    'with the unshare fallback, --network=none and --hostname are not honoured',
  ],
  fix: 'ask the admins to enable unprivileged user namespaces (sysctl user.max_user_namespaces=15000)',
  unusable(f: HostFacts) {
    if (!f.binaries.bwrap && !f.binaries.unshare) return 'neither bwrap nor unshare found';
    const why = usernsBlocker(f);
    if (why) return why;
    return undefined;
  },
  build(p: Profile, ec: EngineContext): Invocation {
    const overlay = !!p.rootfsOverlay;
    const plan = overlay ? writablePlan(p) : planMounts(p, ec.scratch);
    const warnings: string[] = [];
    // bubblewrap 0.8 has no overlay: a copy-on-write run takes the unshare path.
    if (ec.bins.bwrap && !overlay) {
      return { cmd: ec.bins.bwrap, args: [...bwrapArgs(p, plan), ...p.argv], env: { ...p.env, ...ec.binEnv }, warnings };
    }
    if (p.network === 'none') warnings.push('unshare fallback: --network=none is not honoured');
    const newroot = path.join(ec.scratch, 'newroot');
    fs.mkdirSync(newroot, { recursive: true });
    const script = path.join(ec.scratch, 'enter.sh');
    fs.writeFileSync(script, unshareScript(p, plan, newroot, ec.bins.unshare!, overlay ? overlayRoot(p.rootfs, ec.scratch) : undefined), { mode: 0o755 });
    const map = p.user.rootEmulation || p.user.uid === 0 ? '--map-root-user' : '--map-current-user';
    return {
      cmd: ec.bins.unshare!, args: ['--user', map, '--mount', '--pid', '--fork', '--kill-child', '--propagation', 'private', '/bin/sh', script],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...ec.binEnv }, warnings,
    };
  },
};
