import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { newContext } from './expr-context.js';

/**
 * The expression process (started by expr-sandbox.ts): evaluates CWL
 * JavaScript expressions, one at a time, in vm contexts (expr-context.ts),
 * one context per tool (scope) and expressionLib. Its heap is limited by node's
 * --max-old-space-size (an allocation past it ends this process, not
 * cwl-run); a watchdog thread ends it past an expression's time limit,
 * whatever the main thread is doing (a loop, a promise-job loop, a long
 * builtin), after writing `t`.
 *
 * Requests on stdin, two lines each: a JSON header {scope, lib, code, timeoutMs}
 * and the inputs as JSON. Replies on stdout, one line each: `o` + the
 * result as JSON, `u` (undefined), `e` + an error message, `r` + the reason
 * of a promise rejection nobody handled (import() lands here too), `t` (the
 * time limit). A reply is written after node has looked for unhandled
 * rejections (setImmediate).
 */
const deadline = new BigInt64Array(new SharedArrayBuffer(8));
const watchdog = new Worker(`
  const { workerData: d } = require('node:worker_threads');
  const fs = require('node:fs');
  setInterval(() => {
    const t = Atomics.load(d, 0);
    if (t !== 0n && BigInt(Date.now()) > t) {
      try { fs.writeSync(1, 't\\n'); } finally { process.kill(process.pid, 'SIGKILL'); }
    }
  }, 20);
`, { eval: true, workerData: deadline, env: {} });
watchdog.unref();

const contexts = new Map<string, vm.Context>();
const scripts = new Map<string, vm.Script>();
let rejected: string | undefined;
process.on('unhandledRejection', (reason) => { rejected ??= describe(reason); });

function describe(e: unknown): string {
  try {
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
      if ((e as { code?: unknown }).code === 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING') return 'import() is not available in expressions';
      return (e as { message: string }).message;
    }
    return String(e);
  } catch { return 'an error that cannot be described'; }
}

interface Header { scope: string; lib: string[]; code: string; timeoutMs: number }

function evaluate(h: Header, json: string): string {
  const key = JSON.stringify([h.scope, h.lib]);
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = newContext(true);
    for (const lib of h.lib) {
      try { vm.runInContext(lib, ctx, { filename: 'expressionLib' }); } catch (e) { return `eexpressionLib failed: ${describe(e)}`; }
    }
    contexts.set(key, ctx);
  }
  try {
    ctx.__cwl_in = json;
    let script = scripts.get(h.code);
    if (!script) {
      script = new vm.Script(h.code, { filename: 'expression' });
      if (scripts.size > 1000) scripts.clear();
      scripts.set(h.code, script);
    }
    const out = script.runInContext(ctx) as unknown;
    return out === undefined ? 'u' : typeof out === 'string' ? 'o' + out : 'eexpression result is not JSON';
  } catch (e) {
    return 'e' + describe(e);
  }
}

let buf = '';
let header: Header | undefined;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buf += chunk;
  for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (!header) { header = JSON.parse(line) as Header; continue; }
    const h = header;
    header = undefined;
    // the time limit covers the evaluation, its promise jobs and the wait for rejections
    Atomics.store(deadline, 0, BigInt(Date.now() + h.timeoutMs));
    let reply = evaluate(h, line);
    setImmediate(() => {
      Atomics.store(deadline, 0, 0n);
      if (rejected !== undefined) { reply = 'r' + rejected; rejected = undefined; }
      process.stdout.write(reply.replace(/[\r\n]+/g, ' ') + '\n');
    });
  }
});
process.stdin.on('end', () => process.exit(0));
