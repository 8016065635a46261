import type { Json, Process } from './load.js';
import { normType } from './load.js';

/** Does `v` conform to the normalised CWL type `t`? */
export function matches(t: Json, v: Json, proc?: Process): boolean {
  if (Array.isArray(t)) return t.some((x) => matches(x, v, proc));
  if (typeof t === 'string') {
    switch (t) {
      case 'null': return v === null || v === undefined;
      case 'Any': return v !== null && v !== undefined;
      case 'boolean': return typeof v === 'boolean';
      case 'int': case 'long': return typeof v === 'number' && Number.isInteger(v);
      case 'float': case 'double': return typeof v === 'number';
      case 'string': return typeof v === 'string';
      case 'File': case 'stdout': case 'stderr': case 'stdin': return !!v && typeof v === 'object' && v.class === 'File';
      case 'Directory': return !!v && typeof v === 'object' && v.class === 'Directory';
      default: return false;
    }
  }
  if (t && typeof t === 'object') {
    if (t.$ref) {
      if (!proc) return true;
      return matches(normType(t.$ref, proc, proc.file, null), v, proc);
    }
    if (t.type === 'array') return Array.isArray(v) && v.every((x) => matches(t.items, x, proc));
    if (t.type === 'enum') return typeof v === 'string' && t.symbols.includes(v);
    if (t.type === 'record') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
      return t.fields.every((f: Json) => matches(f.type, v[f.name] ?? null, proc));
    }
  }
  return false;
}

/** The member of a union a value belongs to. */
export function pickType(t: Json, v: Json, proc?: Process): Json {
  if (Array.isArray(t)) {
    for (const x of t) if (x !== 'null' && matches(x, v, proc)) return x;
    for (const x of t) if (matches(x, v, proc)) return x;
    return undefined;
  }
  if (t && typeof t === 'object' && t.$ref && proc) return normType(t.$ref, proc, proc.file, null);
  return t;
}

export function isOptional(t: Json): boolean {
  if (Array.isArray(t)) return t.includes('null');
  return t === 'null';
}

export function describeType(t: Json): string {
  if (Array.isArray(t)) return t.map(describeType).join(' | ');
  if (typeof t === 'string') return t;
  if (t?.type === 'array') return `${describeType(t.items)}[]`;
  if (t?.type === 'enum') return `enum(${t.symbols.join(',')})`;
  if (t?.type === 'record') return `record${t.name ? ' ' + t.name : ''}`;
  if (t?.$ref) return t.$ref;
  return JSON.stringify(t);
}

/** Does the type (somewhere) contain File or Directory? */
export function hasFiles(t: Json): boolean {
  if (Array.isArray(t)) return t.some(hasFiles);
  if (typeof t === 'string') return t === 'File' || t === 'Directory' || t === 'Any' || t === 'stdout' || t === 'stderr';
  if (t?.type === 'array') return hasFiles(t.items);
  if (t?.type === 'record') return t.fields.some((f: Json) => hasFiles(f.type));
  return false;
}
