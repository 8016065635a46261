import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Evaluator, ExprError } from '../../src/cwl/expr.js';
import { isSimple } from '../../src/cwl/expr-simple.js';
import { limits, stopSandbox } from '../../src/cwl/expr-sandbox.js';

/**
 * The CWL expression sandbox (src/cwl/expr*.ts): nothing of the host can be
 * reached from an expression, and a runaway expression ends as one
 * ExprError (time limit, memory limit, unhandled rejection) after which
 * the expression process is not reused.
 */
const env = (inputs: unknown = {}, self: unknown = null) => ({ inputs, self, runtime: { outdir: '/out', cores: 1 } });
const js = (timeoutMs?: number) => new Evaluator(true, [], timeoutMs, 'tool.cwl');
after(() => stopSandbox());

/** The expression either yields nothing of the host or fails with a clear ExprError naming it. */
function noHost(expr: string, inputs: unknown = { x: 1 }): unknown {
  try {
    const v = js().eval(expr, env(inputs));
    assert.doesNotMatch(JSON.stringify(v) ?? '', /object:|function:|"pid"|\bargv\b|HOME|PATH/, `${expr} -> ${JSON.stringify(v)}`);
    return v;
  } catch (e) {
    assert.ok(e instanceof ExprError, `${expr}: ${(e as Error).stack}`);
    assert.match(e.message, /^expression .* in tool\.cwl failed: /);
    assert.doesNotMatch(e.message, /\n/);
    return e;
  }
}

test('this.constructor.constructor is the context\'s Function: no process, no require', () => {
  assert.equal(noHost("${ return this.constructor.constructor('return typeof process + typeof require')(); }"), 'undefinedundefined');
  const e = noHost("${ return this.constructor.constructor('return process')().pid; }");
  assert.ok(e instanceof ExprError && /process is not defined/.test(e.message), String(e));
});

test('({}).constructor.constructor and the inputs\' constructors are the context\'s own', () => {
  const e = noHost("${ return ({}).constructor.constructor('return process')().env; }");
  assert.ok(e instanceof ExprError && /process is not defined/.test(e.message), String(e));
  assert.equal(noHost("${ return inputs.constructor.constructor('return typeof process')(); }"), 'undefined');
  assert.equal(noHost("${ return inputs.a.constructor.constructor('return typeof require')(); }", { a: [1] }), 'undefined');
  // inputs, self and runtime are made inside the context (JSON parsed there), in both evaluation paths
  const ev = js();
  assert.equal(ev.eval('$(inputs.constructor === ({}).constructor && runtime.constructor === ({}).constructor)', env({ a: 1 })), true);
  assert.equal(ev.eval('${ return inputs.constructor === ({}).constructor && Object.getPrototypeOf(self) === Array.prototype; }', env({ a: 1 }, [1])), true);
  assert.equal(ev.eval('${ return typeof __cwl_in; }', env()), 'string');
});

test('Error.prepareStackTrace cannot be set: no structured call sites, no host frames', () => {
  // sloppy: the assignment is ignored; the hook is never called, so no call site reaches a host object
  const v = noHost(`\${
    var got = [];
    Error.prepareStackTrace = function (e, sites) {
      sites.forEach(function (s) {
        [s.getThis(), s.getFunction()].forEach(function (x) {
          try { var p = x && x.constructor.constructor('return process')(); if (p) got.push(typeof p); } catch (err) { got.push('no'); }
        });
      });
      return 'hooked';
    };
    var stack; try { null.x; } catch (e) { stack = e.stack; }
    return { got: got, hooked: stack === 'hooked', hook: typeof Error.prepareStackTrace };
  }`);
  assert.deepEqual(v, { got: [], hooked: false, hook: 'undefined' });
  // strict: the assignment throws, a clear expression error
  const e = noHost("${ 'use strict'; Error.prepareStackTrace = function () { return 1; }; return 1; }");
  assert.ok(e instanceof ExprError && /read only property 'prepareStackTrace'/.test(e.message), String(e));
  // nor can the global Error be replaced by one with a hook
  assert.equal(noHost("${ globalThis.Error = { prepareStackTrace: function () { return 'x'; } }; try { null.x; } catch (e) { return typeof e.stack === 'string' && e.stack !== 'x'; } }"), true);
  const e2 = noHost("${ Object.defineProperty(globalThis, 'Error', { value: {} }); return 1; }");
  assert.ok(e2 instanceof ExprError && /Cannot redefine property: Error/.test(e2.message), String(e2));
});

test('caller chains end inside the context', () => {
  assert.equal(noHost('${ var f = function () { var c = f.caller, n = 0; while (c && n < 50) { try { c.constructor.constructor("return process")().exit(9); } catch (e) {} c = c.caller; n++; } return n; }; return f(); }'), 2); // the body's function, the wrapper, then null
});

test('import() fails as an expression error, never loads a module', () => {
  const e = noHost("${ import('node:fs').then(function (fs) { fs.writeFileSync('/tmp/cwl-expr-import', 'x'); }); return 1; }");
  assert.ok(e instanceof ExprError && /unhandled promise rejection: import\(\) is not available in expressions/.test(e.message), String(e));
  const e2 = noHost("$(import('node:child_process'))");
  assert.ok(e2 instanceof ExprError && /import\(\) is not available/.test(e2.message), String(e2));
});

test('no WebAssembly, no host globals in the context', () => {
  assert.deepEqual(js().eval('${ return [typeof WebAssembly, typeof process, typeof require, typeof Buffer, typeof setTimeout, typeof module]; }', env()),
    ['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined']);
  assert.deepEqual(js().eval('$([typeof process, typeof require, typeof WebAssembly])', env()), ['undefined', 'undefined', 'undefined']);
});

test('an endless loop ends at the time limit; the process that ran it is not reused', () => {
  const ev = js(400);
  assert.equal(ev.eval('${ globalThis.mark = 42; return 1; }', env()), 1);
  assert.equal(ev.eval('${ return typeof mark; }', env()), 'number'); // the same process serves the next expression
  const t = Date.now();
  assert.throws(() => ev.eval('${ while (true) {} }', env()), (e: Error) => e instanceof ExprError && /^expression \$\{while \(true\) \{\}\} in tool\.cwl failed: time limit of 0\.4 s exceeded/.test(e.message));
  assert.ok(Date.now() - t < 5000, `${Date.now() - t} ms`);
  assert.equal(ev.eval('${ return typeof mark; }', env()), 'undefined'); // a new process: nothing of the old one
  assert.equal(ev.eval('$(inputs.x + 1)', env({ x: 1 })), 2);
});

test('a promise-job loop ends at the time limit (promise jobs run inside the evaluation)', () => {
  assert.throws(() => js(400).eval('${ (function f() { Promise.resolve().then(f); })(); return 1; }', env()), /time limit of 0\.4 s exceeded/);
  assert.equal(js().eval('${ return 5; }', env()), 5);
});

test('an unhandled rejection fails the expression that made it', () => {
  assert.throws(() => js().eval('${ Promise.reject(new Error("boom")); return 1; }', env()), /failed: unhandled promise rejection: boom/);
  // a handled one is fine
  assert.equal(js().eval('${ Promise.reject(new Error("boom")).catch(function () {}); return 2; }', env()), 2);
  assert.equal(js().eval('${ return 3; }', env()), 3);
});

test('a huge allocation ends at the memory limit, not the runner', () => {
  stopSandbox();
  const saved = limits.memoryMb;
  limits.memoryMb = 200;
  try {
    assert.throws(() => js().eval('${ var a = []; for (;;) a.push(new Array(1e6).fill(1)); }', env()), /failed: memory limit of 200 MB exceeded/);
    assert.throws(() => js().eval('${ var a = []; for (;;) a.push({ x: a.length }); }', env()), /failed: memory limit of 200 MB exceeded/);
    // outside the heap (typed arrays): the data limit
    assert.throws(() => js().eval('${ return new Uint8Array(2 * 1024 * 1024 * 1024).length; }', env()), /failed: Array buffer allocation failed/);
    assert.equal(js().eval('${ return new Array(1000).fill(1).length; }', env()), 1000);
  } finally {
    stopSandbox();
    limits.memoryMb = saved;
  }
});

test('expressionLib runs in the expression process, its failure is an expression error', () => {
  const ev = new Evaluator(true, ['var k = 3; function f(x) { return k * x; }'], undefined, 'lib.cwl');
  assert.equal(ev.eval('$(f(inputs.x))', env({ x: 2 })), 6);
  assert.equal(ev.eval('$(k)', env()), 3); // simple, but it needs the lib's context
  assert.throws(() => new Evaluator(true, ['syntax error here'], undefined, 'lib.cwl').eval('$(1)', env()), /expressionLib failed/);
});

test('simple expressions (run in-process, unlimited) are exactly those without calls, assignments or loops', () => {
  for (const s of ['inputs.x', 'inputs.x + 1', "inputs['a b'][0].c", 'inputs.f.basename + ".txt"', '{y: inputs.x % 7}', '[1, 2, inputs.a]', 'a ? b : c',
    'self[0].contents.length', 'inputs.x?.y', 'inputs.a?.[0]', 'typeof inputs.x', "'k' in inputs", '-inputs.x / 2', '.5 * 2', 'x.class', 'null',
    '(inputs.a || []).length', 'inputs.x == 1 && inputs.y !== "a\\"b"', '0x1f', 'a ?.5 : 1']) assert.equal(isSimple(s), true, s);
  for (const s of ['f(1)', "'a'.repeat(1e9)", 'inputs.x = 1', 'x => 1', 'x++', '--x', 'new Array(9)', 'function(){}', 'while(1){}', '`a${b}`',
    '/a+/.test(x)', '/"/, "a".repeat(9), /"/', 'a // c', 'a /* c */', 'a; b', '10n ** 10000n', 'import("fs")', '[...a]', 'a?.(1)', 'x.y\n(1)',
    'a\\u0028', '{a(){}}', '{get a() {}}', 'a <!-- b', '(a', 'a)', 'a)) , ((b', 'a +', '', 'x /= 2', '(1)(2)', '[a](1)', '{}(1)', 'a.b`x`',
    'inputs.s ?? eval', 'delete inputs.x', 'constructor.constructor("return process")()', 'é']) assert.equal(isSimple(s), false, s);
});

test('a simple expression\'s error names it', () => {
  assert.throws(() => js().eval('$(inputs.a.b.c)', env({ a: {} })), (e: Error) => e instanceof ExprError && /^expression \$\(inputs\.a\.b\.c\) in tool\.cwl failed: Cannot read properties of undefined \(reading 'c'\)$/.test(e.message));
  // the same words from the expression process
  assert.throws(() => js().eval('${ return inputs.a.b.c; }', env({ a: {} })), (e: Error) => e instanceof ExprError && /failed: Cannot read properties of undefined \(reading 'c'\)$/.test(e.message));
});

test('what one tool\'s expressions leave in their globals never reaches another tool\'s', () => {
  const a = new Evaluator(true, [], undefined, 'a.cwl');
  const b = new Evaluator(true, [], undefined, 'b.cwl');
  assert.equal(a.eval('${ leaked = 1; Array.prototype.map = function () { return "spoiled"; }; return 0; }', env()), 0);
  assert.equal(new Evaluator(true, [], undefined, 'a.cwl').eval('${ return typeof leaked; }', env()), 'number'); // same tool: one context
  assert.deepEqual(b.eval('${ return [typeof leaked, [1, 2].map(function (x) { return x * 2; })]; }', env()), ['undefined', [2, 4]]);
  // and simple expressions cannot change their shared context at all
  assert.deepEqual(b.eval('$([1, 2].length)', env()), 2);
});

test('large inputs and results with non-ASCII text cross the pipes intact', () => {
  const big = 'ä€😀'.repeat(100_000);
  assert.equal(js().eval('${ return inputs.s + self; }', env({ s: big }, 'ü')), big + 'ü');
  assert.equal(js().eval('$(inputs.s.length)', env({ s: big })), big.length);
});
