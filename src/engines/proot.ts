import fs from 'node:fs';
import path from 'node:path';
import type { Profile } from '../isolation/profile.js';
import { resolveContainerPath } from '../isolation/resolve.js';
import type { HostFacts } from './facts.js';
import { guardPath } from './guard.js';
import type { Engine, EngineContext, Invocation } from './types.js';
import { extractProotLoader } from './proot-loader.js';

/**
 * P1/P2: PRoot (ptrace). Works without any kernel feature but ptrace; costs
 * ~70x native on metadata-heavy work (every syscall is traced). P1 lets PRoot
 * use seccomp to trace only path syscalls; P2 sets PROOT_NO_SECCOMP=1 for
 * kernels where that crashes (signal 11, CentOS 7.9, kernels >= 4.8 with old
 * PRoot builds).
 *
 * Binds are made virtually by PRoot. A bind target missing from the image
 * (and its missing parents) would by default be mkdir'ed by PRoot INTO the
 * rootfs when it is writable (as a pulled tree is: it belongs to the user) and
 * removed at exit: that writes the shared pristine tree, and concurrent runs
 * race (run A rmdir's /var while run B still resolves /var/spool/cwl
 * through it: "can't create out.txt: nonexistent directory"). With
 * PROOT_DONT_POLLUTE_ROOTFS PRoot always builds its per-process "glue" tree
 * instead (a private mkdtemp dir under its temp directory), as it does for a
 * read-only rootfs. PRoot splits -b at the first ':', so host paths with a
 * colon are passed through a symlink in the per-run scratch dir.
 */
function prootBuild(p: Profile, ec: EngineContext, noSeccomp: boolean): Invocation {
  const bin = ec.bins.proot!;
  const warnings: string[] = [];
  const args: string[] = ['-r', p.rootfs];
  // PRoot's root emulation (-0) writes through file permissions (it chmods a path it may not
  // write, runs the call, restores the mode): on a sealed pristine tree it would let the run change
  // the image. There the command runs as the caller's own uid, which the kernel holds to the seal
  // (README: root emulation on P1/P2 needs a container or --writable-tmpfs).
  const sealed = !p.rootfsWritable && (fs.statSync(p.rootfs).mode & 0o200) === 0;
  if (p.user.rootEmulation && !sealed) args.push('-0');
  else if (!p.user.rootEmulation) args.push('-i', `${p.user.uid}:${p.user.gid}`);
  if (ec.fakeKernel) args.push('-k', ec.fakeKernel);
  for (const s of ['proc', 'dev', 'sys'] as const) if (p.sysdirs[s]) args.push('-b', `/${s}`);
  const hostPath = (src: string): string => {
    if (!src.includes(':')) return src;
    const link = path.join(fs.mkdtempSync(path.join(ec.scratch, 'b')), 'l');
    fs.symlinkSync(src, link);
    return link;
  };
  // Our own /proc entries and our ancestors' (with every thread id) are covered by an empty directory:
  // PRoot shows the host's /proc, and their environ holds the caller's environment (secrets included).
  const hidden = callerProcs();
  if (p.sysdirs.proc && hidden.length) {
    const empty = fs.mkdtempSync(path.join(ec.scratch, 'p'));
    fs.chmodSync(empty, 0o555);
    for (const pid of hidden) args.push('-b', `${empty}:/proc/${pid}`);
  }
  for (const op of p.ops) {
    if (op.type === 'bind') {
      args.push('-b', `${hostPath(op.source)}:${op.target}`);
    } else {
      // tmpfs / dir: an empty per-run scratch dir, removed after the run.
      const d = fs.mkdtempSync(path.join(ec.scratch, 't'));
      fs.chmodSync(d, op.type === 'tmpfs' && op.target === '/tmp' ? 0o1777 : 0o755);
      args.push('-b', `${d}:${op.target}`);
    }
  }
  if (p.ops.some((o) => o.type === 'bind' && o.readonly)) warnings.push('PRoot cannot make binds read-only; read-only volumes are writable where host permissions allow');
  if (p.network === 'none') warnings.push('PRoot cannot isolate the network; --network=none is not honoured');
  if (p.hostname) warnings.push('PRoot cannot set the hostname');
  if (p.resources?.shmSizeBytes !== undefined) warnings.push("PRoot cannot size /dev/shm: the host's is used");
  // A working directory missing from the image is made virtually (an empty scratch dir bound there).
  const wdMissing = resolveContainerPath(p.rootfs, p.ops, p.workdir).loc.kind === 'missing';
  if (wdMissing) {
    const d = fs.mkdtempSync(path.join(ec.scratch, 'w'));
    args.push('-b', `${d}:${p.workdir}`);
  }
  const env: Record<string, string> = { ...p.env, ...ec.binEnv };
  // Only when some mount point is missing from the image: otherwise PRoot builds no glue.
  const pollute = missingMountPoint(p, wdMissing);
  // PRoot's settings travel in its environment, which the command inherits (proot execvp()s it
  // with its own environ). PROOT_TMP_DIR only when /tmp cannot hold PRoot's loader.
  const proots: string[] = [];
  if (!tmpUsable(ec)) {
    const tmp = path.join(ec.scratch, 'proot-tmp');
    fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
    env.PROOT_TMP_DIR = tmp; proots.push('PROOT_TMP_DIR');
    // Debian's PRoot 5.1 ignores PROOT_TMP_DIR: hand it its loader in the (exec-able) scratch dir.
    const loader = extractProotLoader(bin, tmp);
    if (loader) { env.PROOT_LOADER = loader; proots.push('PROOT_LOADER'); }
  }
  if (noSeccomp) { env.PROOT_NO_SECCOMP = '1'; proots.push('PROOT_NO_SECCOMP'); }
  if (pollute) { env.PROOT_DONT_POLLUTE_ROOTFS = '1'; proots.push('PROOT_DONT_POLLUTE_ROOTFS'); }
  let argv: string[];
  if (imageHas(p, ['/bin/sh'])) {
    // Under a wrapper shell (which also drops PRoot's variables, saving an exec of env(1)).
    argv = ['/bin/sh', '-c', shellWrapper([...proots, ...['PWD', 'SHLVL'].filter((v) => !(v in p.env))]), 'sh', ...p.argv];
  } else {
    // PRoot reads them once, at start: the image's env(1) drops them before the command runs.
    const envBin = proots.length ? imageHas(p, ['/usr/bin/env', '/bin/env']) : undefined;
    argv = envBin ? [envBin, ...proots.flatMap((v) => ['-u', v]), '--', ...p.argv] : p.argv;
  }
  // -v -1: no "proot info: … terminated with signal N" or warnings in the container's stderr (errors still show).
  if (!ec.engineNotes) args.push('-v', '-1');
  args.push('-w', p.workdir, ...argv);
  // Through the guard (src/engines/guard.ts): PRoot dies with userdock, and the syscalls it does not translate fail.
  const guard = guardPath(path.dirname(ec.scratch));
  return { ...(guard ? { cmd: guard, args: [bin, ...args] } : { cmd: bin, args }), env, warnings, killAll: 'SIGQUIT' };
}

/**
 * This process and its ancestors that run as our uid (init and other users'
 * processes are out of reach anyway), each with all its thread ids: /proc/TID
 * works for any thread, though readdir lists only the thread-group leaders.
 */
export function callerProcs(): number[] {
  const uid = process.getuid?.();
  const out: number[] = [];
  for (let pid = process.pid; pid > 1;) {
    let status: string;
    try { status = fs.readFileSync(`/proc/${pid}/status`, 'utf8'); } catch { break; }
    const ruid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    if (uid !== undefined && Number(ruid) !== uid) break;
    try { for (const t of fs.readdirSync(`/proc/${pid}/task`)) out.push(Number(t)); } catch { out.push(pid); }
    pid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  }
  return out;
}

/**
 * Whether PRoot would have to create a mount point (or a parent of one) in the
 * rootfs: PRoot checks each binding's guest path against the rootfs itself,
 * not through the other bindings, so resolve against the bare image.
 */
function missingMountPoint(p: Profile, wdBound: boolean): boolean {
  const targets = [
    ...(['proc', 'dev', 'sys'] as const).filter((s) => p.sysdirs[s]).map((s) => `/${s}`),
    ...p.ops.map((o) => o.target),
    ...(wdBound ? [p.workdir] : []),
  ];
  for (const t of targets) {
    try {
      if (resolveContainerPath(p.rootfs, [], t).loc.kind === 'missing') return true;
    } catch { return true; }
  }
  return false;
}

/** /tmp is writable and exec-able (PRoot extracts its loader there unless PROOT_TMP_DIR says otherwise). */
function tmpUsable(ec: EngineContext): boolean {
  const t = ec.facts.tmp.path === '/tmp' ? ec.facts.tmp : undefined;
  if (t?.noexec) return false;
  try { fs.accessSync('/tmp', fs.constants.W_OK | fs.constants.X_OK); } catch { return false; }
  return true;
}

/**
 * PRoot 5.1 exits 255 when the command dies of a signal, and 0 (or another
 * process's code) when some other traced process exited last: a killed step
 * would read as success. The image's /bin/sh runs the command and turns its
 * status into a plain exit (128+N when killed by signal N, like docker):
 *  - the command runs in a subshell, which the shell (dash, bash, busybox)
 *    execs: same argv (argv[0] included), stdio, cwd, and signal
 *    dispositions (traps are reset in the subshell); a name is looked up
 *    in PATH by `exec`, never taken for a shell builtin;
 *  - the shell's own stderr is closed (fd 9 carries it to the command, then
 *    is closed), so no "Killed" or job report is added to the output;
 *  - INT/QUIT/TERM/HUP are trapped in the wrapper only, so it waits for the
 *    command (which gets the signal through the process group) and reports
 *    the command's own status;
 *  - PWD and SHLVL, which the shell would export, are unset unless the
 *    profile sets them (bash as /bin/sh still exports `_`).
 */
function shellWrapper(unset: string[]): string {
  return `exec 9>&2 2>&-;${unset.length ? ` unset ${unset.join(' ')};` : ''} trap : INT QUIT TERM HUP; (exec "$@" 2>&9 9>&-); exit $?`;
}

/** The first of `paths` that is an executable file in the image (checked through the profile's binds). */
function imageHas(p: Profile, paths: string[]): string | undefined {
  for (const c of paths) {
    const { loc } = resolveContainerPath(p.rootfs, p.ops, c);
    if (loc.kind !== 'host' || !loc.host) continue;
    try { const st = fs.statSync(loc.host); if (st.isFile() && (st.mode & 0o111)) return c; } catch { /* next */ }
  }
  return undefined;
}

const prootEnforces = {
  readonlyBinds: false, readonlyRootfs: false, rootEmulation: true, networkIsolation: false,
  pidIsolation: false, hostname: false, staticBinaries: true,
};
const prootLimits = [
  'read-only binds and the rootfs are protected only by host file permissions',
  'no network, pid or hostname isolation',
  'images without /bin/sh: a command killed by a signal makes the run exit 255, or the code of another process that exited first (PRoot 5.1); with /bin/sh it is 128+N',
  'images without /bin/sh and env(1) see PROOT_NO_SECCOMP (P2), PROOT_DONT_POLLUTE_ROOTFS (mount points missing from the image) and, when /tmp is noexec, PROOT_TMP_DIR in their environment',
  'mount points missing from the image are not listed by ls of their parent directory (PRoot glue)',
];

function prootUnusable(f: HostFacts): string | undefined {
  if (!f.binaries.proot) return 'proot not found';
  if (!f.ptraceAllowed) return `ptrace is not permitted (kernel.yama.ptrace_scope = ${f.ptraceScope ?? '?'})`;
  if (f.probes.ptrace && !f.probes.ptrace.ok) return `ptrace is not permitted here: ${f.probes.ptrace.error ?? ''}`;
  return undefined;
}

const prootFix = "install proot ('userdock setup --install-engines') or allow ptrace (kernel.yama.ptrace_scope < 3)";

export const P1: Engine = {
  id: 'P1', name: 'proot (seccomp)', binaries: ['proot'],
  summary: 'PRoot with seccomp acceleration: ptrace only, works on any kernel that allows ptrace',
  cost: '~70x native on metadata-heavy work (find, pip install), ~1x for compute',
  enforces: prootEnforces, limits: prootLimits,
  fix: prootFix,
  unusable(f) {
    const why = prootUnusable(f);
    if (why) return why;
    if (!f.seccompFilter) return `kernel ${f.kernel} has no seccomp filter support (P2 works without it)`;
    return undefined;
  },
  build: (p, ec) => prootBuild(p, ec, false),
};

export const P2: Engine = {
  id: 'P2', name: 'proot (no seccomp)', binaries: ['proot'],
  summary: 'PRoot with PROOT_NO_SECCOMP=1: for kernels where seccomp acceleration crashes (signal 11)',
  cost: '~100x native on metadata-heavy work (every syscall traced), ~1x for compute',
  enforces: prootEnforces, limits: prootLimits,
  fix: prootFix,
  unusable: prootUnusable,
  build: (p, ec) => prootBuild(p, ec, true),
};
