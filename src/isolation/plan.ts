import fs from 'node:fs';
import path from 'node:path';
import { EXIT, UserError } from '../errors.js';
import type { MountOp, Profile } from './profile.js';
import { mapPath, resolveContainerPath } from './resolve.js';

/**
 * Mount plan for namespace engines (bwrap, unshare, runc/crun), which need
 * every mount point to exist. The pristine rootfs is shared and never
 * written, so a mount point missing from the image is made WITHOUT writing
 * into it: the directories on the way to it are "exploded" into a skeleton
 * in the per-run scratch dir (an empty placeholder per entry, symlinks copied
 * as symlinks), the skeleton becomes the read-only root, and every original
 * entry is bind-mounted back onto its placeholder. Only the directories on
 * the path to a missing mount point are exploded; with nothing missing the
 * rootfs itself is the root. (No tmpfs or overlay is needed, so the same plan
 * works for bwrap, util-linux unshare and OCI runtimes.)
 */
export type PlanMount =
  | { kind: 'bind'; source: string; target: string; readonly: boolean }
  | { kind: 'tmpfs'; target: string; sizeBytes?: number }
  | { kind: 'proc' | 'dev' | 'sys'; target: string };

export interface MountPlan {
  root: string;
  rootReadonly: boolean;
  mounts: PlanMount[];
  /** Directories exploded into the skeleton (for diagnostics). */
  exploded: string[];
}

export function planMounts(profile: Profile, scratch: string): MountPlan {
  const { rootfs } = profile;
  const view: MountOp[] = [];
  const targets: Array<{ target: string; file: boolean; op?: MountOp; sys?: 'proc' | 'dev' | 'sys' }> = [];
  for (const s of ['proc', 'dev', 'sys'] as const) if (profile.sysdirs[s]) targets.push({ target: `/${s}`, file: false, sys: s });
  for (const op of profile.ops) {
    let file = false;
    if (op.type === 'bind') { try { file = !fs.statSync(op.source).isDirectory(); } catch { file = false; } }
    targets.push({ target: op.target, file, op });
  }

  const needed = new Map<string, boolean>(); // container path missing in the rootfs -> is a file
  const mounts: PlanMount[] = [];
  const dirOps: string[] = [];
  for (const t of targets) {
    const { loc } = resolveContainerPath(rootfs, view, t.target);
    if (loc.kind === 'missing') {
      // deepest existing ancestor: only one inside the rootfs itself needs exploding
      let anc = path.posix.dirname(t.target);
      for (;;) {
        const l = resolveContainerPath(rootfs, view, anc).loc;
        if (l.kind !== 'missing') break;
        anc = path.posix.dirname(anc);
      }
      const ancLoc = mapPath(rootfs, view, anc);
      const inRootfs = ancLoc.kind === 'host' && ancLoc.host.startsWith(rootfs) && !view.some((o) => anc === o.target || anc.startsWith(o.target + '/'));
      if (inRootfs) needed.set(t.target, t.file);
    }
    if (t.sys) mounts.push({ kind: t.sys, target: t.target });
    else if (t.op) {
      const op = t.op;
      if (op.type === 'bind') mounts.push({ kind: 'bind', source: op.source, target: op.target, readonly: op.readonly });
      else if (op.type === 'tmpfs') mounts.push({ kind: 'tmpfs', target: op.target, ...(op.sizeBytes ? { sizeBytes: op.sizeBytes } : {}) });
      else if (loc.kind === 'missing' || loc.kind === 'virtual') {
        // a directory that must exist: an empty tmpfs (under a tmpfs, or on a skeleton placeholder)
        mounts.push({ kind: 'tmpfs', target: op.target }); dirOps.push(op.target);
      }
      view.push(op);
    }
  }
  // The working directory must exist too.
  const wd = resolveContainerPath(rootfs, view, profile.workdir).loc;
  if (wd.kind === 'missing') {
    needed.set(profile.workdir, false);
    mounts.push({ kind: 'tmpfs', target: profile.workdir });
  }

  if (needed.size === 0) return { root: rootfs, rootReadonly: !profile.rootfsWritable, mounts, exploded: [] };

  // Explode every rootfs directory on the way to a missing path.
  const exploded = new Set<string>(['/']);
  const created = new Map<string, boolean>();
  for (const [p, isFile] of needed) {
    const parts = p.split('/').filter(Boolean);
    let cur = '/';
    let existing = true;
    for (let i = 0; i < parts.length; i++) {
      const next = path.posix.join(cur, parts[i]);
      const last = i === parts.length - 1;
      if (existing) {
        let st: fs.Stats | undefined;
        try { st = fs.lstatSync(path.join(rootfs, next)); } catch { st = undefined; }
        if (st && st.isDirectory() && !last) { exploded.add(next); cur = next; continue; }
        if (st && !st.isDirectory() && !last) {
          throw new UserError(`cannot create mount point ${p}: ${next} is not a directory in the image (${rootfs})`, EXIT.internal, 'choose another container path for the volume');
        }
        if (st) { cur = next; continue; }
        existing = false;
      }
      created.set(next, last ? isFile : false);
      cur = next;
    }
  }
  // Entries that a later mount covers exactly get a placeholder only (runc refuses proc over a bind).
  const covered = new Set(mounts.map((m) => m.target));
  const skel = path.join(scratch, 'root');
  const rootBinds: PlanMount[] = [];
  const ro = !profile.rootfsWritable;
  for (const d of [...exploded].sort((a, b) => a.split('/').length - b.split('/').length)) {
    const sd = path.join(skel, d);
    fs.mkdirSync(sd, { recursive: true, mode: 0o755 });
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(path.join(rootfs, d), { withFileTypes: true }); } catch (e) {
      throw new UserError(`cannot read ${path.join(rootfs, d)}: ${(e as Error).message}`, EXIT.internal, 'the image tree is damaged or not readable; remove and pull it again');
    }
    // The image's mode, but writable to us (a sealed tree's dirs are not): the skeleton is mounted read-only anyway and is removed after the run.
    try { fs.chmodSync(sd, (fs.statSync(path.join(rootfs, d)).mode & 0o7777) | 0o200); } catch { /* keep 0755 */ }
    for (const e of entries) {
      const c = path.posix.join(d, e.name);
      if (exploded.has(c)) continue;
      const sp = path.join(skel, c);
      if (e.isSymbolicLink()) { fs.symlinkSync(fs.readlinkSync(path.join(rootfs, c)), sp); continue; }
      if (e.isDirectory()) fs.mkdirSync(sp); else fs.writeFileSync(sp, '');
      if (covered.has(c)) continue;
      rootBinds.push({ kind: 'bind', source: path.join(rootfs, c), target: c, readonly: ro });
    }
  }
  for (const [c, isFile] of [...created].sort((a, b) => a[0].length - b[0].length)) {
    const sp = path.join(skel, c);
    if (isFile) { fs.mkdirSync(path.dirname(sp), { recursive: true }); fs.writeFileSync(sp, ''); } else fs.mkdirSync(sp, { recursive: true });
  }
  // The skeleton is mounted read-only: even the exploded root is not writable.
  return { root: skel, rootReadonly: true, mounts: [...rootBinds, ...mounts], exploded: [...exploded] };
}
