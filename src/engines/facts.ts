import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../image/store.js';
import { compareVersions } from '../isolation/resolve.js';
import type { EngineId } from './types.js';

/**
 * Host facts: probed cheaply (files under /proc, PATH lookups) and cached per
 * host+kernel in <store>/hostfacts/<hostname>-<kernel>.json, together with the
 * results of real engine probes. Injectable: USERDOCK_HOSTFACTS names a JSON
 * file (or holds inline JSON) merged over the probed facts, so a site or a
 * test can describe a CentOS 6 host, a no-ptrace host, a Lustre store.
 */
export interface FsFact { path: string; type: string; noexec: boolean }

export interface ProbeResult {
  ok: boolean; error?: string; ms?: number; at: string;
  /** A failed probe's diagnosis: the host-side fix and the rungs to try instead (see diagnose, fixHint). */
  fix?: string; instead?: EngineId[];
}

export interface HostFacts {
  schema: 1;
  hostname: string;
  kernel: string;
  arch: string;
  /** seccomp filter mode (SECCOMP_MODE_FILTER, kernel >= 3.5 with CONFIG_SECCOMP_FILTER). */
  seccompFilter: boolean;
  /** yama ptrace_scope (undefined when yama is absent = 0). */
  ptraceScope?: number;
  /** ptrace of our own children is permitted (scope < 3, not blocked by a seccomp filter on us). */
  ptraceAllowed: boolean;
  maxUserNamespaces?: number;
  /** Debian/Ubuntu kernel.unprivileged_userns_clone. */
  unprivilegedUsernsClone?: number;
  /** Ubuntu 24.04 kernel.apparmor_restrict_unprivileged_userns. */
  apparmorRestrictUserns?: number;
  /** We already run under a seccomp filter (inside docker, say). */
  underSeccomp: boolean;
  /** cgroup layout: v1, v2 or hybrid (crun refuses hybrid rootless). */
  cgroup: 'v1' | 'v2' | 'hybrid' | 'none';
  store: FsFact;
  tmp: FsFact;
  /** Engine binaries found: name -> absolute path. */
  binaries: Record<string, string | undefined>;
  prootVersion?: string;
  /** Results of `true` in a tiny rootfs, per engine id. */
  probes: Record<string, ProbeResult>;
  probedAt: string;
}

export const ENGINE_BINARIES = ['proot', 'bwrap', 'unshare', 'runc', 'crun', 'fakechroot', 'chroot', 'apptainer', 'singularity', 'newuidmap'];

function readNum(file: string): number | undefined {
  try { const v = parseInt(fs.readFileSync(file, 'utf8').trim(), 10); return Number.isNaN(v) ? undefined : v; } catch { return undefined; }
}

/** Directories searched for engine binaries: the store's installed engines first, then PATH. */
export function engineBinDirs(storeDir: string, env: NodeJS.ProcessEnv): string[] {
  const inStore = [path.join(storeDir, 'engines', 'bin'), path.join(storeDir, 'engines', 'root', 'usr', 'bin'),
    path.join(storeDir, 'engines', 'root', 'usr', 'sbin'), path.join(storeDir, 'engines', 'root', 'bin')];
  const fromPath = (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':').filter((d) => d.startsWith('/'));
  return [...inStore, ...fromPath, '/usr/sbin', '/sbin'];
}

export function which(name: string, dirs: string[]): string | undefined {
  for (const d of dirs) {
    const p = path.join(d, name);
    try { fs.accessSync(p, fs.constants.X_OK); if (fs.statSync(p).isFile()) return p; } catch { /* next */ }
  }
  return undefined;
}

/** Filesystem type and noexec flag of the mount holding p (from /proc/self/mountinfo). */
export function fsFact(p: string): FsFact {
  let real = p;
  for (let q = p; ; q = path.dirname(q)) {
    try { real = path.join(fs.realpathSync(q), path.relative(q, p)); break; } catch { if (q === '/') break; }
  }
  let best = { mp: '', type: 'unknown', noexec: false };
  try {
    for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f.length < 10) continue;
      const mp = f[4].replace(/\\040/g, ' ');
      const sep = f.indexOf('-');
      const type = f[sep + 1];
      const inside = real === mp || real.startsWith(mp === '/' ? '/' : mp + '/');
      if (inside && mp.length >= best.mp.length) best = { mp, type, noexec: f[5].split(',').includes('noexec') };
    }
  } catch { /* no /proc */ }
  return { path: p, type: best.type, noexec: best.noexec };
}

function cgroupLayout(): HostFacts['cgroup'] {
  try {
    const mi = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const v1 = / - cgroup /.test(mi);
    const v2 = / - cgroup2 /.test(mi);
    return v1 && v2 ? 'hybrid' : v2 ? 'v2' : v1 ? 'v1' : 'none';
  } catch { return 'none'; }
}

/** Probe the facts of this host (cheap: no process is started except `proot --version`). */
export function probeHostFacts(storeDir: string, env: NodeJS.ProcessEnv = process.env): HostFacts {
  const kernel = os.release();
  let status = '';
  try { status = fs.readFileSync('/proc/self/status', 'utf8'); } catch { /* no /proc */ }
  const seccompMode = /^Seccomp:\s*(\d)/m.exec(status);
  const ptraceScope = readNum('/proc/sys/kernel/yama/ptrace_scope');
  const underSeccomp = seccompMode ? seccompMode[1] === '2' : false;
  const dirs = engineBinDirs(storeDir, env);
  const binaries: Record<string, string | undefined> = {};
  for (const b of ENGINE_BINARIES) binaries[b] = which(b, dirs);
  let prootVersion: string | undefined;
  if (binaries.proot) {
    const r = spawnSync(binaries.proot, ['--version'], { encoding: 'utf8', timeout: 5000 });
    prootVersion = /v?(\d+\.\d+(?:\.\d+)?)/.exec(`${r.stdout}${r.stderr}`)?.[1];
  }
  return {
    schema: 1,
    hostname: os.hostname(),
    kernel,
    arch: os.arch(),
    seccompFilter: seccompMode !== null && compareVersions(kernel, '3.5') >= 0,
    ptraceScope,
    ptraceAllowed: (ptraceScope ?? 0) < 3,
    maxUserNamespaces: readNum('/proc/sys/user/max_user_namespaces'),
    unprivilegedUsernsClone: readNum('/proc/sys/kernel/unprivileged_userns_clone'),
    apparmorRestrictUserns: readNum('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
    underSeccomp,
    cgroup: cgroupLayout(),
    store: fsFact(storeDir),
    tmp: fsFact(env.TMPDIR || '/tmp'),
    binaries,
    prootVersion,
    probes: {},
    probedAt: new Date().toISOString(),
  };
}

/** Why user namespaces are unavailable for us (undefined: they may work). */
export function usernsBlocker(f: HostFacts): string | undefined {
  if (compareVersions(f.kernel, '3.8') < 0) return `kernel ${f.kernel} has no unprivileged user namespaces (needs >= 3.8)`;
  if (f.maxUserNamespaces === 0) return 'user namespaces are disabled (user.max_user_namespaces = 0)';
  if (f.unprivilegedUsernsClone === 0) return 'unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)';
  if (f.apparmorRestrictUserns === 1) return 'AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)';
  return undefined;
}

export function factsFile(storeDir: string, hostname = os.hostname(), kernel = os.release()): string {
  return path.join(storeDir, 'hostfacts', `${hostname}-${kernel}.json`.replace(/[^A-Za-z0-9._-]/g, '_'));
}

/** Facts override from USERDOCK_HOSTFACTS (a file path or inline JSON). */
export function factsOverride(env: NodeJS.ProcessEnv): Partial<HostFacts> | undefined {
  const v = env.USERDOCK_HOSTFACTS;
  if (!v) return undefined;
  const text = v.trim().startsWith('{') ? v : fs.readFileSync(v, 'utf8');
  return JSON.parse(text) as Partial<HostFacts>;
}

export function mergeFacts(base: HostFacts, over: Partial<HostFacts> | undefined): HostFacts {
  if (!over) return base;
  return {
    ...base, ...over,
    binaries: { ...base.binaries, ...(over.binaries ?? {}) },
    probes: { ...base.probes, ...(over.probes ?? {}) },
    store: { ...base.store, ...(over.store ?? {}) },
    tmp: { ...base.tmp, ...(over.tmp ?? {}) },
  };
}

/** Cached facts for this host+kernel, probing when absent (or when refresh is asked). */
export function loadHostFacts(storeDir: string, env: NodeJS.ProcessEnv = process.env, refresh = false): HostFacts {
  const file = factsFile(storeDir);
  let facts: HostFacts | undefined;
  if (!refresh) {
    try {
      facts = JSON.parse(fs.readFileSync(file, 'utf8')) as HostFacts;
      // Binaries come and go (setup --install-engines, modules): cheap to re-check.
      if (facts.schema !== 1 || Object.entries(facts.binaries).some(([, p]) => p && !fs.existsSync(p))) facts = undefined;
      // Sysctls can change without a reboot: re-read them (cheap) and re-probe when they moved.
      else if (facts.ptraceScope !== readNum('/proc/sys/kernel/yama/ptrace_scope')
        || facts.maxUserNamespaces !== readNum('/proc/sys/user/max_user_namespaces')
        || facts.unprivilegedUsernsClone !== readNum('/proc/sys/kernel/unprivileged_userns_clone')
        || facts.apparmorRestrictUserns !== readNum('/proc/sys/kernel/apparmor_restrict_unprivileged_userns')) facts = undefined;
    } catch { facts = undefined; }
  }
  if (!facts) {
    facts = probeHostFacts(storeDir, env);
    saveHostFacts(storeDir, facts);
  }
  forgetStaleFailures(facts);
  return mergeFacts(facts, factsOverride(env));
}

/**
 * A failed engine probe is trusted for 10 minutes, then probed again: a
 * failure can be passing (the CLI run under strace, where ptrace is taken;
 * a full disk; a killed probe), and a rung should not stay off until
 * `engines --refresh`. A success is kept (the facts it depends on are
 * re-checked above).
 */
export const FAILED_PROBE_TTL_MS = 10 * 60_000;

function forgetStaleFailures(facts: HostFacts, now = Date.now()): void {
  for (const [id, p] of Object.entries(facts.probes)) {
    if (p && !p.ok && !(now - Date.parse(p.at) < FAILED_PROBE_TTL_MS)) delete facts.probes[id];
  }
}

export function saveHostFacts(storeDir: string, facts: HostFacts): void {
  const file = factsFile(storeDir, facts.hostname, facts.kernel);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, JSON.stringify(facts, null, 2) + '\n');
  } catch { /* a read-only store still runs */ }
}

/** Record a probe result in the cached (un-overridden) facts file. */
export function recordProbe(storeDir: string, id: string, result: ProbeResult): void {
  const file = factsFile(storeDir);
  let facts: HostFacts;
  try { facts = JSON.parse(fs.readFileSync(file, 'utf8')) as HostFacts; } catch { return; }
  facts.probes[id] = result;
  saveHostFacts(storeDir, facts);
}

// ------------------------------------------------------------ fact sets

/** Known hosts, for tests and for `userdock engines --facts=NAME`. */
export function sampleFacts(name: 'centos6' | 'centos7' | 'lustre' | 'modern'): HostFacts {
  const base: HostFacts = {
    schema: 1, hostname: name, kernel: '6.1.0', arch: 'x64', seccompFilter: true, ptraceScope: 1, ptraceAllowed: true,
    maxUserNamespaces: 63000, underSeccomp: false, cgroup: 'v2',
    store: { path: '/home/u/.local/share/userdock', type: 'ext4', noexec: false },
    tmp: { path: '/tmp', type: 'tmpfs', noexec: false },
    binaries: { proot: '/usr/bin/proot', bwrap: '/usr/bin/bwrap', unshare: '/usr/bin/unshare', runc: '/usr/bin/runc', crun: '/usr/bin/crun', fakechroot: '/usr/bin/fakechroot', chroot: '/usr/sbin/chroot' },
    prootVersion: '5.1.0', probes: {}, probedAt: '2024-01-01T00:00:00Z',
  };
  switch (name) {
    case 'centos6': return { ...base, kernel: '2.6.32-754.el6.x86_64', seccompFilter: false, ptraceScope: undefined, maxUserNamespaces: undefined, cgroup: 'v1',
      binaries: { proot: '/usr/bin/proot', unshare: '/usr/bin/unshare', chroot: '/usr/sbin/chroot' } };
    case 'centos7': return { ...base, kernel: '3.10.0-1160.el7.x86_64', maxUserNamespaces: 0, cgroup: 'v1',
      binaries: { proot: '/usr/bin/proot', unshare: '/usr/bin/unshare', fakechroot: '/usr/bin/fakechroot', chroot: '/usr/sbin/chroot' } };
    case 'lustre': return { ...base, kernel: '4.18.0-477.el8.x86_64', store: { path: '/lustre/home/u/.local/share/userdock', type: 'lustre', noexec: false },
      tmp: { path: '/tmp', type: 'xfs', noexec: true }, cgroup: 'v1' };
    default: return base;
  }
}
