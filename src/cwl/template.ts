import yaml from 'js-yaml';
import { toUri, type Json, type Process } from './load.js';

/**
 * `cwl-run --make-template`: a YAML job template for a process's inputs, as
 * cwltool prints it: one key per input (last input first, as cwltool's
 * ordering), an example value (the default where there is one) and a
 * comment naming the type. Unlike cwltool 3.1.20230209, SchemaDefRequirement
 * types are expanded (cwltool prints the type's name as the value), and enum
 * symbols are the short names.
 */

/** A mapping whose entries carry comments (records; the template itself). */
class Commented { entries: [string, Json, string][] = []; unshift(k: string, v: Json, c: string): void { this.entries.unshift([k, v, c]); } }

const DEFAULTS: Record<string, () => Json> = {
  null: () => 'null', Any: () => 'null', boolean: () => false, int: () => 0, long: () => 0, float: () => 0.1, double: () => 0.1,
  string: () => 'a_string', File: () => ({ class: 'File', path: 'a/file/path' }), Directory: () => ({ class: 'Directory', path: 'a/directory/path' }),
};

/** Python's repr of a type, as cwltool's comments show it. */
function pyRepr(t: Json): string {
  if (typeof t === 'string') return `'${t}'`;
  if (Array.isArray(t)) return `[${t.map(pyRepr).join(', ')}]`;
  if (t && typeof t === 'object') return `{${Object.entries(t).map(([k, v]) => `'${k}': ${pyRepr(v)}`).join(', ')}}`;
  return String(t);
}

const falsy = (v: Json): boolean => v === undefined || v === null || v === false || v === 0 || v === '' || (Array.isArray(v) && !v.length) || (typeof v === 'object' && v && !Array.isArray(v) && !Object.keys(v).length);

function example(t: Json, def: Json): [Json, string] {
  if (Array.isArray(t)) {
    const ts = t.filter((x) => x !== 'null');
    const optional = ts.length !== t.length;
    let value: Json; let comment: string;
    if (ts.length === 1) {
      [value, comment] = example(ts[0], def);
      if (optional) comment = comment ? `${comment} (optional)` : 'optional';
    } else {
      [value] = example(ts[0], def);
      comment = 'one of ' + ts.map((x) => example(x, def)[1]).filter(Boolean).join(', ');
      if (optional) comment += ' (optional)';
    }
    return [value, comment];
  }
  if (t && typeof t === 'object' && 'type' in t) {
    if (t.type === 'array') {
      const items = Array.isArray(t.items) ? t.items : [t.items];
      let value: Json; let comment = '';
      const first = items[0];
      if (items.length === 1 && first && typeof first === 'object' && first.type === 'enum') {
        value = [...(first.symbols ?? [])];
        if (first.name) comment = `array of type "${first.name}".`;
      } else {
        const [v, c] = example(items.length === 1 ? items[0] : items, undefined);
        comment = 'array of ' + c;
        value = items.length === 1 ? [v] : v;
      }
      return [def !== undefined && def !== null ? def : value, comment];
    }
    if (t.type === 'enum') {
      const syms: string[] = t.symbols ?? [];
      const value = def !== undefined && def !== null ? def : t.default !== undefined ? t.default : syms.length === 1 ? syms[0] : `${t.name ?? 'valid'}_enum_value`;
      return [value, `enum; valid values: "${syms.join('", "')}"`];
    }
    if (t.type === 'record') {
      const m = new Commented();
      for (const f of t.fields ?? []) { const [v, c] = example(f.type, undefined); m.unshift(f.name, v, c); }
      return [m, t.name ? `"${t.name}" record type.` : 'Anonymous record type.'];
    }
    if ('default' in t) return [t.default, `default value of type ${pyRepr(t.type)}`];
    return [DEFAULTS[t.type]?.() ?? pyRepr(t), `type ${pyRepr(t.type)}`];
  }
  if (falsy(def)) return [DEFAULTS[t]?.() ?? String(t), `type ${pyRepr(t)}`];
  return [def, `default value of type ${pyRepr(t)}.`];
}

/** File/Directory locations in a default as absolute file:// URIs (as cwltool's loader makes them). */
function absoluteLocations(v: Json, docUri: string): Json {
  if (Array.isArray(v)) return v.map((x) => absoluteLocations(x, docUri));
  if (v && typeof v === 'object') {
    const out: Json = {};
    for (const [k, x] of Object.entries(v)) out[k] = absoluteLocations(x, docUri);
    if (v.class === 'File' || v.class === 'Directory') {
      for (const k of ['location', 'path']) if (typeof v[k] === 'string' && !v[k].startsWith('_:')) out[k] = new URL(v[k], docUri).href;
    }
    return out;
  }
  return v;
}

function scalar(v: Json): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return '[]';
  if (typeof v === 'object') return '{}';
  return yaml.dump(String(v), { lineWidth: -1 }).replace(/\n$/, '');
}
const entriesOf = (v: Json): [string, Json, string][] => (v instanceof Commented ? v.entries : Object.entries(v).map(([k, x]) => [k, x, ''] as [string, Json, string]));
const isBlock = (v: Json): boolean => (v instanceof Commented ? v.entries.length > 0 : Array.isArray(v) ? v.length > 0 : !!v && typeof v === 'object' && Object.keys(v).length > 0);

/** YAML as cwltool's ruamel writer lays it out: mappings indented by 4, sequence dashes by 2, comments after two spaces. */
function mapLines(v: Json, ind: number): string[] {
  const lines: string[] = [];
  for (const [k, x, c] of entriesOf(v)) {
    const key = ' '.repeat(ind) + scalar(k) + ':';
    const cm = c ? `  # ${c}` : '';
    if (!isBlock(x)) { lines.push(`${key} ${scalar(x)}${cm}`); continue; }
    lines.push(key + cm, ...(Array.isArray(x) ? seqLines(x, ind + 2) : mapLines(x, ind + 4)));
  }
  return lines;
}
function seqLines(items: Json[], ind: number): string[] {
  const lines: string[] = [];
  for (const x of items) {
    if (!isBlock(x)) { lines.push(`${' '.repeat(ind)}- ${scalar(x)}`); continue; }
    const sub = Array.isArray(x) ? seqLines(x, ind + 2) : mapLines(x, ind + 2);
    sub[0] = `${' '.repeat(ind)}- ${sub[0].slice(ind + 2)}`;
    lines.push(...sub);
  }
  return lines;
}

export function makeTemplate(proc: Process): string {
  const docUri = toUri(proc.file);
  const t = new Commented();
  for (const p of proc.inputs) {
    const [v, c] = example(p.type, p.default === undefined ? undefined : absoluteLocations(p.default, docUri));
    t.unshift(p.id, v, c);
  }
  return mapLines(t, 0).join('\n') + (t.entries.length ? '\n' : '{}\n');
}
