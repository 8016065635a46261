import vm from 'node:vm';
import { newContext } from './expr-context.js';

/**
 * The expression process (started by expr-guard.ts): evaluates CWL
 * JavaScript expressions, one at a time, in vm contexts (expr-context.ts),
 * one context per expressionLib. Its heap is limited by node's
 * --max-old-space-size (an allocation past it ends this process, not
 * cwl-run); the guard kills it at the time limit.
 *
 * Requests on stdin, two lines each: a JSON header {lib, code} and the
 * inputs as JSON. Replies on stdout, one line each: `o` + the result as
 * JSON, `u` (undefined), `e` + an error message, `r` + the reason of a
 * promise rejection nobody handled (an import() lands here too). A reply is
 * written after node has looked for unhandled rejections (setImmediate).
 */
const contexts = new Map<string, vm.Context>();
let rejected: string | undefined;
process.on('unhandledRejection', (reason) => { rejected ??= describe(reason); });

function describe(e: unknown): string {
  // e comes from the context: read it without calling into it more than needed
  try {
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
      const code = (e as { code?: unknown }).code;
      if (code === 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING') return 'import() is not available in expressions';
      return String((e as { message: string }).message);
    }
    return String(e);
  } catch { return 'an error that cannot be described'; }
}

function evaluate(header: { lib: string[]; code: string }, json: string): string {
  const key = JSON.stringify(header.lib);
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = newContext(true);
    for (const lib of header.lib) {
      try { vm.runInContext(lib, ctx, { filename: 'expressionLib' }); } catch (e) { return `eexpressionLib failed: ${describe(e)}`; }
    }
    contexts.set(key, ctx);
  }
  try {
    ctx.__cwl_in = json;
    const out = vm.runInContext(header.code, ctx, { filename: 'expression' }) as unknown;
    return out === undefined ? 'u' : typeof out === 'string' ? 'o' + out : `eexpression result is not JSON`;
  } catch (e) {
    return 'e' + describe(e);
  }
}

let buf = '';
let header: { lib: string[]; code: string } | undefined;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buf += chunk;
  for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (!header) { header = JSON.parse(line); continue; }
    let reply = evaluate(header, line);
    header = undefined;
    setImmediate(() => {
      if (rejected !== undefined) { reply = 'r' + rejected; rejected = undefined; }
      process.stdout.write(reply.replace(/[\r\n]+/g, ' ') + '\n');
    });
  }
});
process.stdin.on('end', () => process.exit(0));
