import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseYaml, toUri, ValidationError, type Json } from './load.js';

/**
 * `cwl-run --print-deps`: the documents and files a CWL document needs, in
 * cwltool's shape: a File for the document whose `secondaryFiles` are what
 * it references (`run:` and `$import` documents, each with its own
 * dependencies; `$include`, `$schemas` and every File/Directory `location`,
 * e.g. defaults). Files in subdirectories of the referring document's
 * directory are nested in Directory objects, as cwltool does. The raw
 * documents are scanned (before $import/$include are resolved), as cwltool's
 * `scandeps` does.
 */

export const CWL_IANA = 'https://www.iana.org/assignments/media-types/application/cwl';

type Dep = Record<string, Json>;

const defrag = (u: string): string => u.split('#')[0];

function urljoin(base: string, u: string): string {
  try { return new URL(u, base).href; } catch { return u; }
}

const cache = new Map<string, Json>();
function fetchDoc(uri: string): Json {
  const u = defrag(uri);
  if (!u.startsWith('file://')) throw new ValidationError(`cannot load ${uri}: only file:// documents and local paths`);
  let doc = cache.get(u);
  if (doc === undefined) {
    const file = fileURLToPath(u);
    let text: string;
    try { text = fs.readFileSync(file, 'utf8'); } catch (e) { throw new ValidationError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
    doc = parseYaml(text, file) ?? null;
    cache.set(u, doc);
  }
  return doc;
}

/** A dependency in a subdirectory of `base`'s directory, wrapped in one Directory per level (cwltool's nestdir). */
function nestdir(base: string, dep: Dep): Dep {
  const dirname = path.posix.dirname(base) + '/';
  const loc = String(dep.location);
  if (!loc.startsWith(dirname)) return dep;
  const sp = loc.slice(dirname.length).split('/');
  sp.pop();
  while (sp.length) {
    const location = dirname + sp.join('/');
    const basename = sp.pop()!;
    dep = { class: 'Directory', basename, listing: [dep], location };
  }
  return dep;
}

function visitFilesDirs(x: Json, op: (d: Dep) => void): void {
  if (Array.isArray(x)) { x.forEach((y) => visitFilesDirs(y, op)); return; }
  if (x && typeof x === 'object') {
    if (x.class === 'File' || x.class === 'Directory') op(x);
    for (const v of Object.values(x)) visitFilesDirs(v, op);
  }
}

/** basename, nameroot, nameext as cwltool's normalizeFilesDirs fills them in. */
function normalize(list: Dep[]): void {
  visitFilesDirs(list, (d) => {
    if (typeof d.location !== 'string') return;
    if (!d.basename) {
      let p = d.location.replace(/[?#].*$/, '').replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').replace(/\/+$/, '');
      try { p = decodeURIComponent(p); } catch { /* keep */ }
      d.basename = path.posix.basename(p);
    }
    if (d.class === 'File') {
      const ext = path.posix.extname(d.basename);
      const root = ext ? d.basename.slice(0, -ext.length) : d.basename;
      if (d.nameroot !== root) d.nameroot = root;
      if (d.nameext !== ext) d.nameext = ext;
    }
  });
}

/** One entry per basename (the first), Directory listings merged; two different files of one basename are an error. */
function mergedirs(list: Dep[]): Dep[] {
  const ents = new Map<string, Dep>();
  for (const e of list) {
    const prev = ents.get(e.basename);
    if (!prev) ents.set(e.basename, e);
    else if (e.location !== prev.location) {
      throw new ValidationError(`conflicting basename in dependencies: '${e.basename}' used by both '${e.location}' and '${prev.location}'`);
    } else if (e.class === 'Directory' && Array.isArray(e.listing) && e.listing.length) (prev.listing ??= []).push(...e.listing);
  }
  for (const e of ents.values()) if (e.class === 'Directory' && Array.isArray(e.listing)) e.listing = mergedirs(e.listing);
  return [...ents.values()];
}

const REF_FIELDS = new Set(['$import', 'run']);
const URL_FIELDS = new Set(['$include', '$schemas']);

function scan(base: string, doc: Json): Dep[] {
  const r: Dep[] = [];
  if (Array.isArray(doc)) {
    for (const d of doc) r.push(...scan(base, d));
  } else if (doc && typeof doc === 'object') {
    if (typeof doc.id === 'string' && doc.id.startsWith('file://')) {
      const df = defrag(doc.id);
      if (base !== df) { r.push({ class: 'File', location: df, format: CWL_IANA }); base = df; }
    }
    const isFD = doc.class === 'File' || doc.class === 'Directory';
    if (isFD) {
      const u = doc.location ?? doc.path;
      if (typeof u === 'string' && u && !u.startsWith('_:')) {
        let dep: Dep = { class: doc.class, location: urljoin(base, u) };
        if ('basename' in doc) dep.basename = doc.basename;
        if (doc.class === 'Directory' && 'listing' in doc) dep.listing = doc.listing;
        if (doc.class === 'File' && 'secondaryFiles' in doc) dep.secondaryFiles = scan(base, doc.secondaryFiles);
        dep = nestdir(base, dep);
        r.push(dep);
      } else if (doc.class === 'Directory' && Array.isArray(doc.listing)) r.push(...scan(base, doc.listing));
      else if (doc.class === 'File' && Array.isArray(doc.secondaryFiles)) r.push(...scan(base, doc.secondaryFiles));
    }
    for (const [k, v] of Object.entries(doc)) {
      if (REF_FIELDS.has(k)) {
        for (const u2 of Array.isArray(v) ? v : [v]) {
          if (u2 && typeof u2 === 'object') { r.push(...scan(base, u2)); continue; }
          if (typeof u2 !== 'string') continue;
          const subid = urljoin(base, u2);
          if (defrag(base) === defrag(subid)) continue;
          const sub = fetchDoc(subid);
          let dep: Dep = { class: 'File', location: subid, format: CWL_IANA };
          const sf = scan(subid, sub);
          if (sf.length) dep.secondaryFiles = mergedirs(sf);
          dep = nestdir(base, dep);
          r.push(dep);
        }
      } else if (URL_FIELDS.has(k)) {
        for (const u3 of Array.isArray(v) ? v : [v]) if (typeof u3 === 'string') r.push(nestdir(base, { class: 'File', location: urljoin(base, u3) }));
      } else if (isFD && (k === 'listing' || k === 'secondaryFiles')) {
        // handled above
      } else r.push(...scan(base, v));
    }
  }
  if (r.length) normalize(r);
  return r;
}

/** Locations as paths relative to `base` (file:// only; other URIs stay as they are). */
function makeRelative(deps: Dep, base: string): void {
  visitFilesDirs(deps, (d) => {
    const loc = d.location ?? d.path;
    if (typeof loc !== 'string' || !loc.startsWith('file://')) return;
    const [u, frag] = [defrag(loc), loc.includes('#') ? loc.slice(loc.indexOf('#')) : ''];
    d.location = (path.relative(base, fileURLToPath(u)) || '.') + frag;
  });
}

/** The dependency tree of the document at `file` (a path), with locations relative to its directory (`primary`) or to `cwd`. */
export function findDeps(file: string, relative: 'primary' | 'cwd' = 'primary', cwd = process.cwd()): Dep {
  const uri = toUri(file);
  const deps: Dep = { class: 'File', location: uri, format: CWL_IANA };
  deps.secondaryFiles = mergedirs(scan(uri, fetchDoc(uri)));
  makeRelative(deps, relative === 'primary' ? path.dirname(file) : cwd);
  return deps;
}
