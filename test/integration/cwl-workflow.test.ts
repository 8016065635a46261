import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runAsUser, cwlRunBin, cliDir, userTempDir, testUser, type RunResult } from '../support/user.js';
import { conformanceSource, startConformanceEnv, runGroup, type ConformanceEnv } from '../support/conformance-env.js';
import { writeCwlRunLauncher } from '../bench/cwl-conformance.js';

/**
 * cwl-run workflows as the unprivileged test user: a selection of the
 * suite's workflow tests through the harness with containers, a 10,000-way
 * ExpressionTool scatter in bounded memory, and failure handling
 * (--on-error stop|continue, partial outputs).
 *
 * The full suite: node dist/test/bench/cwl-conformance.js -j2 --out DIR
 */
let work: string;
const SUITE_SRC = conformanceSource();

function cwlRun(args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return runAsUser(process.execPath, [cwlRunBin(), ...args], { cwd: work, timeoutMs: opts.timeoutMs ?? 60_000 });
}
function write(name: string, text: string): string {
  const p = path.join(work, name);
  fs.writeFileSync(p, text);
  fs.chownSync(p, testUser().uid, testUser().gid);
  return p;
}

before(() => { cliDir(); work = userTempDir('cwlwf'); });
let ce: ConformanceEnv | undefined;
after(async () => { await ce?.stop(); fs.rmSync(work, { recursive: true, force: true }); });

const SUBSET = [
  'wf_wc_scatter_multiple_flattened', 'wf_scatter_two_nested_crossproduct', 'wf_scatter_two_flat_crossproduct', 'wf_scatter_two_dotproduct',
  'wf_scatter_emptylist', 'wf_scatter_nested_crossproduct_secondempty', 'wf_scatter_twoparam_nested_crossproduct_valuefrom',
  'valuefrom_wf_step_multiple', 'step_input_default_value_overriden_2nd_step_null', 'wf_multiplesources_multipletypes',
  'scatter_multi_input_embedded_subworkflow', 'workflow_embedded_subworkflow_with_tool_and_subsubworkflow', 'embedded_subworkflow',
  'first_non_null_all_null', 'the_only_non_null_multi_true', 'all_non_null_multi_non_null', 'conditionals_nested_cross_scatter',
  'conditionals_non_boolean_fail', 'scatter_on_scattered_conditional', 'workflow_step_in_loadContents', 'secondary_files_missing',
  'wf_step_access_undeclared_param', 'invalid_syntax_mixed_v12_workflow', 'mixed_version_v12_wf',
];

test('workflow conformance subset with containers through the harness', { timeout: 240_000 }, async (t) => {
  assert.ok(fs.existsSync(path.join(SUITE_SRC, 'conformance_tests.yaml')), `no conformance suite at ${SUITE_SRC}`);
  ce = await startConformanceEnv();
  const launcher = writeCwlRunLauncher(ce.binDir);
  const res = path.join(ce.workDir, 'res-wf');
  fs.mkdirSync(res); fs.chownSync(res, testUser().uid, testUser().gid);
  const harness = path.join(cliDir(), 'dist', 'conformance', 'harness.js');
  const r = await runGroup(process.execPath, [harness, '--tool', launcher, '-j2', '--timeout', '90', '--id', SUBSET.join(','), '--out', res], {
    env: { ...ce.env, CWL_CONFORMANCE_DIR: ce.suiteDir }, cwd: ce.workDir, timeoutMs: 200_000,
  });
  const summary = JSON.parse(fs.readFileSync(path.join(res, 'results.json'), 'utf8'));
  const failed = summary.results.filter((x: { outcome: string }) => x.outcome !== 'pass').map((x: { id: string; message?: string; stderr?: string }) => `${x.id}: ${x.message ?? ''} ${x.stderr ?? ''}`.slice(0, 600));
  assert.deepEqual(failed, [], r.stderr.slice(-3000));
  assert.equal(summary.results.length, SUBSET.length);
});

test('a 10,000-way ExpressionTool scatter completes in bounded memory', { timeout: 180_000 }, async () => {
  const wf = write('s10k.cwl', `cwlVersion: v1.2
class: Workflow
requirements: {ScatterFeatureRequirement: {}, InlineJavascriptRequirement: {}}
inputs: {n: int}
outputs:
  total: {type: int, outputSource: gather/total}
  count: {type: int, outputSource: gather/count}
steps:
  make:
    in: {n: n}
    out: [xs]
    run:
      class: ExpressionTool
      inputs: {n: int}
      outputs: {xs: 'int[]'}
      expression: "\${ var a = []; for (var i = 0; i < inputs.n; i++) a.push(i); return {xs: a}; }"
  square:
    in: {x: make/xs}
    scatter: x
    out: [y]
    run:
      class: ExpressionTool
      inputs: {x: int}
      outputs: {y: int}
      expression: "$({y: inputs.x % 7})"
  gather:
    in: {ys: square/y}
    out: [total, count]
    run:
      class: ExpressionTool
      inputs: {ys: 'int[]'}
      outputs: {total: int, count: int}
      expression: "\${ var t = 0; for (var i = 0; i < inputs.ys.length; i++) t += inputs.ys[i]; return {total: t, count: inputs.ys.length}; }"
`);
  const r = await runAsUser('/usr/bin/time', ['-v', process.execPath, cwlRunBin(), '--quiet', '--outdir', path.join(work, 'o10k'), wf, '--n', '10000'], { cwd: work, timeoutMs: 170_000 });
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const out = JSON.parse(r.stdout);
  let expect = 0;
  for (let i = 0; i < 10000; i++) expect += i % 7;
  assert.equal(out.count, 10000);
  assert.equal(out.total, expect);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  assert.ok(m, r.stderr.slice(-1000));
  const mb = Number(m[1]) / 1024;
  process.stderr.write(`peak RSS ${mb.toFixed(0)} MB\n`);
  assert.ok(mb < 500, `peak RSS ${mb.toFixed(0)} MB`);
});

test('a failed step fails the workflow, names the step, leaves partial outputs; --on-error continue', { timeout: 60_000 }, async () => {
  const wf = write('fail.cwl', `cwlVersion: v1.2
class: Workflow
inputs: []
outputs:
  a: {type: File, outputSource: good/out}
  b: {type: File, outputSource: bad/out}
  c: {type: File, outputSource: after_good/out}
steps:
  good:
    in: []
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, "sleep 1; echo ok > ok.txt"]
      inputs: []
      outputs: {out: {type: File, outputBinding: {glob: ok.txt}}}
  bad:
    in: []
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, "echo broken >&2; exit 3"]
      inputs: []
      outputs: {out: {type: File, outputBinding: {glob: nothing}}}
  after_good:
    in: {f: good/out}
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: [cp]
      inputs: {f: {type: File, inputBinding: {position: 1}}}
      arguments: [{position: 2, valueFrom: copy.txt}]
      outputs: {out: {type: File, outputBinding: {glob: copy.txt}}}
`);
  const outStop = path.join(work, 'o-stop');
  let r = await cwlRun(['--no-container', '--outdir', outStop, wf]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout.trim(), '{}');
  assert.match(r.stderr, /step "bad" failed/);
  assert.match(r.stderr, /cwl-run\.partial/);
  assert.doesNotMatch(r.stderr, /\[job after_good\]/, 'nothing new starts after the failure');
  const partial = JSON.parse(fs.readFileSync(path.join(outStop, 'cwl-run.partial', 'outputs.json'), 'utf8'));
  assert.ok(partial.failed.bad, JSON.stringify(partial));
  assert.ok(fs.existsSync(partial.failed.bad));

  const outCont = path.join(work, 'o-cont');
  r = await cwlRun(['--no-container', '--on-error', 'continue', '-j', '2', '--outdir', outCont, wf]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /\[job after_good\]/, 'independent steps still run');
  const p2 = JSON.parse(fs.readFileSync(path.join(outCont, 'cwl-run.partial', 'outputs.json'), 'utf8'));
  assert.equal(fs.readFileSync(p2.finished.after_good.out.path, 'utf8'), 'ok\n');
  assert.equal(fs.readFileSync(p2.finished.good.out.path, 'utf8'), 'ok\n');
});
