import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import yaml from 'js-yaml';
import { UserError, EXIT } from '../errors.js';

/**
 * Loading CWL documents into a normalised plain-object model.
 *
 * Preprocessing done here: $import, $include, $namespaces, $graph, map forms
 * of inputs/outputs/requirements/fields, type shorthands (`T?`, `T[]`),
 * SchemaDefRequirement names, relative `run:` references, and in-memory
 * upgrade of v1.0/v1.1 documents. Positions of every mapping are kept so
 * errors can name file:line.
 */

export type Json = any;

export class ValidationError extends UserError {
  constructor(message: string) { super(message, EXIT.fail); this.name = 'ValidationError'; }
}
export class UnsupportedError extends UserError {
  constructor(message: string) { super(message, EXIT.unsupported); this.name = 'UnsupportedError'; }
}

/** Where each mapping node came from. */
const positions = new WeakMap<object, { file: string; line: number }>();

export function where(obj: unknown, fallbackFile?: string): string {
  if (obj && typeof obj === 'object') {
    const p = positions.get(obj);
    if (p) return `${p.file}:${p.line}`;
  }
  return fallbackFile ?? '<unknown>';
}

export function toPath(uriOrPath: string, base?: string): string {
  if (uriOrPath.startsWith('file://')) return fileURLToPath(uriOrPath.split('#')[0]);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uriOrPath)) throw new UserError(`unsupported URI scheme: ${uriOrPath} (only file:// and local paths)`, EXIT.fail);
  return path.resolve(base ?? process.cwd(), uriOrPath.split('#')[0]);
}

/** A File/Directory `location` is a URI reference: strip the fragment, decode %XX. `path` is a plain path. */
export function locationToPath(loc: string, base: string): string {
  if (loc.startsWith('file://')) return fileURLToPath(loc.split('#')[0]);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(loc)) throw new UserError(`unsupported URI scheme: ${loc} (only file:// and local paths)`, EXIT.fail);
  let p = loc.split('#')[0];
  try { p = decodeURIComponent(p); } catch { /* keep */ }
  return path.resolve(base, p);
}

export function toUri(p: string): string { return pathToFileURL(p).href; }

const textCache = new Map<string, string>();
function readText(file: string): string {
  let t = textCache.get(file);
  if (t === undefined) {
    try { t = fs.readFileSync(file, 'utf8'); } catch (e) {
      throw new ValidationError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    textCache.set(file, t);
  }
  return t;
}

/** Parse YAML/JSON, recording the line of every mapping and sequence. */
export function parseYaml(text: string, file: string): Json {
  const stack: number[] = [];
  try {
    return yaml.load(text, {
      filename: file,
      listener(this: any, event: string, state: any) {
        if (event === 'open') stack.push(state.line + 1);
        else if (event === 'close') {
          const line = stack.pop() ?? 0;
          if (state.result && typeof state.result === 'object' && !positions.has(state.result)) positions.set(state.result, { file, line });
        }
      },
    } as yaml.LoadOptions);
  } catch (e) {
    const m = (e as Error).message.split('\n')[0];
    throw new ValidationError(`${file}: invalid YAML: ${m}`);
  }
}

/** Load a file and resolve $import / $include inside it. */
export function loadFile(file: string): Json {
  const doc = parseYaml(readText(file), file);
  return resolveDirectives(doc, path.dirname(file), file);
}

function resolveDirectives(node: Json, dir: string, file: string): Json {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = resolveDirectives(node[i], dir, file);
    return node;
  }
  if (node && typeof node === 'object') {
    if (typeof node.$import === 'string') {
      const target = toPath(node.$import, dir);
      const frag = node.$import.includes('#') ? node.$import.split('#')[1] : undefined;
      const sub = loadFile(target);
      if (frag && sub && typeof sub === 'object') {
        const found = findById(sub, frag);
        if (found) return found;
      }
      return sub;
    }
    if (typeof node.$include === 'string') {
      return readText(toPath(node.$include, dir));
    }
    for (const k of Object.keys(node)) node[k] = resolveDirectives(node[k], dir, file);
  }
  return node;
}

function findById(node: Json, id: string): Json | undefined {
  if (Array.isArray(node)) {
    for (const x of node) { const r = findById(x, id); if (r) return r; }
  } else if (node && typeof node === 'object') {
    if (typeof node.id === 'string' && (node.id === id || node.id === `#${id}` || node.id.endsWith(`#${id}`))) return node;
    for (const v of Object.values(node)) { const r = findById(v, id); if (r) return r; }
  }
  return undefined;
}

/** `#main/x/y` / `file.cwl#x` / `x` -> `y`. */
export function shortname(id: string): string {
  let s = id;
  const h = s.lastIndexOf('#');
  if (h >= 0) s = s.slice(h + 1);
  const sl = s.lastIndexOf('/');
  if (sl >= 0) s = s.slice(sl + 1);
  return s;
}

export interface Requirement { class: string; [k: string]: Json }

export interface Process {
  class: 'CommandLineTool' | 'ExpressionTool' | 'Workflow' | 'Operation';
  id: string;
  file: string;
  baseDir: string;
  cwlVersion: string;
  namespaces: Record<string, string>;
  inputs: Param[];
  outputs: Param[];
  requirements: Requirement[];
  hints: Requirement[];
  /** Named types from SchemaDefRequirement. */
  types: Map<string, Json>;
  raw: Json;
}

export interface Param {
  id: string;
  type: Json;
  default?: Json;
  inputBinding?: Json;
  outputBinding?: Json;
  secondaryFiles?: SecondaryFile[];
  format?: Json;
  streamable?: boolean;
  loadContents?: boolean;
  loadListing?: string;
  raw: Json;
}

export interface SecondaryFile { pattern: string; required: Json }

export const KNOWN_REQUIREMENTS = new Set([
  'InlineJavascriptRequirement', 'SchemaDefRequirement', 'LoadListingRequirement', 'DockerRequirement',
  'SoftwareRequirement', 'InitialWorkDirRequirement', 'EnvVarRequirement', 'ShellCommandRequirement',
  'ResourceRequirement', 'WorkReuse', 'NetworkAccess', 'InplaceUpdateRequirement', 'ToolTimeLimit',
  'SubworkflowFeatureRequirement', 'ScatterFeatureRequirement', 'MultipleInputFeatureRequirement',
  'StepInputExpressionRequirement',
]);

const VERSIONS = ['v1.0', 'v1.1', 'v1.2', 'v1.0.dev4', 'v1.1.0-dev1', 'v1.2.0-dev1', 'v1.2.0-dev2', 'v1.2.0-dev3', 'v1.2.0-dev4', 'v1.2.0-dev5'];

export interface LoadOptions {
  /** Extra requirements (from the job's cwl:requirements) prepended as inherited. */
  inheritedRequirements?: Requirement[];
}

/**
 * Load the process named by a path or URI (with optional #fragment for
 * $graph documents).
 */
export function loadProcess(ref: string, opts: LoadOptions = {}): Process {
  const file = toPath(ref);
  const frag = ref.includes('#') ? ref.slice(ref.indexOf('#') + 1) : undefined;
  const doc = loadFile(file);
  return processFromDoc(doc, file, frag, undefined, opts);
}

export function processFromDoc(doc: Json, file: string, frag: string | undefined, parent: { cwlVersion: string; namespaces: Record<string, string>; graph?: Json[] } | undefined, opts: LoadOptions = {}): Process {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new ValidationError(`${where(doc, file)}: not a CWL process document`);
  let cwlVersion: string = doc.cwlVersion ?? parent?.cwlVersion;
  const namespaces = { ...(parent?.namespaces ?? {}), ...(doc.$namespaces ?? {}) };
  let node = doc;
  let graph = parent?.graph;
  if (Array.isArray(doc.$graph)) {
    graph = doc.$graph;
    const want = frag ?? 'main';
    node = doc.$graph.find((p: Json) => p && typeof p.id === 'string' && (p.id === want || p.id === `#${want}` || shortname(p.id) === want));
    if (!node) {
      if (!frag && doc.$graph.length === 1) node = doc.$graph[0];
      else throw new ValidationError(`${file}: no process "#${want}" in $graph`);
    }
  } else if (frag) {
    const found = findById(doc, frag);
    if (found && found.class) node = found;
  }
  if (!cwlVersion) throw new ValidationError(`${where(doc, file)}: missing cwlVersion`);
  if (!VERSIONS.includes(cwlVersion)) throw new ValidationError(`${where(doc, file)}: unsupported cwlVersion ${cwlVersion}`);
  const cls = node.class;
  if (!['CommandLineTool', 'ExpressionTool', 'Workflow', 'Operation'].includes(cls)) {
    throw new ValidationError(`${where(node, file)}: "class" must be CommandLineTool, ExpressionTool, Workflow or Operation (got ${JSON.stringify(cls)})`);
  }
  const requirements = normReqs(node.requirements, file, 'requirements');
  const hints = normReqs(node.hints, file, 'hints');
  if (cwlVersion === 'v1.0' || cwlVersion.startsWith('v1.0.')) {
    // cwl-upgrader semantics: v1.0 tools had network access and deep listings.
    hints.unshift({ class: 'NetworkAccess', networkAccess: true }, { class: 'LoadListingRequirement', loadListing: 'deep_listing' });
  }
  if (opts.inheritedRequirements) requirements.push(...opts.inheritedRequirements);
  for (const r of requirements) {
    if (!KNOWN_REQUIREMENTS.has(r.class) && !r.class.includes(':')) {
      throw new UnsupportedError(`${where(r, file)}: unsupported requirement ${r.class}`);
    }
    if (r.class.includes(':') && !r.class.startsWith('cwltool:')) {
      throw new UnsupportedError(`${where(r, file)}: unsupported requirement ${r.class}`);
    }
  }
  const types = new Map<string, Json>();
  const proc: Process = {
    class: cls,
    id: typeof node.id === 'string' ? node.id : toUri(file),
    file,
    baseDir: path.dirname(file),
    cwlVersion,
    namespaces,
    inputs: [],
    outputs: [],
    requirements,
    hints,
    types,
    raw: node,
  };
  for (const r of [...requirements, ...hints]) {
    if (r.class === 'SchemaDefRequirement') {
      const flat = (Array.isArray(r.types) ? r.types : []).flat(Infinity);
      r.types = flat;
      for (const t of flat) registerType(types, t);
    }
  }
  proc.inputs = normParams(node.inputs, file, 'inputs', proc);
  proc.outputs = normParams(node.outputs, file, 'outputs', proc);
  void graph;
  return proc;
}

function registerType(types: Map<string, Json>, t: Json): void {
  if (!t || typeof t !== 'object' || typeof t.name !== 'string') return;
  const n = t.name as string;
  types.set(n, t);
  const frag = n.includes('#') ? n.slice(n.lastIndexOf('#') + 1) : n;
  types.set(frag, t);
  types.set(shortname(n), t);
  // nested named types (records inside records, enums in fields)
  for (const f of fieldList(t.fields)) if (f && typeof f.type === 'object') walkNamed(types, f.type);
}
function fieldList(fields: Json): Json[] {
  if (!fields) return [];
  if (Array.isArray(fields)) return fields;
  return Object.entries(fields).map(([k, f]) => (f && typeof f === 'object' && !Array.isArray(f) ? { ...(f as object), name: k } : { name: k, type: f }));
}
function walkNamed(types: Map<string, Json>, t: Json): void {
  if (Array.isArray(t)) { t.forEach((x) => walkNamed(types, x)); return; }
  if (t && typeof t === 'object') {
    if (typeof t.name === 'string' && (t.type === 'record' || t.type === 'enum')) registerType(types, t);
    if (t.items) walkNamed(types, t.items);
    for (const f of fieldList(t.fields)) walkNamed(types, f?.type);
  }
}

function normReqs(v: Json, file: string, field: string): Requirement[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) {
    return v.map((r) => {
      if (!r || typeof r !== 'object' || typeof r.class !== 'string') throw new ValidationError(`${where(r ?? v, file)}: each entry of ${field} needs a "class"`);
      return r;
    });
  }
  if (typeof v === 'object') {
    return Object.entries(v).map(([k, r]) => {
      const o = r && typeof r === 'object' ? r : {};
      const req = { ...(o as object), class: k } as Requirement;
      const pos = positions.get(o) ?? positions.get(v);
      if (pos) positions.set(req, pos);
      return req;
    });
  }
  throw new ValidationError(`${where(v, file)}: ${field} must be a list or a map`);
}

function normParams(v: Json, file: string, field: string, proc: Process): Param[] {
  if (v === undefined || v === null) return [];
  let list: Json[];
  if (Array.isArray(v)) list = v;
  else if (typeof v === 'object') {
    list = Object.entries(v).map(([k, p]) => {
      if (p && typeof p === 'object' && !Array.isArray(p)) {
        const o = { ...p, id: k };
        if (positions.has(p)) positions.set(o, positions.get(p)!);
        return o;
      }
      return { id: k, type: p };
    });
  } else throw new ValidationError(`${where(v, file)}: ${field} must be a list or a map`);
  const seen = new Set<string>();
  return list.map((p) => {
    if (!p || typeof p !== 'object' || typeof p.id !== 'string') throw new ValidationError(`${where(p ?? v, file)}: each entry of ${field} needs an "id"`);
    const id = shortname(p.id);
    if (seen.has(id)) throw new ValidationError(`${where(p, file)}: duplicate ${field} id "${id}"`);
    seen.add(id);
    if (p.type === undefined && proc.class !== 'Workflow') throw new ValidationError(`${where(p, file)}: ${field} "${id}" has no type`);
    const param: Param = {
      id,
      type: normType(p.type ?? 'Any', proc, file, p),
      raw: p,
    };
    if ('default' in p) param.default = p.default;
    if (p.inputBinding) param.inputBinding = p.inputBinding;
    if (p.outputBinding) param.outputBinding = p.outputBinding;
    if (p.secondaryFiles !== undefined) param.secondaryFiles = normSecondary(p.secondaryFiles);
    if (p.format !== undefined) param.format = expandFormat(p.format, proc.namespaces);
    if (p.streamable) param.streamable = true;
    if (p.loadContents || p.inputBinding?.loadContents) param.loadContents = true;
    if (p.loadListing) param.loadListing = p.loadListing;
    return param;
  });
}

export function expandFormat(f: Json, ns: Record<string, string>): Json {
  if (Array.isArray(f)) return f.map((x) => expandFormat(x, ns));
  if (typeof f !== 'string' || f.includes('$(') || f.includes('${')) return f;
  const m = /^([A-Za-z_][\w.-]*):(?!\/\/)(.*)$/.exec(f);
  if (m && ns[m[1]]) return ns[m[1]] + m[2];
  return f;
}

export function normSecondary(v: Json): SecondaryFile[] {
  const arr = Array.isArray(v) ? v : [v];
  return arr.map((s) => {
    if (typeof s === 'string') {
      if (s.endsWith('?')) return { pattern: s.slice(0, -1), required: false };
      return { pattern: s, required: null };
    }
    return { pattern: s.pattern, required: s.required ?? null };
  });
}

const PRIMS = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'string', 'File', 'Directory', 'Any', 'stdout', 'stderr', 'stdin']);

/** Normalise a type expression: expand shorthands, resolve named types. */
export function normType(t: Json, proc: Process, file: string, ctxNode: Json, seen: Set<string> = new Set()): Json {
  if (typeof t === 'string') {
    if (t.endsWith('?')) return ['null', normType(t.slice(0, -1), proc, file, ctxNode, seen)];
    if (t.endsWith('[]')) return { type: 'array', items: normType(t.slice(0, -2), proc, file, ctxNode, seen) };
    const bare = t.startsWith('https://w3id.org/cwl/salad#') || t.startsWith('http://www.w3.org/2001/XMLSchema#') || t.startsWith('https://w3id.org/cwl/cwl#')
      ? t.slice(t.indexOf('#') + 1) : t;
    if (PRIMS.has(bare)) return bare;
    const frag = bare.includes('#') ? bare.slice(bare.lastIndexOf('#') + 1) : bare;
    const named = proc.types.get(bare) ?? proc.types.get(frag) ?? proc.types.get(shortname(bare));
    if (named) {
      const key = named.name;
      if (seen.has(key)) return { $ref: key };
      const s2 = new Set(seen); s2.add(key);
      return normType(named, proc, file, ctxNode, s2);
    }
    throw new ValidationError(`${where(ctxNode, file)}: unknown type "${t}"`);
  }
  if (Array.isArray(t)) {
    const out: Json[] = [];
    for (const x of t) {
      const n = normType(x, proc, file, ctxNode, seen);
      if (Array.isArray(n)) out.push(...n); else out.push(n);
    }
    return out;
  }
  if (t && typeof t === 'object') {
    if (t.type === 'array') {
      return { ...t, type: 'array', items: normType(t.items, proc, file, ctxNode, seen) };
    }
    if (t.type === 'enum') {
      return { ...t, type: 'enum', symbols: (t.symbols ?? []).map((s: string) => (s.includes('#') ? shortname(s) : s)) };
    }
    if (t.type === 'record') {
      let fields = t.fields ?? [];
      if (!Array.isArray(fields)) {
        fields = Object.entries(fields).map(([k, f]) => (f && typeof f === 'object' && !Array.isArray(f) ? { ...f, name: k } : { name: k, type: f }));
      }
      return {
        ...t,
        type: 'record',
        fields: fields.map((f: Json) => {
          const nf: Json = { ...f, name: shortname(f.name ?? f.id), type: normType(f.type, proc, file, f, seen) };
          if (f.secondaryFiles !== undefined) nf.secondaryFiles = normSecondary(f.secondaryFiles);
          if (f.format !== undefined) nf.format = expandFormat(f.format, proc.namespaces);
          return nf;
        }),
      };
    }
    if (typeof t.type === 'string' || Array.isArray(t.type)) {
      // e.g. {type: "string"} — a nested type wrapper
      const inner = normType(t.type, proc, file, ctxNode, seen);
      return inner;
    }
  }
  throw new ValidationError(`${where(ctxNode, file)}: invalid type ${JSON.stringify(t)}`);
}

/** Find a requirement: requirements win over hints; later entries win. */
export function getReq(proc: Process, cls: string): { req: Requirement; required: boolean } | undefined {
  for (let i = proc.requirements.length - 1; i >= 0; i--) if (proc.requirements[i].class === cls) return { req: proc.requirements[i], required: true };
  for (let i = proc.hints.length - 1; i >= 0; i--) if (proc.hints[i].class === cls) return { req: proc.hints[i], required: false };
  return undefined;
}
