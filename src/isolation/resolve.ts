import fs from 'node:fs';
import path from 'node:path';
import { EXIT, UserError } from '../errors.js';
import type { MountOp, Profile } from './profile.js';

/**
 * Path resolution inside a profile's view (rootfs plus mount operations),
 * without starting the container: symlinks in the image are followed inside
 * the rootfs, never on the host.
 */
export type Located =
  | { kind: 'host'; host: string }
  | { kind: 'virtual' } // inside a tmpfs/dir op: nothing there yet
  | { kind: 'missing' };

/** Map a normalized container path to where it lives, given the ops in force. */
export function mapPath(rootfs: string, ops: MountOp[], cpath: string): Located {
  let best: MountOp | undefined;
  for (const op of ops) {
    if (cpath === op.target || cpath.startsWith(op.target === '/' ? '/' : op.target + '/')) {
      if (!best || op.target.length >= best.target.length) best = op;
    }
  }
  if (!best) return { kind: 'host', host: path.join(rootfs, cpath) };
  if (best.type !== 'bind') return cpath === best.target ? { kind: 'host', host: '' } : { kind: 'virtual' };
  return { kind: 'host', host: path.join(best.source, cpath.slice(best.target.length)) };
}

/**
 * Resolve all symlinks in a container path inside the profile's view.
 * Returns the canonical container path and where it is on the host.
 */
export function resolveContainerPath(rootfs: string, ops: MountOp[], p: string, followLast = true): { cpath: string; loc: Located } {
  let parts = path.posix.normalize(p).split('/').filter(Boolean);
  let cur = '/';
  let hops = 0;
  for (let i = 0; i < parts.length; i++) {
    const next = path.posix.join(cur, parts[i]);
    const loc = mapPath(rootfs, ops, next);
    if (loc.kind !== 'host' || loc.host === '') { cur = next; continue; }
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(loc.host); } catch { st = undefined; }
    if (!st) {
      // a directory missing from the image on the way to a mount target is made as a mount point
      if (i < parts.length - 1 && ops.some((o) => o.target.startsWith(next + '/'))) { cur = next; continue; }
      return { cpath: path.posix.join(next, ...parts.slice(i + 1)), loc: { kind: 'missing' } };
    }
    if (st.isSymbolicLink() && (followLast || i < parts.length - 1)) {
      if (++hops > 40) throw new UserError(`too many levels of symbolic links resolving ${p} in ${rootfs}`, EXIT.internal);
      const link = fs.readlinkSync(loc.host);
      const rest = parts.slice(i + 1);
      const base = link.startsWith('/') ? link : path.posix.join(cur, link);
      parts = [...path.posix.normalize(base).split('/').filter(Boolean), ...rest];
      cur = '/'; i = -1;
      continue;
    }
    cur = next;
  }
  return { cpath: cur, loc: mapPath(rootfs, ops, cur) };
}

/**
 * Bind targets may cross symlinks in the image (bioconda's /var/spool -> /tmp,
 * cwl #867): rewrite each target to its canonical path inside the rootfs, as
 * seen after the operations before it, so no engine silently drops a bind.
 */
export function canonicalizeTargets(profile: Profile): Profile {
  const ops: MountOp[] = [];
  for (const op of profile.ops) {
    const { cpath } = resolveContainerPath(profile.rootfs, ops, op.target, true);
    ops.push({ ...op, target: cpath });
  }
  const wd = resolveContainerPath(profile.rootfs, ops, profile.workdir, true).cpath;
  return { ...profile, ops, workdir: wd };
}

export interface CommandCheck { ok: boolean; code?: number; message?: string; hint?: string; resolved?: string }

/** Find argv[0] the way the container's exec would: resolving PATH inside the image. */
export function checkCommand(profile: Profile): CommandCheck {
  const cmd = profile.argv[0];
  const candidates: string[] = [];
  if (cmd.includes('/')) candidates.push(path.posix.resolve(profile.workdir, cmd));
  else for (const d of (profile.env.PATH ?? '').split(':')) if (d.startsWith('/')) candidates.push(path.posix.join(d, cmd));
  let notExec: string | undefined;
  for (const c of candidates) {
    const { loc, cpath } = resolveContainerPath(profile.rootfs, profile.ops, c);
    if (loc.kind === 'virtual') return { ok: true, resolved: c }; // created at run time: let the engine decide
    if (loc.kind !== 'host' || !loc.host) continue;
    let st: fs.Stats;
    try { st = fs.statSync(loc.host); } catch { continue; }
    if (st.isDirectory() || (st.mode & 0o111) === 0) { notExec ??= c; continue; }
    const interp = shebang(loc.host);
    if (interp) {
      const il = resolveContainerPath(profile.rootfs, profile.ops, interp);
      if (il.loc.kind === 'missing') {
        return { ok: false, code: EXIT.notFound, message: `interpreter ${interp} of ${c} not found in the image (${profile.rootfs})`,
          hint: 'install it in the image or run the script with an interpreter the image has' };
      }
    }
    return { ok: true, resolved: cpath };
  }
  if (notExec) {
    return { ok: false, code: EXIT.notExecutable, message: `${notExec} in the image is not executable (${profile.rootfs})`,
      hint: 'it is a directory or has no execute bit; check the command or chmod +x it in the image' };
  }
  return { ok: false, code: EXIT.notFound, message: cmd.includes('/') ? `${cmd} not found in the image (${profile.rootfs})` :
    `${cmd}: command not found in the image's PATH=${profile.env.PATH ?? ''}`,
  hint: 'check the command name, the image, or --env PATH=…' };
}

function shebang(file: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(256);
    const n = fs.readSync(fd, buf, 0, 256, 0);
    const s = buf.subarray(0, n).toString('latin1');
    if (!s.startsWith('#!')) return undefined;
    const line = s.slice(2).split('\n')[0].trim();
    const interp = line.split(/\s+/)[0];
    return interp.startsWith('/') ? interp : undefined;
  } catch { return undefined; } finally { if (fd !== undefined) fs.closeSync(fd); }
}

// ------------------------------------------------------- glibc vs kernel

const LIBC_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'usr/lib64', 'lib/aarch64-linux-gnu',
  'usr/lib/aarch64-linux-gnu', 'lib/powerpc64le-linux-gnu', 'lib', 'usr/lib'];

/**
 * The minimum kernel the image's glibc was built for, from the ELF
 * NT_GNU_ABI_TAG note of libc.so.6 ("for GNU/Linux 3.2.0"). undefined when
 * the image has no glibc (static binaries, musl).
 */
export function glibcMinKernel(rootfs: string): string | undefined {
  const seen = new Set<string>();
  for (const d of LIBC_DIRS) {
    const { loc } = resolveContainerPath(rootfs, [], `/${d}/libc.so.6`);
    if (loc.kind !== 'host' || !loc.host) continue;
    // lib -> usr/lib merged trees: read each file once.
    let real: string;
    try { real = fs.realpathSync(loc.host); } catch { continue; }
    if (seen.has(real)) continue;
    seen.add(real);
    const v = abiTag(readHead(real, NOTE_WINDOW));
    if (v) return v;
  }
  return undefined;
}

/** The ELF note segments sit right after the program headers: the first pages hold them (not the 2 MB file). */
const NOTE_WINDOW = 64 * 1024;

function readHead(file: string, n: number): Buffer {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(n);
    return buf.subarray(0, fs.readSync(fd, buf, 0, n, 0));
  } catch { return Buffer.alloc(0); } finally { if (fd !== undefined) fs.closeSync(fd); }
}

export function abiTag(buf: Buffer): string | undefined {
  // namesz=4, descsz=16, type=1 (NT_GNU_ABI_TAG), "GNU\0", os=0 (Linux), major, minor, patch (little endian)
  const pat = Buffer.from([4, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0x47, 0x4e, 0x55, 0, 0, 0, 0, 0]);
  const i = buf.indexOf(pat);
  if (i < 0 || i + 32 > buf.length) return undefined;
  return `${buf.readUInt32LE(i + 20)}.${buf.readUInt32LE(i + 24)}.${buf.readUInt32LE(i + 28)}`;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}
