import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { runAsUser, cwlRunBin, cliDir, userTempDir, testUser, type RunResult } from '../support/user.js';
import { conformanceSource } from '../support/conformance-env.js';

/**
 * cwl-run --print-deps, --make-template, --print-dot and --pack, run as the
 * test user next to Debian's /usr/bin/cwltool (3.1.20230209) on the same
 * documents of the CWL v1.2 suite (copied into a temp dir), and the refusal
 * of cwltool flags cwl-run does not implement, through the real binary.
 *
 * What is normalised before comparing, and why:
 * - --print-deps: nothing but the trailing newline (cwltool writes none).
 *   Locations are relative there, so no absolute path differs.
 * - --make-template: enum symbols. cwltool prints each symbol as its full
 *   URI (file:///<tmp>/doc.cwl#input/field/symbol), cwl-run the short symbol
 *   (documented in docs/cwl-run.md); the URI prefix is cut from cwltool's.
 *   Documents with SchemaDefRequirement types are not compared (cwltool
 *   prints the type's URI as the value; cwl-run expands the fields, checked
 *   on its own below).
 * - --print-dot: the set of nodes (declared or used by an edge), the set
 *   of edges, and the label of each node cwltool declares; cwl-run also
 *   declares steps without an incoming step edge (cwltool leaves them
 *   implicit), so the text differs there.
 * - --pack: the set of process ids in $graph (cwltool writes every inner id
 *   out in full, cwl-run keeps them relative to their process), then the
 *   packed file must pass cwltool --validate and cwl-run must run it with
 *   the same outputs as the unpacked document.
 */
const SUITE = path.join(conformanceSource(), 'tests');
let work: string;
let docs: string;

const FILES = [
  'schemadef-wf.cwl', 'schemadef-tool.cwl', 'schemadef-type.yml', 'schemadef-job.json',
  'count-lines11-wf.cwl', 'count-lines1-wf.cwl', 'count-lines10-wf.cwl', 'wc-tool.cwl', 'parseInt-tool.cwl', 'whale.txt', 'wc-job.json',
  'template-tool.cwl', 'underscore.js', 'record-order.cwl', 'bwa-mem-tool.cwl', 'args.py', 'anon_enum_inside_array.cwl',
  'scatter-wf1.cwl', 'revsort.cwl', 'revsort-packed.cwl', 'revtool.cwl', 'sorttool.cwl', 'revsort-job.json', 'search.cwl', 'index.py', 'search.py',
];

function put(rel: string, text: string | Buffer): string {
  const p = path.join(docs, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return p;
}

before(() => {
  cliDir();
  work = userTempDir('cwlprint');
  docs = path.join(work, 'docs');
  for (const f of FILES) put(f, fs.readFileSync(path.join(SUITE, f)));
  // our own: a tool in a subdirectory, defaults in other directories (cwltool nests them in Directory objects)
  put('sub/t.cwl', `cwlVersion: v1.2
class: CommandLineTool
baseCommand: cat
inputs:
  f:
    type: File
    default: {class: File, location: ../data/in.txt, secondaryFiles: [{class: File, location: ../data/in.txt.idx}]}
  d: {type: Directory, default: {class: Directory, location: deep/dir}}
outputs: []
`);
  put('nested-wf.cwl', `cwlVersion: v1.2
class: Workflow
inputs: []
outputs: []
steps:
  s1: {run: sub/t.cwl, in: [], out: []}
  s2:
    run:
      class: CommandLineTool
      baseCommand: echo
      inputs: {g: {type: File, default: {class: File, location: data/x.txt}}}
      outputs: []
    in: []
    out: []
`);
  // ids written document-wide ("#inp", "#s1/output"), as older documents do: packed, they must become "#main/..."
  put('hash-ids-wf.cwl', `cwlVersion: v1.2
class: Workflow
inputs:
  - { id: "#inp", type: File }
outputs:
  - { id: "#out", type: File, outputSource: "#s1/output" }
steps:
  - id: "#s1"
    run: wc-tool.cwl
    in: [{ id: "#s1/file1", source: "#inp" }]
    out: ["#s1/output"]
`);
  put('hash-ids-job.yml', 'inp: { class: File, location: whale.txt }\n');
  const u = testUser();
  for (const p of fs.readdirSync(work, { recursive: true })) fs.chownSync(path.join(work, String(p)), u.uid, u.gid);
});
after(() => { fs.rmSync(work, { recursive: true, force: true }); });

const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };
function cwlRun(args: string[], cwd = docs): Promise<RunResult> { return runAsUser(process.execPath, [cwlRunBin(), ...args], { cwd, env: ENV, timeoutMs: 120_000 }); }
function cwltool(args: string[], cwd = docs): Promise<RunResult> { return runAsUser('/usr/bin/cwltool', ['--quiet', ...args], { cwd, env: ENV, timeoutMs: 300_000 }); }

async function both(args: string[], cwd = docs): Promise<[string, string]> {
  const [a, b] = await Promise.all([cwlRun(args, cwd), cwltool(args, cwd)]);
  assert.equal(a.code, 0, `cwl-run ${args.join(' ')}: ${a.stderr}`);
  assert.equal(b.code, 0, `cwltool ${args.join(' ')}: ${b.stderr}`);
  return [a.stdout, b.stdout];
}

test('--print-deps: the same JSON as cwltool, byte for byte (but the final newline)', async () => {
  for (const doc of ['schemadef-wf.cwl', 'count-lines11-wf.cwl', 'template-tool.cwl', 'search.cwl', 'bwa-mem-tool.cwl', 'nested-wf.cwl', 'sub/t.cwl']) {
    const [ours, theirs] = await both(['--print-deps', doc]);
    assert.equal(ours.trimEnd(), theirs.trimEnd(), doc);
    assert.ok(JSON.parse(ours).secondaryFiles, doc);
  }
  const [ours, theirs] = await both(['--print-deps', '--relative-deps', 'cwd', path.join(docs, 'sub', 't.cwl')], work);
  assert.equal(ours.trimEnd(), theirs.trimEnd(), '--relative-deps cwd');
  assert.match(ours, /"location": "docs\/sub\/deep\/dir"/);
  // what the shape holds: run: and $import documents, with their own dependencies
  const d = JSON.parse((await cwlRun(['--print-deps', 'schemadef-wf.cwl'])).stdout);
  assert.deepEqual(d.secondaryFiles.map((x: any) => x.location), ['schemadef-type.yml', 'schemadef-tool.cwl']);
  assert.deepEqual(d.secondaryFiles[1].secondaryFiles.map((x: any) => x.location), ['schemadef-type.yml']);
});

test('--print-deps prints and runs nothing', async () => {
  const out = path.join(work, 'not-made');
  const r = await cwlRun(['--print-deps', '--outdir', out, 'count-lines1-wf.cwl', 'wc-job.json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).class, 'File');
  assert.ok(!fs.existsSync(out), 'no output directory: the workflow did not run');
  assert.doesNotMatch(r.stderr, /\[step|\[job/);
});

test('--make-template: the same YAML as cwltool (enum symbols short); named types expanded', async () => {
  const shortSymbols = (s: string): string => s.replace(/file:\/\/[^"\s]*#(?:[^"\s/]*\/)*/g, '');
  for (const doc of ['record-order.cwl', 'bwa-mem-tool.cwl', 'count-lines11-wf.cwl', 'anon_enum_inside_array.cwl', 'scatter-wf1.cwl']) {
    const [ours, theirs] = await both(['--make-template', doc]);
    assert.equal(ours, shortSymbols(theirs), doc);
    yaml.load(ours);
  }
  const r = await cwlRun(['--make-template', 'schemadef-tool.cwl']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(yaml.load(r.stdout), { hello: { b: 'a_string', a: 'a_string' } });
  assert.match(r.stdout, /^hello: {2}# "HelloType" record type\.$/m);
});

/** The label of each declared node (quoted or not), to compare where both declare a node. */
function dotLabels(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const x of text.matchAll(/^"([^"]+)" \[.*?label=("[^"]*"|[^,\]]+)/gm)) m.set(x[1], x[2].replace(/^"|"$/g, ''));
  return m;
}

function dotGraph(text: string): { nodes: string[]; edges: string[] } {
  const nodes = new Set<string>(); const edges = new Set<string>();
  for (const line of text.split('\n')) {
    const e = /^"([^"]+)" -> "([^"]+)";$/.exec(line);
    if (e) { edges.add(`${e[1]} -> ${e[2]}`); nodes.add(e[1]); nodes.add(e[2]); continue; }
    const n = /^"([^"]+)" \[/.exec(line);
    if (n) nodes.add(n[1]);
  }
  return { nodes: [...nodes].sort(), edges: [...edges].sort() };
}

test('--print-dot: the same nodes and edges as cwltool', async () => {
  for (const doc of ['count-lines1-wf.cwl', 'scatter-wf1.cwl', 'revsort.cwl', 'count-lines10-wf.cwl', 'search.cwl', 'hash-ids-wf.cwl', 'revsort-packed.cwl']) {
    const [ours, theirs] = await both(['--print-dot', doc]);
    assert.match(ours, /^digraph G \{/);
    const g = dotGraph(ours);
    assert.deepEqual(g, dotGraph(theirs), doc);
    assert.ok(g.edges.length >= 2, `${doc}: ${JSON.stringify(g)}`);
    const ourLabels = dotLabels(ours);
    for (const [n, label] of dotLabels(theirs)) assert.equal(ourLabels.get(n), label, `${doc}: label of ${n}`);
    if (doc === 'hash-ids-wf.cwl') assert.deepEqual(g.edges, ['inp -> s1', 's1 -> out']);
  }
  const r = await cwlRun(['--print-dot', 'wc-tool.cwl']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--print-dot needs a Workflow/);
});

const ids = (d: any): string[] => (d.$graph ? d.$graph.map((p: any) => p.id) : [d.id]).sort();
/** An output object without what depends on where it was written. */
function strip(v: any): any {
  if (Array.isArray(v)) return v.map(strip);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'location' && k !== 'path').map(([k, x]) => [k, strip(x)]));
  return v;
}

test('--pack: the same processes as cwltool --pack; cwltool --validate accepts it; cwl-run runs it with the same outputs', async () => {
  const cases: [string, string][] = [['count-lines1-wf.cwl', 'wc-job.json'], ['revsort.cwl', 'revsort-job.json'], ['schemadef-wf.cwl', 'schemadef-job.json'],
    ['count-lines10-wf.cwl', 'wc-job.json'], ['count-lines11-wf.cwl', ''], ['search.cwl', ''], ['hash-ids-wf.cwl', 'hash-ids-job.yml']];
  for (const [doc, job] of cases) {
    const [ours, theirs] = await both(['--pack', doc]);
    const packed = JSON.parse(ours);
    assert.deepEqual(ids(packed), ids(JSON.parse(theirs)), doc);
    const file = path.join(work, `packed-${doc}`);
    fs.writeFileSync(file, ours);
    fs.chownSync(file, testUser().uid, testUser().gid);
    const v = await cwltool(['--validate', file]);
    assert.equal(v.code, 0, `cwltool --validate ${doc} packed: ${v.stderr}`);
    if (!job) continue;
    const [a, b] = await Promise.all([
      cwlRun(['--no-container', '--outdir', path.join(work, `out-p-${doc}`), file, job]),
      cwlRun(['--no-container', '--outdir', path.join(work, `out-u-${doc}`), doc, job])]);
    assert.equal(a.code, 0, `cwl-run packed ${doc}: ${a.stderr}`);
    assert.equal(b.code, 0, `cwl-run ${doc}: ${b.stderr}`);
    assert.deepEqual(strip(JSON.parse(a.stdout)), strip(JSON.parse(b.stdout)), doc);
  }
  // the packed file is self-contained: it runs from another directory, its default File (whale.txt beside
  // the unpacked document) found (locations were made absolute)
  const r = await cwlRun(['--no-container', '--outdir', path.join(work, 'out-elsewhere'), path.join(work, 'packed-count-lines11-wf.cwl')], work);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).count_output, 16);
});

test('cwltool flags cwl-run does not implement: exit 2, one line naming the flag, nothing run', async () => {
  for (const [flag, why] of [['--print-rdf', /not implemented/], ['--singularity', /--engine S1/], ['--leave-tmpdir', /always removed/], ['--target=count_output', /whole workflow runs/]] as const) {
    const out = path.join(work, `refused-${flag.replace(/\W/g, '')}`);
    const r = await cwlRun([flag, '--outdir', out, 'count-lines1-wf.cwl', 'wc-job.json']);
    assert.equal(r.code, 2, `${flag}: ${r.stderr}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].startsWith(`cwl-run: ${flag.split('=')[0]} is not supported (`), lines[0]);
    assert.match(lines[0], why);
    assert.equal(r.stdout, '');
    assert.ok(!fs.existsSync(out), 'nothing ran');
  }
  // an accepted no-op runs as without it
  const r = await cwlRun(['--verbose', '--disable-color', '--no-container', '--outdir', path.join(work, 'noop'), 'count-lines1-wf.cwl', 'wc-job.json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).count_output, 16);
});
