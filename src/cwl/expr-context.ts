import vm from 'node:vm';

/**
 * A fresh V8 context for CWL expressions (node:vm), the same in-process
 * (simple expressions, expr.ts) and in the expression process
 * (expr-child.ts). Nothing of the host is in it: its global starts as an
 * empty object and only strings are put on it (the inputs as JSON, parsed
 * inside), so every object an expression can reach was made by the
 * context's own constructors (`this.constructor.constructor` is the
 * context's Function, which has no `process` or `require`).
 *
 * Hardened against known ways out of a vm context:
 *  - Error.prepareStackTrace is fixed to undefined and the global Error can
 *    not be replaced, so an expression cannot see structured call sites
 *    (node would call a context's Error.prepareStackTrace with them);
 *  - no WebAssembly and no code generation from wasm;
 *  - import() has no loader (it rejects; expr-child.ts reports that).
 * `afterEvaluate`: promise jobs run inside the evaluation (and its time
 * limit), never later on the host's queue.
 */
export const CONTEXT_SETUP = `(function () {
  'use strict';
  Object.defineProperty(Error, 'prepareStackTrace', { value: undefined, writable: false, configurable: false, enumerable: false });
  Object.defineProperty(globalThis, 'Error', { value: Error, writable: false, configurable: false, enumerable: false });
  delete globalThis.WebAssembly;
})();`;

export function newContext(microtasks: boolean): vm.Context {
  const ctx = vm.createContext(Object.create(null), {
    codeGeneration: { strings: true, wasm: false },
    ...(microtasks ? { microtaskMode: 'afterEvaluate' as const } : {}),
  });
  vm.runInContext(CONTEXT_SETUP, ctx, { filename: 'expression-setup' });
  return ctx;
}

/**
 * The code that evaluates one expression body in a context: inputs, self
 * and runtime from the JSON in the global `__cwl_in` (globals, so
 * expressionLib functions see them too); the result as JSON text.
 */
export function wrap(body: string, isFunction: boolean): string {
  const pre = 'var __d = JSON.parse(__cwl_in); globalThis.inputs = __d.inputs; globalThis.self = __d.self; globalThis.runtime = __d.runtime;';
  return isFunction
    ? `(function(){ ${pre} return JSON.stringify((function(){${body}\n})()); })()`
    : `(function(){ ${pre} return JSON.stringify((${body}\n)); })()`;
}
