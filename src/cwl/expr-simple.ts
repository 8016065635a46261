/**
 * Is a `$(...)` body "simple": data in, data out, nothing that can run
 * long or allocate much? Such a body is evaluated in-process (expr.ts)
 * without a time limit; anything else goes to the expression process
 * (expr-sandbox.ts), which has a time and a memory limit.
 *
 * Simple: property access (`a.b`, `a?.b`, `a[b]`), literals (numbers,
 * quoted strings, true/false/null, array and object literals), the unary,
 * binary and ternary operators, typeof/in/instanceof/void, parentheses for
 * grouping. Not simple, by construction: any call or `new` (a `(` after an
 * operand), any assignment or `=>` (a lone `=`), `++`/`--`, spread, template
 * literals, regular expressions, comments, BigInt literals, `;`, keywords
 * such as function/while/import/class, characters outside ASCII outside
 * strings. Without calls or assignments the time and the size of the result
 * are bounded by the length of the text times the size of the inputs, and
 * nothing in the (shared, never changed) context can be altered.
 */
const RESERVED = new Set([
  'await', 'break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else', 'enum', 'export',
  'extends', 'finally', 'for', 'function', 'if', 'import', 'let', 'new', 'return', 'super', 'switch', 'throw', 'try', 'var', 'while',
  'with', 'yield', 'static', 'implements', 'interface', 'package', 'private', 'protected', 'public', 'async', 'eval', 'arguments',
]);
/** Words that are operators: an operand follows them. */
const WORD_OPS = new Set(['typeof', 'in', 'instanceof', 'void']);
const OPS = ['===', '!==', '>>>', '**', '==', '!=', '<=', '>=', '&&', '||', '??', '<<', '>>', '+', '-', '*', '%', '<', '>', '!', '~', '&', '|', '^', '?', ':', ','];
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*/;
const NUMBER = /^(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/;
const CLOSE: Record<string, string> = { ')': '(', ']': '[', '}': '{' };

const cache = new Map<string, boolean>();

export function isSimple(body: string): boolean {
  let v = cache.get(body);
  if (v === undefined) {
    v = check(body);
    if (cache.size > 10_000) cache.clear();
    cache.set(body, v);
  }
  return v;
}

function check(s: string): boolean {
  const stack: string[] = [];
  /** The previous token ends an operand (so `(` would be a call, `/` a division). */
  let operand = false;
  let tokens = 0;
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') { i++; continue; }
    tokens++;
    const rest = s.slice(i);
    if (c === '"' || c === "'") {
      let j = i + 1;
      for (; j < s.length && s[j] !== c; j++) {
        if (s[j] === '\\') j++;
        else if (s[j] === '\n' || s[j] === '\r') return false;
      }
      if (j >= s.length) return false;
      i = j + 1; operand = true; continue;
    }
    let m = IDENT.exec(rest);
    if (m) {
      const w = m[0];
      i += w.length;
      if (WORD_OPS.has(w)) { operand = false; continue; }
      if (RESERVED.has(w)) return false;
      operand = true; continue;
    }
    if (c === '.' || (c === '?' && s[i + 1] === '.' && !/[0-9]/.test(s[i + 2] ?? ''))) {
      if (c === '.' && !operand) {
        m = NUMBER.exec(rest);
        if (!m || /^[A-Za-z0-9_$.]/.test(s.slice(i + m[0].length))) return false;
        i += m[0].length; operand = true; continue;
      }
      if (!operand) return false;
      i += c === '.' ? 1 : 2;
      while (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r') i++;
      if (c === '?' && s[i] === '[') continue; // a?.[k]: the [ is read next
      m = IDENT.exec(s.slice(i));
      if (!m) return false; // a.(, a?.(, a..b, spread
      i += m[0].length; operand = true; continue;
    }
    if (/[0-9]/.test(c)) {
      m = NUMBER.exec(rest);
      if (!m || /^[A-Za-z0-9_$]/.test(s.slice(i + m[0].length))) return false; // 1n, 1x
      i += m[0].length; operand = true; continue;
    }
    if (c === '(' || c === '{') {
      if (operand) return false; // a call, a()` or `f {`
      stack.push(c); i++; operand = false; continue;
    }
    if (c === '[') { stack.push(c); i++; operand = false; continue; }
    if (c === ')' || c === ']' || c === '}') {
      if (stack.pop() !== CLOSE[c]) return false;
      i++; operand = true; continue;
    }
    if (c === '/') {
      // a division; a regular expression or a comment is not simple
      if (!operand || s[i + 1] === '/' || s[i + 1] === '*' || s[i + 1] === '=') return false;
      i++; operand = false; continue;
    }
    const op = OPS.find((o) => rest.startsWith(o));
    if (!op) return false; // = ; ` # @ \ and anything else
    const next = s[i + op.length];
    if (next === '=' || ((op === '+' || op === '-') && next === op)) return false; // assignment, ++, --
    i += op.length; operand = false;
  }
  return tokens > 0 && stack.length === 0 && operand;
}
