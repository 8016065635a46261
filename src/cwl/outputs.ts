import fs from 'node:fs';
import path from 'node:path';
import { ValidationError, toUri, expandFormat, type Json, type Process, type Param } from './load.js';
import type { Evaluator } from './expr.js';
import { glob } from './glob.js';
import { fileChecksum, listDir, mapFiles, readContents, splitName, exists, visitFiles } from './files.js';
import { discoverSecondary } from './inputs.js';
import { matches, pickType, describeType } from './types.js';
import { UserError, EXIT } from '../errors.js';

export interface CollectEnv {
  proc: Process;
  ev: Evaluator;
  inputs: Json;
  runtime: Json;
  /** Host path of the output directory. */
  outHost: string;
  /** The output directory as the tool sees it (same as outHost without a container). */
  outdir: string;
  stdoutName?: string;
  stderrName?: string;
  hostOf: (p: string) => string;
}

function inside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir + '/');
}

function fileObj(p: string): Json {
  let st: fs.Stats;
  try { st = fs.statSync(p); } catch { st = fs.lstatSync(p); }
  const basename = path.basename(p);
  if (st.isDirectory()) return { class: 'Directory', location: toUri(p), path: p, basename };
  return { class: 'File', location: toUri(p), path: p, basename, ...splitName(basename), size: st.size };
}

export async function collectOutputs(env: CollectEnv): Promise<Json> {
  const { proc, outHost } = env;
  const custom = path.join(outHost, 'cwl.output.json');
  let result: Json;
  if (fs.existsSync(custom)) {
    let obj: Json;
    try { obj = JSON.parse(fs.readFileSync(custom, 'utf8')); } catch (e) { throw new UserError(`cwl.output.json is not valid JSON: ${(e as Error).message}`, EXIT.fail); }
    result = {};
    for (const p of proc.outputs) result[p.id] = fixLocations(env, obj[p.id] ?? null);
  } else {
    result = {};
    for (const p of proc.outputs) result[p.id] = collectParam(env, p.type, p, p.id);
  }
  for (const p of proc.outputs) {
    result[p.id] = finishOutputObject(result[p.id], outHost, env.hostOf);
    if (!matches(p.type === 'stdout' || p.type === 'stderr' ? 'File' : p.type, result[p.id], proc)) {
      throw new UserError(`output "${p.id}": expected ${describeType(p.type)}, got ${JSON.stringify(result[p.id])?.slice(0, 200)}`, EXIT.fail);
    }
  }
  return result;
}

/** Locations in cwl.output.json / ExpressionTool results: relative to the outdir; container paths mapped back. */
function fixLocations(env: CollectEnv, v: Json): Json {
  return mapFiles(v, (o) => {
    let loc: string | undefined = o.location ?? o.path;
    if (typeof loc === 'string') {
      if (loc.startsWith('file://')) loc = decodeURIComponent(loc.slice(7));
      let p = path.isAbsolute(loc) ? env.hostOf(loc) : path.resolve(env.outHost, loc);
      if (env.outdir !== env.outHost && inside(loc, env.outdir)) p = env.outHost + loc.slice(env.outdir.length);
      o.path = p; o.location = toUri(p);
    }
  });
}

function collectParam(env: CollectEnv, type: Json, schema: Json, name: string): Json {
  const { ev, inputs, runtime, outHost } = env;
  if (type === 'stdout' || type === 'stderr') {
    const n = type === 'stdout' ? env.stdoutName : env.stderrName;
    if (!n) throw new ValidationError(`output "${name}": no ${type} file`);
    return fileObj(path.join(outHost, path.relative(env.outdir, path.resolve(env.outdir, n))));
  }
  const ob = schema.outputBinding;
  let value: Json = null;
  if (ob) {
    let files: Json[] = [];
    if (ob.glob !== undefined) {
      const g = ev.eval(ob.glob, { inputs, self: null, runtime });
      const patterns = (Array.isArray(g) ? g : [g]).filter((x: Json) => x !== null && x !== undefined);
      for (const pat of patterns) {
        if (typeof pat !== 'string') throw new ValidationError(`output "${name}": glob must be a string (got ${JSON.stringify(pat)})`);
        let hostPat: string;
        if (path.isAbsolute(pat)) {
          if (!inside(path.normalize(pat), env.outdir)) throw new UserError(`output "${name}": glob ${pat} is outside the output directory`, EXIT.fail);
          hostPat = outHost + path.normalize(pat).slice(env.outdir.length);
        } else {
          hostPat = path.join(outHost, pat);
          if (!inside(path.normalize(hostPat), outHost)) throw new UserError(`output "${name}": glob ${pat} is outside the output directory`, EXIT.fail);
        }
        const rel = path.relative(outHost, hostPat) || '.';
        for (const m of glob(outHost, rel)) {
          // symlinks pointing out of the outdir are fine (staged inputs), but the match itself must be inside
          if (!inside(m, outHost)) continue;
          files.push(fileObj(m));
        }
      }
    }
    if (ob.loadContents || schema.loadContents) for (const f of files) if (f.class === 'File') f.contents = readContents(f.path);
    const ll = ob.loadListing ?? schema.loadListing;
    if (ll === 'shallow_listing' || ll === 'deep_listing') for (const f of files) if (f.class === 'Directory') f.listing = listDir(f.path, ll === 'deep_listing' ? 'deep' : 'shallow');
    if (ob.outputEval !== undefined) {
      value = ev.eval(ob.outputEval, { inputs, self: files, runtime });
      value = fixLocations(env, value);
    } else {
      const single = singleFileType(type);
      if (single) {
        if (files.length === 0) value = null;
        else if (files.length === 1) value = files[0];
        else throw new UserError(`output "${name}": ${files.length} files match the glob, but the type is a single ${single}`, EXIT.fail);
      } else value = files;
    }
  } else {
    const rt = Array.isArray(type) ? type.find((t: Json) => t && typeof t === 'object' && t.type === 'record') : type;
    if (rt && typeof rt === 'object' && rt.type === 'record') {
      const o: Json = {};
      for (const f of rt.fields) o[f.name] = collectParam(env, f.type, f, `${name}.${f.name}`);
      value = o;
    }
  }
  // secondaryFiles and format
  const t = pickType(type, value, env.proc);
  applyFileSchema(env, value, schema, t);
  return value;
}

function applyFileSchema(env: CollectEnv, value: Json, schema: Json, t: Json): void {
  if (value === null || value === undefined) return;
  if (Array.isArray(value)) {
    const items = t && typeof t === 'object' && t.type === 'array' ? t.items : undefined;
    for (const v of value) applyFileSchema(env, v, { secondaryFiles: schema.secondaryFiles ?? (items as Json)?.secondaryFiles, format: schema.format }, pickType(items, v, env.proc));
    return;
  }
  if (typeof value !== 'object') return;
  if (value.class === 'File') {
    if (schema.secondaryFiles) discoverSecondary({ ev: env.ev, runtime: env.runtime }, value, schema.secondaryFiles, env.inputs, false);
    if (schema.format !== undefined) {
      const f = env.ev.eval(schema.format, { inputs: env.inputs, self: value, runtime: env.runtime });
      if (typeof f === 'string') value.format = expandFormat(f, env.proc.namespaces);
    }
  }
}

function singleFileType(t: Json): string | undefined {
  if (t === 'File' || t === 'Directory') return t;
  if (Array.isArray(t)) {
    const nn = t.filter((x) => x !== 'null');
    if (nn.length === 1 && (nn[0] === 'File' || nn[0] === 'Directory')) return nn[0];
    if (nn.every((x) => x === 'File' || x === 'Directory')) return nn.join('|');
  }
  return undefined;
}

/**
 * Complete File/Directory objects in an output: write literals into the
 * outdir, fill basename/size/checksum, list directories deeply.
 */
export function finishOutputObject(v: Json, outHost: string, hostOf: (p: string) => string = (p) => p): Json {
  if (Array.isArray(v)) return v.map((x) => finishOutputObject(x, outHost, hostOf));
  if (!v || typeof v !== 'object') return v;
  if (v.class !== 'File' && v.class !== 'Directory') {
    const o: Json = {};
    for (const [k, x] of Object.entries(v)) o[k] = finishOutputObject(x, outHost, hostOf);
    return o;
  }
  const o = { ...v };
  if (!o.path && o.location) o.path = o.location.startsWith('file://') ? decodeURIComponent(o.location.slice(7)) : path.resolve(outHost, o.location);
  if (o.path) o.path = hostOf(o.path);
  if (!o.path) {
    // literal
    const name = o.basename ?? `literal_${Math.random().toString(36).slice(2)}`;
    const p = path.join(outHost, name);
    if (o.class === 'File') fs.writeFileSync(p, o.contents ?? '');
    else {
      fs.mkdirSync(p, { recursive: true });
      for (const c of o.listing ?? []) {
        const cc = finishOutputObject(c, p, hostOf);
        const dst = path.join(p, cc.basename);
        if (cc.path !== dst) fs.cpSync(cc.path, dst, { recursive: true, dereference: true });
      }
    }
    o.path = p;
  }
  o.location = toUri(o.path);
  if (!o.basename) o.basename = path.basename(o.path);
  if (!exists(o.path)) throw new UserError(`output ${o.class} ${o.path} does not exist`, EXIT.fail);
  if (o.class === 'File') {
    Object.assign(o, splitName(o.basename));
    o.size = fs.statSync(o.path).size;
    o.checksum = fileChecksum(o.path);
    if (Array.isArray(o.secondaryFiles)) o.secondaryFiles = o.secondaryFiles.map((x: Json) => finishOutputObject(x, outHost, hostOf));
  } else {
    o.listing = listDir(o.path, 'deep');
    visitFiles(o.listing, (x) => { if (x.class === 'File') x.checksum = fileChecksum(x.path); });
  }
  delete o.dirname;
  return o;
}

/**
 * Move (or copy) every File/Directory in the final output object into the
 * final output directory and rewrite path/location.
 */
export function relocateOutputs(output: Json, destDir: string, jobDirs: string[]): Json {
  fs.mkdirSync(destDir, { recursive: true });
  const moved = new Map<string, string>();
  const used = new Set<string>();
  const realJobDirs = jobDirs.map((d) => { try { return fs.realpathSync(d); } catch { return d; } });
  /** Only move what really lives in a job directory: a path through a staged symlink is someone else's file. */
  const isJob = (p: string): boolean => {
    let real: string;
    try { real = fs.realpathSync(p); } catch { return false; }
    return realJobDirs.some((d) => inside(real, d)) && !hasSymlinkBelow(p, jobDirs);
  };
  // real paths before anything moves (a file may be listed twice, once through a link)
  const realOf = new Map<string, string>();
  visitFiles(output, (o) => { if (typeof o.path === 'string') try { realOf.set(o.path, fs.realpathSync(o.path)); } catch { /* */ } });
  const place = (src: string, basename: string, dir: string): string => {
    // the same file reached through a link (InplaceUpdate outputs) is placed once
    const real = realOf.get(src) ?? src;
    const prev = moved.get(src) ?? moved.get(real);
    if (prev) return prev;
    let dst = path.join(dir, basename);
    let n = 1;
    while (used.has(dst)) {
      n++;
      const { nameroot, nameext } = splitName(basename);
      dst = path.join(dir, `${nameroot}_${n}${nameext}`);
    }
    used.add(dst);
    if (path.resolve(src) !== path.resolve(dst)) {
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      // An earlier run's file of the same name is replaced, as cwltool does.
      fs.rmSync(dst, { recursive: true, force: true });
      let done = false;
      if (isJob(src)) {
        try { fs.renameSync(src, dst); done = true; } catch { /* cross-device */ }
      }
      if (!done) fs.cpSync(src, dst, { recursive: true, dereference: true });
    }
    moved.set(src, dst);
    moved.set(real, dst);
    return dst;
  };
  const rewrite = (o: Json, from: string, to: string): void => {
    if (typeof o.path === 'string' && inside(o.path, from)) {
      o.path = to + o.path.slice(from.length);
      o.location = toUri(o.path);
    }
    for (const x of o.listing ?? []) rewrite(x, from, to);
    for (const x of o.secondaryFiles ?? []) rewrite(x, from, to);
  };
  const visit = (v: Json, dir: string): Json => {
    if (Array.isArray(v)) return v.map((x) => visit(x, dir));
    if (!v || typeof v !== 'object') return v;
    if (v.class === 'File' || v.class === 'Directory') {
      const src = v.path as string;
      const dst = place(src, v.basename ?? path.basename(src), dir);
      const o = structuredClone(v);
      if (o.class === 'Directory') rewrite(o, src, dst);
      o.path = dst; o.location = toUri(dst); delete o.dirname;
      if (Array.isArray(v.secondaryFiles)) o.secondaryFiles = v.secondaryFiles.map((s: Json) => visit(s, path.dirname(dst)));
      return o;
    }
    const o: Json = {};
    for (const [k, x] of Object.entries(v)) o[k] = visit(x, dir);
    return o;
  };
  return visit(output, destDir);
}

/** Is any component of p below its job directory a symlink? */
function hasSymlinkBelow(p: string, jobDirs: string[]): boolean {
  const d = jobDirs.find((j) => inside(p, j));
  if (!d) return true;
  let cur = p;
  while (cur !== d && cur.length > d.length) {
    try { if (fs.lstatSync(cur).isSymbolicLink()) return true; } catch { return true; }
    cur = path.dirname(cur);
  }
  return false;
}
