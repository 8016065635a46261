import { ValidationError, type Json, type Process } from './load.js';
import type { Evaluator } from './expr.js';
import { matches } from './types.js';
import { normType } from './load.js';

/**
 * CommandLineBinding: collect bindings from `arguments` and inputs, sort by
 * their position keys (numbers before strings, element by element, as
 * cwltool does) and render them to argv tokens.
 */
export interface Token { value: string; shellQuote: boolean }

type Key = (number | string)[];
interface Binding { key: Key; binding: Json; datum: Json; hasDatum: boolean }

function cmpKey(a: Key, b: Key): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i], y = b[i];
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    if (typeof x === 'number') return -1;
    if (typeof y === 'number') return 1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

export interface BuildEnv { ev: Evaluator; inputs: Json; runtime: Json; proc: Process }

function evalPosition(env: BuildEnv, pos: Json, self: Json): number {
  if (pos === undefined || pos === null) return 0;
  const v = env.ev.eval(pos, { inputs: env.inputs, self, runtime: env.runtime });
  if (v === null || v === undefined) return 0;
  if (typeof v !== 'number') throw new ValidationError(`inputBinding position must be an int (got ${JSON.stringify(v)})`);
  return v;
}

function bindInput(env: BuildEnv, schema: { type: Json; inputBinding?: Json; parentBinding?: Json }, datum: Json, lead: Key, tail: Key): Binding[] {
  const out: Binding[] = [];
  let binding: Binding | undefined;
  if (schema.inputBinding && typeof schema.inputBinding === 'object') {
    const b = schema.inputBinding;
    const key: Key = [...lead, evalPosition(env, b.position, datum), ...tail];
    binding = { key, binding: b, datum, hasDatum: true };
  }
  const hasValueFrom = binding && binding.binding.valueFrom !== undefined;
  let type = schema.type;
  if (type && typeof type === 'object' && !Array.isArray(type) && type.$ref) type = normType(type.$ref, env.proc, env.proc.file, null);
  if (Array.isArray(type)) {
    let found = false;
    for (const t of type) {
      if (matches(t, datum, env.proc)) {
        // the member is bound as if it had the parameter's inputBinding (cwltool), e.g. `string[]?` items
        const sub = bindInput(env, { type: t, parentBinding: binding?.binding ?? schema.parentBinding }, datum, lead, tail);
        if (!hasValueFrom) out.push(...sub);
        found = true;
        break;
      }
    }
    if (!found && datum !== null && datum !== undefined) throw new ValidationError(`value ${JSON.stringify(datum).slice(0, 100)} does not match the input type`);
  } else if (type && typeof type === 'object') {
    const st = { ...type };
    const pb = binding?.binding ?? schema.parentBinding;
    if (pb && !st.inputBinding && st.type === 'array' && pb.itemSeparator === undefined) st.inputBinding = {};
    if (st.type === 'array' || st.type === 'record' || st.type === 'enum') {
      const sub = bindComplex(env, st, datum, lead, tail);
      if (!hasValueFrom) out.push(...sub);
    }
  }
  if (binding) {
    for (const b of out) b.key = [...binding.key, ...b.key];
    out.push(binding);
  }
  return out;
}

/** A type object (array/record/enum) with its own inputBinding. */
function bindComplex(env: BuildEnv, st: Json, datum: Json, lead: Key, tail: Key): Binding[] {
  const out: Binding[] = [];
  let binding: Binding | undefined;
  if (st.inputBinding && typeof st.inputBinding === 'object') {
    const b = st.inputBinding;
    binding = { key: [...lead, evalPosition(env, b.position, datum), ...tail], binding: b, datum, hasDatum: true };
  }
  const hasValueFrom = binding && binding.binding.valueFrom !== undefined;
  const sub: Binding[] = [];
  if (st.type === 'record' && datum && typeof datum === 'object') {
    for (const f of st.fields) {
      const v = datum[f.name];
      if (v !== undefined && v !== null) sub.push(...bindInput(env, { type: f.type, inputBinding: f.inputBinding }, v, lead, [f.name]));
    }
  } else if (st.type === 'array' && Array.isArray(datum)) {
    datum.forEach((item, n) => {
      const b2 = binding ? { ...binding.binding } : undefined;
      sub.push(...bindInput(env, { type: st.items, inputBinding: b2 }, item, [n], tail));
    });
    binding = undefined;
  }
  if (!hasValueFrom) out.push(...sub);
  if (binding) {
    for (const b of out) b.key = [...binding.key, ...b.key];
    out.push(binding);
  }
  return out;
}

export function tostr(v: Json): string {
  if (v && typeof v === 'object' && (v.class === 'File' || v.class === 'Directory')) return v.path;
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return String(v);
  return JSON.stringify(v);
}

function render(env: BuildEnv, b: Binding): Token[] {
  const bb = b.binding;
  let value = b.datum;
  if (b.hasDatum && (value === null || value === undefined)) return [];
  if (bb.valueFrom !== undefined) value = env.ev.eval(bb.valueFrom, { inputs: env.inputs, self: value ?? null, runtime: env.runtime });
  const prefix: string | undefined = bb.prefix;
  const sep = bb.separate ?? true;
  const shellQuote = bb.shellQuote ?? true;
  const tok = (s: string): Token => ({ value: s, shellQuote });
  let argl: Json[];
  if (Array.isArray(value)) {
    if (bb.itemSeparator !== undefined && value.length) argl = [value.map(tostr).join(bb.itemSeparator)];
    else if (bb.valueFrom !== undefined) return [...(prefix ? [prefix] : []), ...value.map(tostr)].map(tok);
    else if (prefix && value.length) return [tok(prefix)];
    else return [];
  } else if (value && typeof value === 'object' && (value.class === 'File' || value.class === 'Directory')) argl = [value];
  else if (value && typeof value === 'object') return prefix ? [tok(prefix)] : [];
  else if (value === true && prefix) return [tok(prefix)];
  else if (value === false || value === null || value === undefined || value === true) return [];
  else argl = [value];
  const out: Token[] = [];
  for (const j of argl) {
    if (sep) { if (prefix) out.push(tok(prefix)); out.push(tok(tostr(j))); }
    else out.push(tok((prefix ?? '') + tostr(j)));
  }
  return out;
}

export function buildCommandLine(env: BuildEnv): Token[] {
  const tool = env.proc.raw;
  const bindings: Binding[] = [];
  const args: Json[] = tool.arguments ?? [];
  args.forEach((arg, i) => {
    if (arg && typeof arg === 'object') {
      const pos = evalPosition(env, arg.position, null);
      bindings.push({ key: [pos, i], binding: arg, datum: null, hasDatum: false });
    } else if (typeof arg === 'string' && (arg.includes('$(') || arg.includes('${'))) {
      bindings.push({ key: [0, i], binding: { valueFrom: arg }, datum: null, hasDatum: false });
    } else {
      bindings.push({ key: [0, i], binding: {}, datum: arg, hasDatum: true });
    }
  });
  for (const p of env.proc.inputs) {
    bindings.push(...bindInput(env, { type: p.type, inputBinding: p.inputBinding }, env.inputs[p.id], [], [p.id]));
  }
  bindings.sort((a, b) => cmpKey(a.key, b.key));
  const base: Json = tool.baseCommand;
  const tokens: Token[] = (base === undefined ? [] : Array.isArray(base) ? base : [base]).map((s: Json) => ({ value: String(s), shellQuote: true }));
  for (const b of bindings) tokens.push(...render(env, b));
  return tokens;
}

export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_\-+=.,/:@%]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
