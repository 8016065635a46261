import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Evaluator, scan, pyJson } from '../../src/cwl/expr.js';
import { processFromDoc, parseYaml, shortname, where, type Json } from '../../src/cwl/load.js';
import { buildCommandLine } from '../../src/cwl/cmdline.js';
import { matches } from '../../src/cwl/types.js';
import { glob } from '../../src/cwl/glob.js';
import { substitute } from '../../src/cwl/files.js';
import { compare } from '../../conformance/compare.js';
import { parseRanges, select, type TestCase } from '../../conformance/harness.js';
import { parseCli } from '../../src/cwl/cli-args.js';

const env = (inputs: Json = {}, self: Json = null) => ({ inputs, self, runtime: { outdir: '/out', cores: 1 } });

test('parameter references without JavaScript', () => {
  const ev = new Evaluator(false);
  assert.equal(ev.eval('$(inputs.x)', env({ x: 3 })), 3);
  assert.equal(ev.eval('a-$(inputs.x)-b', env({ x: 3 })), 'a-3-b');
  assert.equal(ev.eval("$(inputs['y'][1])", env({ y: [1, 2] })), 2);
  assert.equal(ev.eval('$(inputs.y.length)', env({ y: [1, 2] })), 2);
  assert.equal(ev.eval('$(null)', env()), null);
  assert.throws(() => ev.eval('$(1+1)', env()), /InlineJavascriptRequirement/);
  assert.throws(() => ev.eval('${return 1}', env()), /InlineJavascriptRequirement/);
});

test('JavaScript expressions run isolated, with expressionLib and a timeout', () => {
  const ev = new Evaluator(true, ['function twice(x) { return 2 * x; }', 'function inp() { return inputs.x; }'], 500);
  assert.equal(ev.eval('$(twice(inputs.x))', env({ x: 4 })), 8);
  assert.equal(ev.eval('$(inp())', env({ x: 5 })), 5);
  assert.equal(ev.eval('${ return self + 1; }', env({}, 41)), 42);
  assert.deepEqual(ev.eval('$({a: [1, "b"]})', env()), { a: [1, 'b'] });
  assert.equal(ev.eval('$(typeof process)', env()), 'undefined');
  assert.equal(ev.eval('$(typeof require)', env()), 'undefined');
  assert.throws(() => ev.eval('${ while (true) {} }', env()), /time limit of 0.5 s exceeded/);
  // whole-string expressions keep their type; trailing whitespace is stripped except where told not to
  assert.equal(ev.eval('$(inputs.x)\n', env({ x: 7 })), 7);
  assert.equal(ev.eval('$(inputs.x)\n', env({ x: 7 }), false), '7\n');
  assert.equal(ev.eval('$(inputs.l)\n', env({ l: ['a', 'b'] }), false), '["a", "b"]\n');
});

test('escapes follow cwltool: \\$( is literal, \\\\ is one backslash', () => {
  const ev = new Evaluator(true);
  assert.equal(ev.eval('\\$(inputs.x) $(inputs.x)', env({ x: 'v' })), '$(inputs.x) v');
  assert.equal(ev.eval('\\\\$(inputs.x)', env({ x: 'v' })), '\\v');
  assert.equal(ev.eval("echo '\\$' $(inputs.x)", env({ x: 'v' })), "echo '\\$' v");
  assert.deepEqual(scan('a $(b(")")) c').length, 3);
});

test('pyJson writes like Python json.dumps', () => {
  assert.equal(pyJson({ a: [1, 'x'], b: null }), '{"a": [1, "x"], "b": null}');
});

function tool(doc: Json) {
  return processFromDoc({ cwlVersion: 'v1.2', class: 'CommandLineTool', ...doc }, '/x/tool.cwl', undefined, undefined);
}

test('loader normalises map forms, shorthands and SchemaDefRequirement names', () => {
  const p = tool({
    requirements: { SchemaDefRequirement: { types: [{ name: '#Rec', type: 'record', fields: { a: 'int', b: { type: 'string?' } } }] } },
    inputs: { r: 'Rec', xs: 'File[]?', e: { type: { type: 'enum', symbols: ['#main/e/one', 'two'] } } },
    outputs: [],
  });
  assert.deepEqual(p.inputs.map((i) => i.id), ['r', 'xs', 'e']);
  assert.equal(p.inputs[0].type.type, 'record');
  assert.deepEqual(p.inputs[0].type.fields.map((f: Json) => f.name), ['a', 'b']);
  assert.deepEqual(p.inputs[1].type, ['null', { type: 'array', items: 'File' }]);
  assert.deepEqual(p.inputs[2].type.symbols, ['one', 'two']);
  assert.equal(shortname('file.cwl#main/step/x'), 'x');
});

test('unknown requirements exit 33, unknown hints are ignored', () => {
  assert.throws(() => tool({ requirements: [{ class: 'FooRequirement' }], inputs: [], outputs: [] }), (e: Json) => e.exitCode === 33);
  assert.doesNotThrow(() => tool({ hints: [{ class: 'FooRequirement' }], inputs: [], outputs: [] }));
});

test('validation errors name the file and line', () => {
  const text = 'cwlVersion: v1.2\nclass: CommandLineTool\ninputs:\n  - id: a\n    type: Nope\noutputs: []\n';
  const doc = parseYaml(text, '/x/bad.cwl');
  assert.throws(() => processFromDoc(doc, '/x/bad.cwl', undefined, undefined), /\/x\/bad\.cwl:4: .*unknown type "Nope"/);
  assert.match(where(doc.inputs[0]), /bad\.cwl:4$/);
});

test('command line: positions, prefixes, separate, itemSeparator, nested arrays', () => {
  const p = tool({
    baseCommand: ['prog'],
    arguments: [{ position: 2, valueFrom: 'arg2' }, 'plain'],
    inputs: {
      flag: { type: 'boolean', inputBinding: { prefix: '-f', position: 1 } },
      off: { type: 'boolean', inputBinding: { prefix: '-o' } },
      n: { type: 'int', inputBinding: { prefix: '-n', separate: false, position: 3 } },
      list: { type: 'string[]', inputBinding: { prefix: '-l', itemSeparator: ',', position: 4 } },
      each: { type: { type: 'array', items: 'string', inputBinding: { prefix: '-e' } }, inputBinding: { position: 5 } },
      none: { type: 'string?', inputBinding: { prefix: '-x', valueFrom: 'ignored' } },
    },
    outputs: [],
  });
  const inputs = { flag: true, off: false, n: 7, list: ['a', 'b'], each: ['p', 'q'], none: null };
  const argv = buildCommandLine({ ev: new Evaluator(false), inputs, runtime: {}, proc: p }).map((t) => t.value);
  assert.deepEqual(argv, ['prog', 'plain', '-f', 'arg2', '-n7', '-l', 'a,b', '-e', 'p', '-e', 'q']);
});

test('types: unions, records, enums, Any', () => {
  assert.ok(matches(['null', 'int'], null));
  assert.ok(matches(['null', 'int'], 3));
  assert.ok(!matches('int', 3.5));
  assert.ok(matches('float', 3));
  assert.ok(matches({ type: 'array', items: ['int', 'string'] }, [1, 'a']));
  assert.ok(!matches('Any', null));
  assert.ok(matches({ type: 'record', fields: [{ name: 'a', type: 'int' }, { name: 'b', type: ['null', 'string'] }] }, { a: 1 }));
  assert.ok(!matches({ type: 'enum', symbols: ['x'] }, 'y'));
});

test('secondaryFiles patterns and glob', () => {
  assert.equal(substitute('reads.bam', '.bai'), 'reads.bam.bai');
  assert.equal(substitute('reads.bam', '^.bai'), 'reads.bai');
  assert.equal(substitute('a.tar.gz', '^^.idx'), 'a.idx');
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cwlglob-'));
  try {
    for (const f of ['b.txt', 'a.txt', 'c.dat', '.hidden.txt']) fs.writeFileSync(path.join(d, f), '');
    fs.mkdirSync(path.join(d, 'sub'));
    fs.writeFileSync(path.join(d, 'sub', 'x.txt'), '');
    assert.deepEqual(glob(d, '*.txt').map((p) => path.basename(p)), ['a.txt', 'b.txt']);
    assert.deepEqual(glob(d, '*/x.txt').map((p) => path.relative(d, p)), ['sub/x.txt']);
    assert.deepEqual(glob(d, '{a,c}.*').map((p) => path.basename(p)), ['a.txt', 'c.dat']);
    assert.deepEqual(glob(d, 'missing'), []);
  } finally { fs.rmSync(d, { recursive: true, force: true }); }
});

test('conformance compare follows cwltest rules', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cwlcmp-'));
  try {
    const f = path.join(d, 'out.txt');
    fs.writeFileSync(f, 'hello\n');
    const actual = { class: 'File', location: `file://${f}`, path: f, basename: 'out.txt', size: 6, checksum: 'sha1$f572d396fae9206628714fb2ce00f72e94f2258f' };
    compare({ class: 'File', location: 'out.txt', size: 6, checksum: 'sha1$f572d396fae9206628714fb2ce00f72e94f2258f' }, structuredClone(actual));
    compare({ o: 'Any' }, { o: 1 });
    assert.throws(() => compare({ class: 'File', location: 'other.txt' }, structuredClone(actual)), /does not end with/);
    assert.throws(() => compare({ class: 'File', location: 'out.txt', size: 7 }, structuredClone(actual)), /sizes do not match/);
    assert.throws(() => compare({ a: 1 }, { a: 1, b: 2 }), /unexpected key/);
    compare({ a: 1 }, { a: 1, b: null });
  } finally { fs.rmSync(d, { recursive: true, force: true }); }
});

test('harness selection: -n ranges and tags', () => {
  assert.deepEqual([...parseRanges('1-3,7')], [1, 2, 3, 7]);
  const t = (n: number, tags: string[]): TestCase => ({ id: `t${n}`, tool: 'x', tags, number: n });
  const all = [t(1, ['a']), t(2, ['b']), t(3, ['a', 'workflow'])];
  assert.deepEqual(select(all, { tags: ['a'] }).map((x) => x.number), [1, 3]);
  assert.deepEqual(select(all, { excludeTags: ['workflow'] }).map((x) => x.number), [1, 2]);
  assert.deepEqual(select(all, { numbers: parseRanges('2-3') }).map((x) => x.number), [2, 3]);
});

test('cli: options before PROCESS, tool inputs after', () => {
  const o = parseCli(['--outdir=/o', '--quiet', 'tool.cwl', 'job.yml', '--x', '1', '--outdir', 'ignored-as-input']);
  assert.equal(o.outdir, '/o');
  assert.equal(o.quiet, true);
  assert.deepEqual(o.positional, ['tool.cwl', 'job.yml']);
  assert.deepEqual(o.toolArgs, ['--x', '1', '--outdir', 'ignored-as-input']);
  assert.throws(() => parseCli(['--bogus', 't.cwl']), (e: Json) => e.exitCode === 2);
});
