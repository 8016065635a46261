import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFile, toPath, toUri, ValidationError, type Json } from './load.js';

/**
 * `cwl-run --pack`: a process and every document it runs, as one JSON
 * document with `$graph` (as cwltool --pack): the top process is `#main`,
 * each other document `#<its file name>` (`-2`, `-3` ... on a clash); `run:`
 * references become `#id`; `$import`/`$include` are inlined; File and
 * Directory locations (defaults) and `$schemas` become absolute file://
 * URIs, so the packed file runs from anywhere. Inline `run:` processes stay
 * inline. Ids inside each process stay relative to it (they resolve in the
 * process's scope; `#x` ids of a stand-alone document become `#entry/x`). A document that is already a `$graph` keeps its entries.
 * One process and no others: the process itself, as cwltool prints it.
 */

interface Packer { graph: Json[]; ids: Map<string, string>; used: Set<string>; namespaces: Record<string, string>; schemas: string[]; cwlVersion?: string; typeNames: Map<string, string> }

function absolutize(v: Json, baseUri: string): Json {
  if (Array.isArray(v)) return v.map((x) => absolutize(x, baseUri));
  if (!v || typeof v !== 'object') return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v)) out[k] = absolutize(x, baseUri);
  if (v.class === 'File' || v.class === 'Directory') {
    for (const k of ['location', 'path']) if (typeof v[k] === 'string' && !v[k].startsWith('_:') && !v[k].includes('$(') && !v[k].includes('${')) out[k] = new URL(v[k], baseUri).href;
  }
  return out;
}

/** Rewrite every `run:` (in steps, at any depth) of one process node that came from `file`. */
function rewriteRuns(node: Json, file: string, p: Packer, inGraph: boolean): void {
  if (Array.isArray(node)) { node.forEach((x) => rewriteRuns(x, file, p, inGraph)); return; }
  if (!node || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'run' && typeof v === 'string') {
      if (v.startsWith('#')) { if (!inGraph) throw new ValidationError(`${file}: run: ${v} refers into a document without $graph`); continue; }
      node.run = `#${addFile(toPath(v, path.dirname(file)), v.includes('#') ? v.slice(v.indexOf('#') + 1) : undefined, p, false)}`;
    } else rewriteRuns(v, file, p, inGraph);
  }
}

const ID_FIELDS = new Set(['id', 'source', 'outputSource', 'scatter', 'out']);
/** `#x` ids and references of a stand-alone document are document-wide; in the $graph they become `#entry/x`. */
function qualifyIds(node: Json, entry: string): void {
  const q = (x: Json): Json => (typeof x === 'string' && x.startsWith('#') ? `#${entry}/${x.slice(1)}` : (qualifyIds(x, entry), x));
  if (Array.isArray(node)) { node.forEach((x) => qualifyIds(x, entry)); return; }
  if (!node || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node)) {
    if (ID_FIELDS.has(k)) node[k] = Array.isArray(v) ? v.map(q) : q(v);
    else if (k !== 'run' || typeof v === 'object') qualifyIds(v, entry);
  }
}

/**
 * SchemaDefRequirement types get document-wide names (`#Name`; `#entry/Name`
 * for a second, different type of that name), and references to them (`Name`, `#Name`,
 * `other.yml#Name` for a type $import-ed from another file, now inlined)
 * name them so.
 */
function scopeTypes(node: Json, entry: string, p: Packer): void {
  const names = new Map<string, string>();
  for (const r of [...list(node.requirements), ...list(node.hints)]) {
    if (r?.class !== 'SchemaDefRequirement') continue;
    r.types = (Array.isArray(r.types) ? r.types : []).flat(Infinity);
    for (const t of r.types) {
      if (!t || typeof t.name !== 'string' || /^[a-z][a-z0-9+.-]*:/i.test(t.name)) continue;
      const short = t.name.slice(t.name.lastIndexOf('#') + 1);
      // one name for one definition across entries (a workflow and its tool both $import it); a different one of that name is scoped to its entry
      const body = JSON.stringify({ ...t, name: undefined });
      const prev = p.typeNames.get(short);
      const full = !prev || prev === body ? `#${short}` : `#${entry}/${short}`;
      if (!prev) p.typeNames.set(short, body);
      names.set(short, full);
      t.name = full;
    }
  }
  if (!names.size) return;
  const ref = (v: string): string => {
    const m = /^(?:[^:#]*#)?([^#]+)$/.exec(v);
    return m && names.has(m[1]) ? names.get(m[1])! : v;
  };
  const SKIP = new Set(['id', 'source', 'outputSource', 'name', 'class', 'valueFrom', 'glob', 'expression', 'run', 'doc', 'label']);
  const walk = (x: Json): Json => {
    if (typeof x === 'string') return ref(x);
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') { for (const [k, v] of Object.entries(x)) if (!SKIP.has(k)) x[k] = walk(v); }
    return x;
  };
  walk(node);
}
function list(v: Json): Json[] {
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object') return Object.entries(v).map(([k, x]) => (x && typeof x === 'object' ? Object.assign(x, { class: k }) : { class: k }));
  return [];
}

function freshId(name: string, p: Packer): string {
  let id = name; let n = 2;
  while (p.used.has(id)) id = `${name}-${n++}`;
  p.used.add(id);
  return id;
}

/** Add a document (or one entry of its $graph) to the graph; its id there. */
function addFile(file: string, frag: string | undefined, p: Packer, top: boolean): string {
  const key = `${file}#${frag ?? ''}`;
  const known = p.ids.get(key);
  if (known) return known;
  const doc = loadFile(file);
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new ValidationError(`${file}: not a CWL process document`);
  Object.assign(p.namespaces, doc.$namespaces ?? {});
  for (const s of [].concat(doc.$schemas ?? [])) { const u = new URL(s, toUri(file)).href; if (!p.schemas.includes(u)) p.schemas.push(u); }
  p.cwlVersion ??= doc.cwlVersion;
  if (Array.isArray(doc.$graph)) {
    // entries of a $graph document keep their ids (a second $graph document with clashing ids is refused)
    let want: string | undefined;
    for (const e of doc.$graph) {
      const id = String(e.id ?? '').replace(/^#/, '');
      if (p.used.has(id)) throw new ValidationError(`${file}: process id "#${id}" is already used in the packed document`);
      p.used.add(id);
      p.ids.set(`${file}#${id}`, id);
      const node = absolutize(e, toUri(file));
      delete node.cwlVersion;
      node.id = `#${id}`;
      p.graph.push(node);
      rewriteRuns(node, file, p, true);
      if (id === (frag ?? 'main') || (!frag && doc.$graph.length === 1)) want = id;
    }
    if (!want) throw new ValidationError(`${file}: no process "#${frag ?? 'main'}" in $graph`);
    p.ids.set(key, want);
    return want;
  }
  const id = freshId(top ? 'main' : path.basename(file), p);
  p.ids.set(key, id);
  const node = absolutize(doc, toUri(file));
  for (const k of ['cwlVersion', '$namespaces', '$schemas']) delete node[k];
  qualifyIds(node, id);
  node.id = `#${id}`;
  scopeTypes(node, id, p);
  p.graph.push(node);
  rewriteRuns(node, file, p, false);
  return id;
}

export function packProcess(ref: string): Json {
  const file = ref.startsWith('file://') ? fileURLToPath(ref.split('#')[0]) : toPath(ref);
  const frag = ref.includes('#') ? ref.slice(ref.indexOf('#') + 1) : undefined;
  const p: Packer = { graph: [], ids: new Map(), used: new Set(), namespaces: {}, schemas: [], typeNames: new Map() };
  const main = addFile(file, frag, p, true);
  void main;
  const head: Json = { cwlVersion: p.cwlVersion };
  if (Object.keys(p.namespaces).length) head.$namespaces = p.namespaces;
  if (p.schemas.length) head.$schemas = p.schemas;
  if (p.graph.length === 1) return { ...head, ...p.graph[0] };
  return { ...head, $graph: p.graph };
}
