import fs from 'node:fs';
import path from 'node:path';
import { EXIT, UserError } from '../errors.js';
import type { BindOp } from './profile.js';

/** docker's `-v` options userdock takes, case-sensitive as docker: ro, rw; z and Z (SELinux relabelling: nothing to do without root). */
const VOLUME_OPTIONS = ['ro', 'rw', 'z', 'Z'];

/**
 * --volume HOST:CONT[:OPTIONS] where colons are legal in paths (cwltool sends
 * `--volume=/data/A:Gln2Cys:/var/lib/cwl/stgX/A:Gln2Cys:ro`). Both sides are
 * absolute, so the split is at a `:/` whose left side exists on the host.
 * A last field of letters and commas only is the options (docker's third
 * field): each must be one of VOLUME_OPTIONS, so a container path ending in
 * `:letters` needs its options written out (`…:/c/x:foo:rw`). A lone PATH
 * (or PATH:OPTIONS) binds the path to itself. Wrong syntax (a relative
 * path, an unknown option) is a usage error; a host path that does not
 * exist is userdock's failure (125), as docker's --mount says.
 */
export function splitVolume(spec: string, exists: (p: string) => boolean = fs.existsSync): BindOp {
  const what = `--volume "${spec}"`;
  let s = spec;
  let readonly = false;
  const m = /:([A-Za-z,]+)$/.exec(s);
  if (m) {
    const body = s.slice(0, m.index);
    const threeFields = body.indexOf(':/', 1) > 0;
    const opts = m[1].split(',');
    const bad = opts.find((o) => !VOLUME_OPTIONS.includes(o));
    if (!bad) {
      if (opts.includes('ro') && opts.includes('rw')) throw new UserError(`${what}: options ro and rw conflict`, EXIT.usage, 'give one of them');
      readonly = opts.includes('ro'); s = body;
    } else if (threeFields) {
      throw new UserError(`${what}: unknown volume option "${bad}"`, EXIT.usage,
        `the options userdock takes are ${VOLUME_OPTIONS.join(', ')} (case-sensitive, as docker); a container path ending in ":${m[1]}" needs them written out: ${spec}:rw`);
    }
  }
  if (!s.startsWith('/')) {
    throw new UserError(`${what}: the host path must be absolute`, EXIT.usage, 'write it as /host/path:/container/path[:ro] (named volumes are not supported)');
  }
  const cands: number[] = [];
  for (let i = 1; i < s.length - 1; i++) if (s[i] === ':' && s[i + 1] === '/') cands.push(i);
  let source: string; let target: string;
  if (cands.length === 0) {
    const colon = s.indexOf(':');
    if (colon > 0 && !exists(s)) {
      // HOST:data — docker reads the second field as the container path, and it must be absolute.
      const field = s.slice(colon + 1);
      throw new UserError(`${what}: the container path "${field}" must be absolute`, EXIT.usage,
        `write it as ${s.slice(0, colon)}:/${field}${/^[A-Za-z,]+$/.test(field) ? `; volume options are ${VOLUME_OPTIONS.join(', ')} (case-sensitive)` : ''}`);
    }
    source = s; target = s;
  } else {
    const existing = cands.filter((i) => exists(s.slice(0, i)));
    // Prefer the longest existing host path (its colon is then part of the name).
    const at = existing.length ? existing[existing.length - 1] : (cands.length === 1 ? cands[0] : -1);
    if (at < 0) {
      throw new UserError(`${what}: none of the possible host paths exists (${cands.map((i) => s.slice(0, i)).join(', ')})`, EXIT.internal,
        'create the host directory first, or check the path');
    }
    source = s.slice(0, at); target = s.slice(at + 1);
  }
  return checkBind({ type: 'bind', source, target, readonly }, what, exists);
}

/**
 * Both paths checked and made canonical: the container path normalized (`..`
 * cannot climb above /, and / itself is refused); the host path resolved the
 * way the kernel resolves it (symlinks followed, then `..`), so every engine
 * binds the same directory that was checked.
 */
function checkBind(b: BindOp, what: string, exists: (p: string) => boolean): BindOp {
  if (!path.isAbsolute(b.target)) throw new UserError(`${what}: the container path "${b.target}" must be absolute`, EXIT.usage);
  if (!path.isAbsolute(b.source)) throw new UserError(`${what}: the host path "${b.source}" must be absolute`, EXIT.usage);
  const target = path.posix.normalize(b.target).replace(/(.)\/+$/, '$1');
  if (target === '/') throw new UserError(`${what}: cannot bind over the container's /`, EXIT.usage, 'bind to a subdirectory');
  if (!exists(b.source)) {
    let link: string | undefined;
    try { link = fs.readlinkSync(b.source); } catch { /* not a symlink */ }
    throw new UserError(`${what}: host path ${b.source} does not exist${link === undefined ? '' : ` (it is a symlink to ${link}, which does not exist)`}`, EXIT.internal,
      'create it first (userdock does not create host paths)');
  }
  let source: string;
  try { source = fs.realpathSync.native(b.source); } catch { source = path.resolve(b.source); } // (a path only the unit tests' `exists` knows)
  return { ...b, source, target };
}

/**
 * --mount=type=bind,source=…,target=…[,readonly]. Keys: type, source|src,
 * target|destination|dst, readonly|ro[=true|false], bind-propagation (ignored).
 * A piece without a known key continues the previous value (a comma in a path).
 */
export function parseMount(spec: string, exists: (p: string) => boolean = fs.existsSync): BindOp {
  const keys = new Set(['type', 'source', 'src', 'target', 'destination', 'dst', 'readonly', 'ro', 'rw', 'bind-propagation', 'consistency', 'bind-nonrecursive']);
  const pairs: Array<[string, string | undefined]> = [];
  for (const piece of csvFields(spec) ?? spec.split(',')) {
    const eq = piece.indexOf('=');
    const k = (eq < 0 ? piece : piece.slice(0, eq)).trim();
    if (keys.has(k)) pairs.push([k, eq < 0 ? undefined : piece.slice(eq + 1)]);
    else if (pairs.length && pairs[pairs.length - 1][1] !== undefined) pairs[pairs.length - 1][1] += ',' + piece;
    else throw new UserError(`--mount "${spec}": unknown key "${k}"`, EXIT.usage, 'use --mount=type=bind,source=/host,target=/container[,readonly]');
  }
  let type = 'bind'; let source: string | undefined; let target: string | undefined; let readonly = false;
  for (const [k, v] of pairs) {
    if (k === 'type') type = v ?? '';
    else if (k === 'source' || k === 'src') source = v;
    else if (k === 'target' || k === 'destination' || k === 'dst') target = v;
    else if (k === 'readonly' || k === 'ro') readonly = v === undefined || ['true', '1', 'yes'].includes(v);
    else if (k === 'rw') readonly = !(v === undefined || ['true', '1', 'yes'].includes(v));
  }
  if (type !== 'bind') throw new UserError(`--mount "${spec}": only type=bind is supported (got ${type})`, EXIT.usage, 'use --volume or --mount=type=bind');
  if (!source || !target) throw new UserError(`--mount "${spec}": needs source= and target=`, EXIT.usage);
  return checkBind({ type: 'bind', source, target, readonly }, `--mount "${spec}"`, exists);
}

/**
 * cwltool writes the --mount value with Python's csv writer: a piece holding a
 * comma or a quote is double-quoted (`"source=/a,b",target=/x`), quotes doubled.
 * Returns the unquoted pieces, or undefined when the spec has no quotes.
 */
function csvFields(s: string): string[] | undefined {
  if (!s.includes('"')) return undefined;
  const out: string[] = [];
  let cur = ''; let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c !== '"') cur += c;
      else if (s[i + 1] === '"') { cur += '"'; i++; } else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') { out.push(cur); cur = ''; } else cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * Docker creates the mount point of a bind that lies inside another bind
 * (`-v /h/out:/o -v /h/in.txt:/o/sub/in.txt`) in the outer bind's host
 * directory: here `/h/out/sub/` and an empty `/h/out/sub/in.txt`. cwltool
 * relies on that (relink_initialworkdir symlinks over those mount points after
 * the step), so do the same before any engine starts. Best effort: a mount
 * point that cannot be made is left to the engine.
 */
export function createNestedMountpoints(binds: BindOp[]): void {
  for (const b of binds) {
    let outer: BindOp | undefined;
    for (const o of binds) {
      if (o === b || !b.target.startsWith(o.target + '/')) continue;
      if (!outer || o.target.length > outer.target.length) outer = o;
    }
    if (!outer) continue;
    try {
      if (!fs.statSync(outer.source).isDirectory()) continue;
      const hostPoint = path.join(outer.source, b.target.slice(outer.target.length + 1));
      if (fs.lstatSync(hostPoint, { throwIfNoEntry: false })) continue;
      fs.mkdirSync(path.dirname(hostPoint), { recursive: true });
      if (fs.statSync(b.source).isDirectory()) fs.mkdirSync(hostPoint);
      else fs.closeSync(fs.openSync(hostPoint, 'a'));
    } catch { /* best effort */ }
  }
}
