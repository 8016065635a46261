import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter, runGraph, findCycle } from '../../src/cwl/wf/graph.js';
import { mergeLinks, pickValue, WorkflowError } from '../../src/cwl/wf/links.js';
import { planScatter, shapeResults, runPool } from '../../src/cwl/scatter.js';
import { processFromDoc, type Json } from '../../src/cwl/load.js';
import { loadWorkflow } from '../../src/cwl/workflow.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('graph scheduler: a node starts when its deps are done; independent nodes overlap', async () => {
  const log: string[] = [];
  let active = 0; let peak = 0;
  const nodes = [
    { id: 'a', deps: [] }, { id: 'b', deps: [] }, { id: 'c', deps: ['a'] }, { id: 'd', deps: ['b', 'c'] },
  ];
  const r = await runGraph(nodes, async (id) => {
    active++; peak = Math.max(peak, active);
    log.push(`start ${id}`);
    await sleep(id === 'a' ? 30 : 10);
    log.push(`end ${id}`);
    active--;
  }, { onError: 'stop' });
  assert.deepEqual(r.failed, []);
  assert.deepEqual(r.done.sort(), ['a', 'b', 'c', 'd']);
  assert.equal(peak, 2, 'a and b run at the same time');
  assert.ok(log.indexOf('start c') > log.indexOf('end a'));
  assert.ok(log.indexOf('start d') > log.indexOf('end c'));
  assert.ok(log.indexOf('start d') > log.indexOf('end b'));
  // b is finished long before a: c must not wait for b
  assert.ok(log.indexOf('end b') < log.indexOf('end a'));
});

test('graph scheduler: stop vs continue after a failure', async () => {
  const nodes = [{ id: 'bad', deps: [] }, { id: 'slow', deps: [] }, { id: 'after-bad', deps: ['bad'] }, { id: 'after-slow', deps: ['slow'] }];
  const run = async (id: string): Promise<void> => { if (id === 'bad') throw new Error('boom'); await sleep(20); };
  const stop = await runGraph(nodes, run, { onError: 'stop' });
  assert.deepEqual(stop.failed.map((f) => f.id), ['bad']);
  assert.ok(stop.done.includes('slow'), 'a running node is allowed to finish');
  assert.deepEqual(stop.notRun.sort(), ['after-bad', 'after-slow']);
  const cont = await runGraph(nodes, run, { onError: 'continue' });
  assert.deepEqual(cont.done.sort(), ['after-slow', 'slow']);
  assert.deepEqual(cont.notRun, ['after-bad']);
  assert.deepEqual(findCycle([{ id: 'x', deps: ['y'] }, { id: 'y', deps: ['x'] }]).sort(), ['x', 'y']);
  assert.deepEqual(findCycle(nodes), []);
});

test('limiter bounds in-flight jobs', async () => {
  const lim = new Limiter(3);
  let active = 0; let peak = 0;
  await Promise.all(Array.from({ length: 20 }, () => lim.run(async () => { active++; peak = Math.max(peak, active); await sleep(2); active--; })));
  assert.equal(peak, 3);
  let inflight = 0; let peak2 = 0; const seen: number[] = [];
  await runPool(1000, 4, async (i) => { inflight++; peak2 = Math.max(peak2, inflight); seen.push(i); await sleep(0); inflight--; });
  assert.equal(peak2, 4);
  assert.equal(seen.length, 1000);
  await assert.rejects(runPool(10, 2, async (i) => { if (i === 3) throw new Error('item 3'); }), /item 3/);
});

test('linkMerge: merge_nested, merge_flattened, single source', () => {
  assert.deepEqual(mergeLinks([1, [2, 3]], undefined, true), [1, [2, 3]]); // several sources: merge_nested by default
  assert.deepEqual(mergeLinks([1, [2, 3]], 'merge_nested', true), [1, [2, 3]]);
  assert.deepEqual(mergeLinks([1, [2, 3], [], [null]], 'merge_flattened', true), [1, 2, 3, null]);
  assert.deepEqual(mergeLinks([[1, 2]], undefined, false), [1, 2]); // one source: as is
  assert.deepEqual(mergeLinks([[1, 2]], 'merge_nested', true), [[1, 2]]);
  assert.deepEqual(mergeLinks([5], 'merge_flattened', true), [5]);
  assert.equal(mergeLinks([], undefined, false), null);
});

test('pickValue: first_non_null, the_only_non_null, all_non_null', () => {
  assert.equal(pickValue([null, 2, 3], 'first_non_null', 'x'), 2);
  assert.throws(() => pickValue([null, null], 'first_non_null', 'x'), WorkflowError);
  assert.equal(pickValue([null, 'a', null], 'the_only_non_null', 'x'), 'a');
  assert.throws(() => pickValue(['a', 'b'], 'the_only_non_null', 'x'), /exactly one/);
  assert.throws(() => pickValue([null], 'the_only_non_null', 'x'), WorkflowError);
  assert.deepEqual(pickValue([null, 1, null, 2], 'all_non_null', 'x'), [1, 2]);
  assert.deepEqual(pickValue([null, null], 'all_non_null', 'x'), []);
  assert.equal(pickValue(7, 'first_non_null', 'x'), 7);
});

test('scatter: dotproduct, nested and flat crossproduct, empty inputs', () => {
  const inp = { a: [1, 2], b: ['x', 'y', 'z'], c: 'fixed' };
  const dot = planScatter({ a: [1, 2], b: [3, 4] }, ['a', 'b'], 'dotproduct');
  assert.equal(dot.total, 2);
  assert.deepEqual(dot.itemAt(1), { a: 2, b: 4 });
  assert.throws(() => planScatter(inp, ['a', 'b'], 'dotproduct'), /equal length/);
  const nested = planScatter(inp, ['a', 'b'], 'nested_crossproduct');
  assert.equal(nested.total, 6);
  assert.deepEqual(nested.itemAt(0), { a: 1, b: 'x', c: 'fixed' });
  assert.deepEqual(nested.itemAt(4), { a: 2, b: 'y', c: 'fixed' });
  const vals = Array.from({ length: 6 }, (_, i) => `${nested.itemAt(i).a}${nested.itemAt(i).b}`);
  assert.deepEqual(shapeResults(nested, vals), [['1x', '1y', '1z'], ['2x', '2y', '2z']]);
  const flat = planScatter(inp, ['a', 'b'], 'flat_crossproduct');
  assert.deepEqual(shapeResults(flat, vals), ['1x', '1y', '1z', '2x', '2y', '2z']);
  // empty
  const e1 = planScatter({ a: [] }, ['a']);
  assert.equal(e1.total, 0);
  assert.deepEqual(shapeResults(e1, []), []);
  const e2 = planScatter({ a: [1, 2], b: [] }, ['a', 'b'], 'nested_crossproduct');
  assert.equal(e2.total, 0);
  assert.deepEqual(shapeResults(e2, []), [[], []]);
  const e3 = planScatter({ a: [], b: [1, 2] }, ['a', 'b'], 'nested_crossproduct');
  assert.deepEqual(shapeResults(e3, []), []);
  assert.deepEqual(shapeResults(planScatter({ a: [], b: [1] }, ['a', 'b'], 'flat_crossproduct'), []), []);
  assert.throws(() => planScatter({ a: 3 }, ['a']), /not an array/);
});

test('loadWorkflow: sources, deps, feature requirements', () => {
  const doc = (extra: Json = {}): Json => ({
    cwlVersion: 'v1.2', class: 'Workflow',
    requirements: { ScatterFeatureRequirement: {}, MultipleInputFeatureRequirement: {}, ...extra },
    inputs: { xs: 'int[]', y: 'int' },
    outputs: { o: { type: 'Any', outputSource: ['#main/s2/r', 's1/r'], linkMerge: 'merge_flattened' } },
    steps: {
      s1: { run: { class: 'ExpressionTool', inputs: { x: 'int' }, outputs: { r: 'int' }, expression: '$({r: inputs.x})' }, in: { x: 'xs' }, scatter: 'x', out: ['r'] },
      s2: { run: { class: 'ExpressionTool', inputs: { x: 'Any' }, outputs: { r: 'Any' }, expression: '$({r: inputs.x})' }, in: { x: { source: ['s1/r', 'y'] } }, out: [{ id: 'r' }] },
    },
  });
  const wf = processFromDoc(doc(), '/tmp/wf.cwl', undefined, undefined);
  const { steps, outputs } = loadWorkflow(wf);
  assert.deepEqual(steps.map((s) => [s.id, s.deps]), [['s1', []], ['s2', ['s1']]]);
  assert.deepEqual(steps[1].ins[0].sources, ['s1/r', 'in:y']);
  assert.deepEqual(outputs[0].sources, ['s2/r', 's1/r']);
  const noScatter = doc(); delete noScatter.requirements.ScatterFeatureRequirement;
  assert.throws(() => loadWorkflow(processFromDoc(noScatter, '/tmp/wf.cwl', undefined, undefined)), /ScatterFeatureRequirement/);
  const noMulti = doc(); delete noMulti.requirements.MultipleInputFeatureRequirement;
  assert.throws(() => loadWorkflow(processFromDoc(noMulti, '/tmp/wf.cwl', undefined, undefined)), /MultipleInputFeatureRequirement/);
  const bad = doc(); bad.steps.s2.in.x.source = ['s1/nope'];
  assert.throws(() => loadWorkflow(processFromDoc(bad, '/tmp/wf.cwl', undefined, undefined)), /no output "nope"/);
});

test('loadWorkflow: a missing run: file names the step and the path; a cycle names its steps', () => {
  const missing: Json = { cwlVersion: 'v1.2', class: 'Workflow', inputs: {}, outputs: {}, steps: { a: { run: 'nothere.cwl', in: {}, out: [] } } };
  assert.throws(() => loadWorkflow(processFromDoc(missing, '/tmp/ud-no-such-dir/wf.cwl', undefined, undefined)),
    /step "a" runs nothere\.cwl, which does not exist \(\/tmp\/ud-no-such-dir\/nothere\.cwl\)/);
  const tool = { class: 'ExpressionTool', inputs: { x: 'Any' }, outputs: { r: 'Any' }, expression: '$({r: 1})' };
  const cyclic: Json = { cwlVersion: 'v1.2', class: 'Workflow', inputs: {}, outputs: {},
    steps: { a: { run: tool, in: { x: 'b/r' }, out: ['r'] }, b: { run: tool, in: { x: 'a/r' }, out: ['r'] } } };
  assert.throws(() => loadWorkflow(processFromDoc(cyclic, '/tmp/wf.cwl', undefined, undefined)), /steps a -> b form a cycle/);
});
