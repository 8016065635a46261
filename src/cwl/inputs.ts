import fs from 'node:fs';
import path from 'node:path';
import { ValidationError, getReq, expandFormat, type Json, type Param, type Process, type SecondaryFile } from './load.js';
import { Evaluator } from './expr.js';
import { matches, pickType, describeType } from './types.js';
import { normalizeFileObj, mapFiles, readContents, listDir, substitute, exists, splitName } from './files.js';
import { UserError, EXIT } from '../errors.js';

/**
 * Turn a job object into the validated input object: defaults, type checks,
 * File/Directory normalisation, file literals, secondaryFiles discovery,
 * loadContents, loadListing and format checks.
 */
export interface InputContext {
  proc: Process;
  ev: Evaluator;
  /** Where File literals (contents without location) are written. */
  scratch: string;
  runtime: Json;
}

/** Resolve locations in a raw value (job file or default) against a base dir. */
export function resolveLocations(v: Json, baseDir: string): Json {
  return mapFiles(v, (o) => normalizeFileObj(o, baseDir));
}

let literalCounter = 0;

export function defaultLoadListing(proc: Process): string {
  const r = getReq(proc, 'LoadListingRequirement');
  return (r?.req.loadListing as string) ?? 'no_listing';
}

export function buildInputs(ictx: InputContext, job: Json, jobDir: string): Json {
  const { proc } = ictx;
  const out: Json = {};
  const jobVals = resolveLocations(job ?? {}, jobDir);
  for (const p of proc.inputs) {
    let v = jobVals[p.id];
    if ((v === undefined || v === null) && p.default !== undefined) v = resolveLocations(structuredClone(p.default), proc.baseDir);
    if (v === undefined) v = null;
    if (!matches(p.type, v, proc)) {
      throw new ValidationError(`invalid input "${p.id}": expected ${describeType(p.type)}, got ${JSON.stringify(v)?.slice(0, 200)}`);
    }
    out[p.id] = v;
  }
  // Second pass with all values known (secondaryFiles/format expressions may use inputs).
  for (const p of proc.inputs) {
    out[p.id] = processValue(ictx, p.type, out[p.id], p, out, defaultListing(ictx, p));
  }
  return out;
}

function defaultListing(ictx: InputContext, p: { loadListing?: string }): string {
  return p.loadListing ?? defaultLoadListing(ictx.proc);
}

interface Schemaish { secondaryFiles?: SecondaryFile[]; format?: Json; loadContents?: boolean; loadListing?: string; id?: string; name?: string }

function processValue(ictx: InputContext, type: Json, v: Json, schema: Schemaish, inputs: Json, listing: string): Json {
  if (v === null || v === undefined) return null;
  const t = pickType(type, v, ictx.proc);
  if (Array.isArray(v)) {
    const items = t && typeof t === 'object' && t.type === 'array' ? t.items : 'Any';
    return v.map((x) => processValue(ictx, items, x, { ...schema, ...(typeof t === 'object' ? pickSchema(t) : {}) }, inputs, listing));
  }
  if (typeof v !== 'object') return v;
  if (v.class === 'File' || v.class === 'Directory') {
    return processFile(ictx, v, schema, inputs, listing);
  }
  if (t && typeof t === 'object' && t.type === 'record') {
    const o: Json = { ...v };
    for (const f of t.fields) {
      o[f.name] = processValue(ictx, f.type, v[f.name] ?? null, f, inputs, f.loadListing ?? listing);
    }
    return o;
  }
  // Any: walk into maps for File objects
  const o: Json = {};
  for (const [k, x] of Object.entries(v)) o[k] = processValue(ictx, 'Any', x, {}, inputs, listing);
  return o;
}

function pickSchema(t: Json): Schemaish {
  const s: Schemaish = {};
  if (t.secondaryFiles) s.secondaryFiles = t.secondaryFiles;
  return s;
}

export function materializeLiteral(o: Json, scratch: string): void {
  if (o.class === 'File' && !o.location && !o.path) {
    const dir = path.join(scratch, `lit${++literalCounter}`);
    fs.mkdirSync(dir, { recursive: true });
    const name = o.basename ?? `cwl_literal_${literalCounter}`;
    const p = path.join(dir, name);
    fs.writeFileSync(p, o.contents ?? '');
    o.path = p; o.location = `file://${p}`; o.basename = name;
    Object.assign(o, splitName(name));
  } else if (o.class === 'Directory' && !o.location && !o.path) {
    const dir = path.join(scratch, `lit${++literalCounter}`);
    const name = o.basename ?? `cwl_dir_${literalCounter}`;
    const p = path.join(dir, name);
    fs.mkdirSync(p, { recursive: true });
    for (const e of o.listing ?? []) {
      if (!e.location && !e.path) materializeLiteral(e, scratch);
      const target = path.join(p, e.basename ?? path.basename(e.path));
      fs.cpSync(e.path, target, { recursive: true, dereference: true });
    }
    o.path = p; o.location = `file://${p}`; o.basename = name;
    o.listing = listDir(p, 'deep');
  }
}

function processFile(ictx: InputContext, f0: Json, schema: Schemaish, inputs: Json, listing: string): Json {
  const f = { ...f0 };
  materializeLiteral(f, ictx.scratch);
  if (!f.basename && f.path) f.basename = path.basename(f.path);
  if (f.path) f.dirname = path.dirname(f.path);
  if (f.class === 'File') {
    Object.assign(f, splitName(f.basename));
    if (!exists(f.path)) throw new UserError(`input file not found: ${f.path}`, EXIT.fail);
    if (f.size === undefined) { try { f.size = fs.statSync(f.path).size; } catch { /* */ } }
    if (schema.loadContents && f.contents === undefined) f.contents = readContents(f.path);
    if (Array.isArray(f.secondaryFiles)) f.secondaryFiles = f.secondaryFiles.map((s: Json) => processFile(ictx, s, {}, inputs, listing));
    if (schema.secondaryFiles) discoverSecondary(ictx, f, schema.secondaryFiles, inputs, true);
    if (f.format) f.format = expandFormat(f.format, ictx.proc.namespaces);
    if (schema.format !== undefined) checkFormat(ictx, f, schema.format, inputs);
  } else {
    if (!exists(f.path)) throw new UserError(`input directory not found: ${f.path}`, EXIT.fail);
    if (Array.isArray(f.listing)) {
      f.listing = f.listing.map((x: Json) => processFile(ictx, x, {}, inputs, listing));
    } else if (listing === 'shallow_listing') f.listing = listDir(f.path, 'shallow');
    else if (listing === 'deep_listing') f.listing = listDir(f.path, 'deep');
  }
  return f;
}

/** Add secondaryFiles named by the schema patterns (inputs: missing required ones are errors). */
export function discoverSecondary(ictx: { ev: Evaluator; runtime: Json }, f: Json, patterns: SecondaryFile[], inputs: Json, isInput: boolean): void {
  const have: Json[] = Array.isArray(f.secondaryFiles) ? [...f.secondaryFiles] : [];
  const dir = path.dirname(f.path);
  for (const sf of patterns) {
    const required = sf.required === null || sf.required === undefined ? isInput : ictx.ev.eval(sf.required, { inputs, self: f, runtime: ictx.runtime });
    let results: Json = ictx.ev.eval(sf.pattern, { inputs, self: f, runtime: ictx.runtime });
    if (typeof sf.pattern === 'string' && !sf.pattern.includes('$(') && !sf.pattern.includes('${')) results = substitute(f.basename, sf.pattern);
    const list = Array.isArray(results) ? results : [results];
    for (const r of list) {
      if (r === null || r === undefined) continue;
      let obj: Json;
      if (typeof r === 'string') {
        const p = path.resolve(dir, r);
        let st: fs.Stats | undefined;
        try { st = fs.statSync(p); } catch { /* missing */ }
        if (have.some((h) => h.path === p || h.basename === path.basename(p))) continue;
        if (!st) {
          if (required) throw new UserError(`missing required secondary file ${p} for ${f.path}`, EXIT.fail);
          continue;
        }
        obj = { class: st.isDirectory() ? 'Directory' : 'File', location: `file://${p}`, path: p, basename: path.basename(p) };
        if (obj.class === 'File') { Object.assign(obj, splitName(obj.basename)); obj.size = st.size; }
      } else if (r && typeof r === 'object') {
        obj = { ...r };
        normalizeFileObj(obj, dir);
        if (have.some((h) => h.path === obj.path)) continue;
        if (!exists(obj.path)) {
          if (required) throw new UserError(`missing required secondary file ${obj.path} for ${f.path}`, EXIT.fail);
          continue;
        }
      } else continue;
      have.push(obj);
    }
  }
  f.secondaryFiles = have;
}

function checkFormat(ictx: InputContext, f: Json, fmt: Json, inputs: Json): void {
  const want = ictx.ev.eval(fmt, { inputs, self: f, runtime: ictx.runtime });
  const wants = (Array.isArray(want) ? want : [want]).map((w) => expandFormat(w, ictx.proc.namespaces));
  if (!f.format) throw new ValidationError(`input file ${f.path} has no "format" (expected ${wants.join(' or ')})`);
  if (wants.includes(f.format)) return;
  if (ontologyMatch(ictx.proc, f.format, wants)) return;
  throw new ValidationError(`input file ${f.path} has format ${f.format}, expected ${wants.join(' or ')}`);
}

/** Accept subclasses/equivalents through $schemas ontologies when we can read them (best effort). */
function ontologyMatch(proc: Process, have: string, wants: string[]): boolean {
  const schemas = proc.raw?.$schemas ?? [];
  if (!Array.isArray(schemas) || schemas.length === 0) return false;
  const edges = new Map<string, Set<string>>();
  for (const s of schemas) {
    let text: string;
    try { text = fs.readFileSync(path.resolve(proc.baseDir, s), 'utf8'); } catch { continue; }
    // RDF/XML: <owl:Class rdf:about="X"> ... <rdfs:subClassOf rdf:resource="Y"/>
    const classRe = /<(?:owl:Class|rdf:Description)\s+rdf:about="([^"]+)"[^>]*>([\s\S]*?)<\/(?:owl:Class|rdf:Description)>/g;
    let m: RegExpExecArray | null;
    while ((m = classRe.exec(text))) {
      const sub = m[1];
      const supRe = /<(?:rdfs:subClassOf|owl:equivalentClass)\s+rdf:resource="([^"]+)"/g;
      let n: RegExpExecArray | null;
      while ((n = supRe.exec(m[2]))) {
        if (!edges.has(sub)) edges.set(sub, new Set());
        edges.get(sub)!.add(n[1]);
        if (m[2].includes('equivalentClass')) {
          if (!edges.has(n[1])) edges.set(n[1], new Set());
          edges.get(n[1])!.add(sub);
        }
      }
    }
    // Turtle: @prefix p: <uri> . / X rdfs:subClassOf Y . / X owl:equivalentClass Y .
    const prefixes: Record<string, string> = {};
    const pre = /@prefix\s+([\w-]*):\s*<([^>]+)>\s*\./g;
    while ((m = pre.exec(text))) prefixes[m[1]] = m[2];
    const term = (t: string): string => {
      if (t.startsWith('<') && t.endsWith('>')) return t.slice(1, -1);
      const i = t.indexOf(':');
      return i >= 0 && prefixes[t.slice(0, i)] !== undefined ? prefixes[t.slice(0, i)] + t.slice(i + 1) : t;
    };
    const ttl = /(<[^>]+>|[\w-]*:[\w.-]*)\s+(rdfs:subClassOf|owl:equivalentClass)\s+(<[^>]+>|[\w-]*:[\w-]*)/g;
    while ((m = ttl.exec(text))) {
      const a = term(m[1]); const b = term(m[3]);
      if (!edges.has(a)) edges.set(a, new Set());
      edges.get(a)!.add(b);
      if (m[2] === 'owl:equivalentClass') {
        if (!edges.has(b)) edges.set(b, new Set());
        edges.get(b)!.add(a);
      }
    }
  }
  const seen = new Set<string>();
  const stack = [have];
  while (stack.length) {
    const c = stack.pop()!;
    if (wants.includes(c)) return true;
    if (seen.has(c)) continue;
    seen.add(c);
    for (const n of edges.get(c) ?? []) stack.push(n);
  }
  return false;
}

export function paramById(proc: Process, id: string): Param | undefined { return proc.inputs.find((p) => p.id === id); }
