import { test } from 'node:test';
import assert from 'node:assert/strict';
import { processFromDoc, parseYaml, type Json } from '../../src/cwl/load.js';
import { parseCli, parseToolArgs, toolHelp } from '../../src/cwl/cli-args.js';
import { buildCommandLine } from '../../src/cwl/cmdline.js';
import { Evaluator } from '../../src/cwl/expr.js';

const TOOL = `cwlVersion: v1.2
class: CommandLineTool
doc: Echo things.
baseCommand: echo
inputs:
  msg: { type: string, doc: "the message", inputBinding: { position: 1 } }
  n: { type: int?, inputBinding: { position: 2 } }
  flag: { type: boolean, default: false, inputBinding: { prefix: -f } }
  arr: { type: "string[]?", inputBinding: { position: 3 } }
  files: { type: "File[]?" }
  color: { type: [ "null", { type: enum, symbols: [red, green] } ] }
  x: { type: [ "null", float ] }
  rec:
    type:
      - "null"
      - type: record
        fields:
          a: string
          b: int?
          sub: { type: { type: record, fields: { z: string } } }
  f: File?
  my-dash: { type: string?, label: dashy }
outputs: []
`;
const proc = processFromDoc(parseYaml(TOOL, '/t/tool.cwl'), '/t/tool.cwl', undefined, undefined);

test('tool inputs from the command line, as cwltool names them', () => {
  const v = parseToolArgs(proc, ['--msg', 'hi', '-n', '3', '--flag', '--arr', 'a', '--arr', 'b', 'c', '--files', 'x.txt', '--files=/abs/y',
    '--color', 'red', '-x', '-1.5', '--rec.a', 'A', '--rec.b=2', '--rec.sub.z', 'Z', '-f', 'd/f.txt', '--my_dash', 'q'], '/base');
  assert.deepEqual(v, {
    msg: 'hi', n: 3, flag: true, arr: ['a', 'b', 'c'],
    files: [{ class: 'File', location: '/base/x.txt' }, { class: 'File', location: '/abs/y' }],
    color: 'red', x: -1.5, rec: { a: 'A', b: 2, sub: { z: 'Z' } }, f: { class: 'File', location: '/base/d/f.txt' }, 'my-dash': 'q',
  });
  assert.deepEqual(parseToolArgs(proc, ['--flag', 'false', '--n', '7'], '/'), { flag: false, n: 7 });
  assert.deepEqual(parseToolArgs(proc, ['--rec', '{"a": "j", "sub": {"z": "k"}}', '--rec.b', '4'], '/').rec, { a: 'j', sub: { z: 'k' }, b: 4 }, 'a whole record as JSON, then a field');
});

test('bad tool inputs are usage errors (exit 2) that say what was expected', () => {
  const bad = (args: string[], re: RegExp): void => assert.throws(() => parseToolArgs(proc, args, '/'), (e: Json) => e.exitCode === 2 && re.test(e.message));
  bad(['-n', 'x'], /argument -n: invalid int value: 'x'/);
  bad(['--color', 'blue'], /invalid choice: 'blue' \(choose from 'red', 'green'\)/);
  bad(['--nope', '1'], /unknown input --nope/);
  bad(['--msg'], /argument --msg: expected a value/);
  bad(['stray'], /unexpected argument "stray"/);
  bad(['-x', 'abc'], /invalid float value/);
});

test('PROCESS --help lists the inputs; pull options', () => {
  const h = toolHelp(proc, 'tool.cwl');
  assert.match(h, /^usage: tool\.cwl \[-h\] --msg STRING \[-n INT\] \[--flag\]/);
  assert.match(h, /Echo things\./);
  assert.match(h, /--msg STRING +the message; required/);
  assert.match(h, /--color \{red,green\}/);
  assert.match(h, /--rec\.sub\.z STRING/);
  assert.match(h, /--arr STRING +repeat for more items/);
  assert.match(h, /--my-dash STRING +dashy/);
  assert.match(h, /--flag +default: false/);
  assert.equal(parseCli(['t.cwl']).pull, 'missing');
  assert.equal(parseCli(['--disable-pull', 't.cwl']).pull, 'never');
  assert.equal(parseCli(['--force-docker-pull', 't.cwl']).pull, 'always');
  assert.deepEqual(parseCli(['t.cwl', '--help']).toolArgs, ['--help']);
  // --eval-timeout takes a value (it used to be an unknown option); cwl-run checks it (test/integration/cwl-run.test.ts)
  assert.equal(parseCli(['--eval-timeout', '5', 't.cwl']).evalTimeout, '5');
  assert.deepEqual(parseCli(['--eval-timeout=0.5', 't.cwl']).positional, ['t.cwl']);
});

test('an optional array input with an inputBinding binds its items (string[]?), as cwltool does', () => {
  const tokens = buildCommandLine({ ev: new Evaluator(false), inputs: { msg: 'hi', n: null, flag: false, arr: ['a', 'b'], files: null, color: null, x: null, rec: null, f: null, 'my-dash': null }, runtime: { outdir: '/o', tmpdir: '/t' }, proc });
  assert.deepEqual(tokens.map((t) => t.value), ['echo', 'hi', 'a', 'b']);
});
