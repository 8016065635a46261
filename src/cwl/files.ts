import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError, EXIT } from '../errors.js';
import { locationToPath, toUri, type Json } from './load.js';

/** File and Directory objects: normalising, listing, contents, checksums. */

export const CONTENTS_LIMIT = 64 * 1024;

export function isFile(v: Json): boolean { return !!v && typeof v === 'object' && v.class === 'File'; }
export function isDir(v: Json): boolean { return !!v && typeof v === 'object' && v.class === 'Directory'; }

export function splitName(basename: string): { nameroot: string; nameext: string } {
  const i = basename.lastIndexOf('.');
  if (i <= 0) return { nameroot: basename, nameext: '' };
  return { nameroot: basename.slice(0, i), nameext: basename.slice(i) };
}

/** Fill location/path/basename/nameroot/nameext from what's there, resolving against baseDir. */
export function normalizeFileObj(o: Json, baseDir: string): void {
  if (typeof o.path === 'string' && (o.location === undefined || !String(o.location).startsWith('file://'))) {
    o.location = toUri(path.resolve(baseDir, o.path));
  }
  if (typeof o.location === 'string') {
    if (o.location.startsWith('_:')) { delete o.location; } else {
      const p = locationToPath(o.location, baseDir);
      o.path = p;
      o.location = toUri(p);
    }
  }
  if (o.path && !o.basename) o.basename = path.basename(o.path);
  if (o.class === 'File' && o.basename) Object.assign(o, splitName(o.basename));
}

export function fileChecksum(p: string): string {
  const h = crypto.createHash('sha1');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally { fs.closeSync(fd); }
  return `sha1$${h.digest('hex')}`;
}

export function readContents(p: string, strict = true): string {
  const fd = fs.openSync(p, 'r');
  try {
    const st = fs.fstatSync(fd);
    if (st.size > CONTENTS_LIMIT && strict) {
      throw new UserError(`loadContents: ${p} is larger than 64 KiB (${st.size} bytes)`, EXIT.fail);
    }
    const buf = Buffer.alloc(Math.min(st.size, CONTENTS_LIMIT));
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally { fs.closeSync(fd); }
}

/** List a directory: 'shallow' (no sub-listings) or 'deep'. */
export function listDir(dirPath: string, mode: 'shallow' | 'deep'): Json[] {
  let names: string[];
  try { names = fs.readdirSync(dirPath).sort(); } catch { return []; }
  return names.map((n) => {
    const p = path.join(dirPath, n);
    let st: fs.Stats;
    try { st = fs.statSync(p); } catch { st = fs.lstatSync(p); }
    if (st.isDirectory()) {
      const d: Json = { class: 'Directory', location: toUri(p), path: p, basename: n };
      if (mode === 'deep') d.listing = listDir(p, 'deep');
      return d;
    }
    return { class: 'File', location: toUri(p), path: p, basename: n, ...splitName(n), size: st.size };
  });
}

/** Walk File/Directory objects anywhere in a value. */
export function visitFiles(v: Json, fn: (o: Json) => void): void {
  if (Array.isArray(v)) { v.forEach((x) => visitFiles(x, fn)); return; }
  if (v && typeof v === 'object') {
    if (v.class === 'File' || v.class === 'Directory') {
      fn(v);
      if (Array.isArray(v.secondaryFiles)) v.secondaryFiles.forEach((x: Json) => visitFiles(x, fn));
      if (Array.isArray(v.listing)) v.listing.forEach((x: Json) => visitFiles(x, fn));
      return;
    }
    for (const x of Object.values(v)) visitFiles(x, fn);
  }
}

/**
 * A copy of v in which every File and Directory object, nested ones in
 * secondaryFiles and listing included, is a shallow copy that fn has changed
 * in place (before its secondaryFiles and listing are walked).
 */
export function mapFiles(v: Json, fn: (o: Json) => void): Json {
  if (Array.isArray(v)) return v.map((x) => mapFiles(x, fn));
  if (v && typeof v === 'object') {
    if (v.class === 'File' || v.class === 'Directory') {
      const o = { ...v };
      fn(o);
      if (Array.isArray(o.secondaryFiles)) o.secondaryFiles = o.secondaryFiles.map((x: Json) => mapFiles(x, fn));
      if (Array.isArray(o.listing)) o.listing = o.listing.map((x: Json) => mapFiles(x, fn));
      return o;
    }
    const o: Json = {};
    for (const [k, x] of Object.entries(v)) o[k] = mapFiles(x, fn);
    return o;
  }
  return v;
}

/** Secondary file name from a pattern: each leading ^ strips one extension. */
export function substitute(basename: string, pattern: string): string {
  let b = basename;
  let p = pattern;
  while (p.startsWith('^')) {
    const i = b.lastIndexOf('.');
    if (i > 0) b = b.slice(0, i);
    p = p.slice(1);
  }
  return b + p;
}

export function exists(p: string): boolean { try { fs.statSync(p); return true; } catch { return false; } }

/** Copy a file or directory tree (dereferencing symlinks at top level). */
export function copyTree(src: string, dst: string): void {
  fs.cpSync(src, dst, { recursive: true, dereference: true, force: true, errorOnExist: false });
}
