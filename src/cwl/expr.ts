import vm from 'node:vm';
import { UserError, EXIT } from '../errors.js';
import { newContext, wrap } from './expr-context.js';
import { isSimple } from './expr-simple.js';
import { evaluateInSandbox } from './expr-sandbox.js';

/**
 * CWL expressions: parameter references `$(...)` and, with
 * InlineJavascriptRequirement, JavaScript expressions `$(...)` and function
 * bodies `${...}`, evaluated in V8 contexts (node:vm, expr-context.ts) that
 * hold nothing of the host: no process, require or fs inside.
 *
 * Where: a simple `$(...)` (data access and operators only, no calls or
 * loops: expr-simple.ts) of a tool without expressionLib runs here, in one
 * shared context, fast (~10 µs) and bounded by construction; everything
 * else runs in the expression process (expr-sandbox.ts) under a time limit
 * (--eval-timeout, default 60 s) and a memory limit, so an endless loop, a
 * promise loop, a huge allocation, an unhandled rejection or import() ends
 * as one ExprError naming the expression (cwl-run exit 1, permanentFail).
 */
export class ExprError extends UserError {
  constructor(message: string) { super(message, EXIT.fail); this.name = 'ExprError'; }
}

export interface ExprEnv {
  inputs: unknown;
  self: unknown;
  runtime: unknown;
}

/** The in-process context for simple expressions: nothing ever changes it (they cannot assign). */
let shared: vm.Context | undefined;
const scripts = new Map<string, vm.Script>();

function runSimple(code: string, json: string): unknown {
  shared ??= newContext(false);
  let script = scripts.get(code);
  if (!script) {
    script = new vm.Script(code, { filename: 'expression' });
    if (scripts.size > 1000) scripts.clear();
    scripts.set(code, script);
  }
  shared.__cwl_in = json;
  return script.runInContext(shared);
}

export class Evaluator {
  constructor(
    public readonly js: boolean,
    private readonly expressionLib: string[] = [],
    /** Per expression; default: expr-sandbox.ts limits.timeoutMs (--eval-timeout). */
    private readonly timeoutMs?: number,
    /** Named in errors: the tool or step (e.g. "tool.cwl"). */
    private readonly where?: string,
  ) {}

  /** Run one JS expression (`body` is the text inside $( ) or ${ }). */
  private run(body: string, isFunction: boolean, env: ExprEnv): unknown {
    // Values go in as JSON text, parsed inside, so the expression cannot reach host objects.
    const json = JSON.stringify({ inputs: env.inputs ?? null, self: env.self === undefined ? null : env.self, runtime: env.runtime ?? null });
    const code = wrap(body, isFunction);
    const fail = (msg: string): ExprError => {
      const text = `${isFunction ? '${' : '$('}${body.trim().replace(/\s+/g, ' ').slice(0, 200)}${isFunction ? '}' : ')'}`;
      return new ExprError(`expression ${text}${this.where ? ` in ${this.where}` : ''} failed: ${msg}`);
    };
    let out: unknown;
    if (!isFunction && !this.expressionLib.length && isSimple(body)) {
      try { out = runSimple(code, json); } catch (e) {
        // an error made in the context: not an instanceof this realm's Error
        const m = (e as { message?: unknown } | null)?.message;
        throw fail(typeof m === 'string' ? m : String(e));
      }
    } else {
      const r = evaluateInSandbox(this.where ?? '', this.expressionLib, code, json, this.timeoutMs);
      if (r.kind === 'error') throw fail(r.message);
      out = r.json;
    }
    if (out === undefined) return null;
    try { return JSON.parse(out as string); } catch { throw fail('its result is not JSON'); }
  }

  /** Parameter reference without JS: inputs.x.y['z'][0].length etc. */
  private paramRef(ref: string, env: ExprEnv): unknown {
    const s = ref.trim();
    if (s === 'null') return null;
    const m = /^(inputs|self|runtime)/.exec(s);
    if (!m) throw new ExprError(`invalid parameter reference $(${ref}) (InlineJavascriptRequirement is needed for JavaScript)`);
    let cur: any = (env as any)[m[1]];
    let i = m[1].length;
    while (i < s.length) {
      let key: string | number;
      if (s[i] === '.') {
        const mm = /^\.([A-Za-z0-9_]+)/.exec(s.slice(i));
        if (!mm) throw new ExprError(`invalid parameter reference $(${ref})`);
        key = mm[1]; i += mm[0].length;
      } else if (s[i] === '[') {
        const mm = /^\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(\d+))\s*\]/.exec(s.slice(i));
        if (!mm) throw new ExprError(`invalid parameter reference $(${ref})`);
        key = mm[3] !== undefined ? Number(mm[3]) : (mm[1] ?? mm[2]).replace(/\\(.)/g, '$1');
        i += mm[0].length;
      } else throw new ExprError(`invalid parameter reference $(${ref})`);
      if (cur === null || cur === undefined) throw new ExprError(`parameter reference $(${ref}): cannot take '${key}' of null`);
      // like cwltool: naming an input the process does not declare is an error
      if (cur === (env as any).inputs && m[1] === 'inputs' && typeof key === 'string' && cur && typeof cur === 'object' && !Array.isArray(cur) && !(key in cur)) {
        throw new ExprError(`parameter reference $(${ref}): there is no input "${key}"`);
      }
      if (key === 'length' && Array.isArray(cur)) cur = cur.length;
      else cur = cur[key as any];
    }
    return cur === undefined ? null : cur;
  }

  private evalOne(kind: '(' | '{', body: string, env: ExprEnv): unknown {
    if (kind === '{') {
      if (!this.js) throw new ExprError(`\${...} expressions need InlineJavascriptRequirement`);
      return this.run(body, true, env);
    }
    if (!this.js) return this.paramRef(body, env);
    return this.run(body, false, env);
  }

  /**
   * Evaluate a field value that may contain expressions (strings only).
   * Like cwltool, surrounding whitespace is stripped first, except where
   * the text itself matters (InitialWorkDir entries: stripWhitespace=false).
   */
  eval(value: unknown, env: ExprEnv, stripWhitespace = true): unknown {
    if (typeof value !== 'string') return value;
    if (!value.includes('$(') && !value.includes('${')) return value;
    const text = stripWhitespace ? value.trim() : value;
    const parts = scan(text);
    if (parts.length === 1 && typeof parts[0] !== 'string') {
      const p = parts[0];
      if (p.start === 0 && p.end === text.length) return this.evalOne(p.kind, p.body, env);
    }
    let out = '';
    for (const p of parts) {
      if (typeof p === 'string') { out += p; continue; }
      const v = this.evalOne(p.kind, p.body, env);
      out += typeof v === 'string' ? v : pyJson(v);
    }
    return out;
  }

  /** Evaluate recursively in plain data (used for defaults etc. — not normally needed). */
  isExpression(value: unknown): boolean {
    return typeof value === 'string' && (value.includes('$(') || value.includes('${'));
  }
}

interface Part { kind: '(' | '{'; body: string; start: number; end: number }

/** Split a string into literal text and expressions, honouring quotes and `\$` escapes. */
export function scan(s: string): (string | Part)[] {
  const out: (string | Part)[] = [];
  let lit = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) {
      // cwltool's escaping: \$( and \${ drop the backslash, \\ is one backslash, \x stays \x
      if (s[i + 1] === '$' && (s[i + 2] === '(' || s[i + 2] === '{')) { lit += '$' + s[i + 2]; i += 3; continue; }
      if (s[i + 1] === '\\') { lit += '\\'; i += 2; continue; }
      lit += s.slice(i, i + 2); i += 2; continue;
    }
    if (c === '$' && (s[i + 1] === '(' || s[i + 1] === '{')) {
      const open = s[i + 1] as '(' | '{';
      const close = open === '(' ? ')' : '}';
      const end = matchClose(s, i + 1, open, close);
      if (end < 0) { lit += c; i++; continue; }
      if (lit) { out.push(lit); lit = ''; }
      out.push({ kind: open, body: s.slice(i + 2, end), start: i, end: end + 1 });
      i = end + 1;
      continue;
    }
    lit += c; i++;
  }
  if (lit) out.push(lit);
  return out;
}

function matchClose(s: string, openIdx: number, open: string, close: string): number {
  let depth = 0;
  let i = openIdx;
  let quote: string | null = null;
  const stack: string[] = [];
  for (; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\') { i++; continue; }
      if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') { if (depth > 0) { quote = c; } continue; }
    if (c === '(' || c === '{' || c === '[') { stack.push(c); depth++; continue; }
    if (c === ')' || c === '}' || c === ']') {
      stack.pop(); depth--;
      if (depth === 0) return c === close ? i : -1;
    }
  }
  void open;
  return -1;
}

/** JSON the way Python's json.dumps writes it by default (", " and ": " separators), as cwltool does. */
export function pyJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return '[' + v.map(pyJson).join(', ') + ']';
  if (typeof v === 'object') return '{' + Object.entries(v as Record<string, unknown>).map(([k, x]) => JSON.stringify(k) + ': ' + pyJson(x)).join(', ') + '}';
  return JSON.stringify(v);
}
