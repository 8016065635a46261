import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runAsUser, cwlRunBin, cliDir, userTempDir, testUser, type RunResult } from '../support/user.js';
import { startConformanceEnv, runGroup, type ConformanceEnv, conformanceSource } from '../support/conformance-env.js';
import { writeCwlRunLauncher } from '../bench/cwl-conformance.js';

/**
 * cwl-run as the unprivileged test user: small tools of our own, a
 * representative subset of the CWL conformance suite through our harness
 * (host mode), and a few container tests through userdock's engines.
 *
 * The whole suite is not run here (it takes long); the full command is
 *   node dist/test/bench/cwl-conformance.js --exclude-tags workflow -j2
 * (and with --cwltest for the CWL project's own runner).
 */
let work: string;
let pyDir: string;
const SUITE_SRC = conformanceSource();

function cwlRun(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return runAsUser(process.execPath, [cwlRunBin(), ...args], { cwd: opts.cwd ?? work, timeoutMs: opts.timeoutMs ?? 60_000, env: { PATH: `${pyDir}:/usr/local/bin:/usr/bin:/bin`, ...opts.env } });
}

function write(name: string, text: string): string {
  const p = path.join(work, name);
  fs.writeFileSync(p, text);
  fs.chownSync(p, testUser().uid, testUser().gid);
  return p;
}

before(() => {
  cliDir();
  work = userTempDir('cwlrun');
  // Suite tools call `python` (the python:3-slim image has it); on the host only python3 exists.
  pyDir = path.join(work, 'pybin');
  fs.mkdirSync(pyDir);
  fs.symlinkSync('/usr/bin/python3', path.join(pyDir, 'python'));
  fs.chmodSync(pyDir, 0o755);
});
after(() => { fs.rmSync(work, { recursive: true, force: true }); });

test('a tool with stdout capture, outputEval and a command-line input', async () => {
  const tool = write('echo.cwl', `cwlVersion: v1.2
class: CommandLineTool
requirements: { InlineJavascriptRequirement: {} }
baseCommand: echo
inputs:
  msg: { type: string, inputBinding: { position: 1 } }
outputs:
  out: stdout
  len:
    type: int
    outputBinding: { glob: out.txt, loadContents: true, outputEval: "$(self[0].contents.length)" }
stdout: out.txt
`);
  const outdir = path.join(work, 'o1');
  const r = await cwlRun(['--no-container', '--outdir', outdir, tool, '--msg', 'hello']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.len, 6);
  assert.equal(out.out.class, 'File');
  assert.equal(out.out.basename, 'out.txt');
  assert.equal(out.out.size, 6);
  assert.equal(out.out.checksum, 'sha1$f572d396fae9206628714fb2ce00f72e94f2258f');
  assert.equal(out.out.path, path.join(outdir, 'out.txt'));
  assert.equal(out.out.location, `file://${path.join(outdir, 'out.txt')}`);
  assert.equal(fs.readFileSync(out.out.path, 'utf8'), 'hello\n');
});

test('exit codes: permanentFail 1, unsupported 33, usage 2, invalid document names file:line', async () => {
  const fail = write('fail.cwl', 'cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: "false"\ninputs: []\noutputs: []\n');
  let r = await cwlRun(['--no-container', fail]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout.trim(), '{}');
  // --quiet hides progress, never the reason of a failure
  const wf = write('fail-wf.cwl', 'cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\nsteps:\n  s1:\n    run: fail.cwl\n    in: []\n    out: []\n');
  r = await cwlRun(['--quiet', '--no-container', wf]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[job fail\.cwl\] completed permanentFail \(exit 1\)/);
  assert.match(r.stderr, /\[step s1\] failed/);
  assert.match(r.stderr, /Final process status is permanentFail/);
  const unsup = write('unsup.cwl', 'cwlVersion: v1.2\nclass: CommandLineTool\nrequirements:\n  - class: MPIRequirement\nbaseCommand: "true"\ninputs: []\noutputs: []\n');
  r = await cwlRun(['--no-container', unsup]);
  assert.equal(r.code, 33, r.stderr);
  r = await cwlRun([]);
  assert.equal(r.code, 2);
  const bad = write('bad.cwl', 'cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: "true"\ninputs:\n  x:\n    type: Strin\noutputs: []\n');
  r = await cwlRun(['--no-container', bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.cwl:5: .*unknown type "Strin"/);
});

test('ExpressionTool, ToolTimeLimit and globs outside the outdir', async () => {
  const et = write('et.cwl', `cwlVersion: v1.2
class: ExpressionTool
requirements: { InlineJavascriptRequirement: {} }
inputs: { n: int }
outputs: { sq: int, f: File }
expression: '\${ return {sq: inputs.n * inputs.n, f: {class: "File", basename: "lit.txt", contents: "x"}}; }'
`);
  const job = write('et.yml', 'n: 7\n');
  let r = await cwlRun(['--outdir', path.join(work, 'o2'), et, job]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.sq, 49);
  assert.equal(out.f.size, 1);
  const slow = write('slow.cwl', 'cwlVersion: v1.2\nclass: CommandLineTool\nrequirements:\n  ToolTimeLimit: { timelimit: 1 }\nbaseCommand: [sleep, "30"]\ninputs: []\noutputs: []\n');
  const t0 = Date.now();
  r = await cwlRun(['--no-container', slow]);
  assert.equal(r.code, 1);
  assert.ok(Date.now() - t0 < 15_000, 'time limit enforced');
  const escape = write('escape.cwl', 'cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: "true"\ninputs: []\noutputs:\n  o: { type: File, outputBinding: { glob: "../../../etc/passwd" } }\n');
  r = await cwlRun(['--no-container', escape]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /outside the output directory/);
});

test('runaway expressions end the step with one line and exit 1: endless loop, promise loop, huge allocation, unhandled rejection, import()', { timeout: 120_000 }, async () => {
  const exprTool = (name: string, body: string): string => write(`${name}.cwl`, `cwlVersion: v1.2
class: ExpressionTool
requirements: { InlineJavascriptRequirement: {} }
inputs: []
outputs: { out: Any }
expression: |
  \${ ${body} }
`);
  const cases: Array<{ name: string; body: string; args: string[]; why: RegExp; maxS: number }> = [
    { name: 'loop', body: 'while (true) {} return {out: 1};', args: ['--eval-timeout', '2'], why: /time limit of 2 s exceeded/, maxS: 15 },
    { name: 'microtasks', body: '(function f() { Promise.resolve().then(f); })(); return {out: 1};', args: ['--eval-timeout=2'], why: /time limit of 2 s exceeded/, maxS: 15 },
    { name: 'alloc', body: 'var a = []; while (true) a.push(new Array(1e6).fill(1)); return {out: 1};', args: [], why: /memory limit of 1024 MB exceeded/, maxS: 60 },
    { name: 'reject', body: 'Promise.reject(new Error("boom")); return {out: 1};', args: [], why: /unhandled promise rejection: boom/, maxS: 15 },
    { name: 'import', body: 'import("node:fs").then(function (fs) { fs.writeFileSync("/tmp/x", "x"); }); return {out: 1};', args: [], why: /import\(\) is not available in expressions/, maxS: 15 },
  ];
  for (const c of cases) {
    const tool = exprTool(`runaway-${c.name}`, c.body);
    const t = Date.now();
    const r = await cwlRun(['--outdir', path.join(work, `o-${c.name}`), ...c.args, tool], { timeoutMs: c.maxS * 1000 });
    const s = (Date.now() - t) / 1000;
    assert.equal(r.code, 1, `${c.name}: ${r.stderr}`);
    assert.ok(s < c.maxS, `${c.name}: ${s} s`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${c.name}: ${r.stderr}`);
    assert.match(lines[0], new RegExp(`^cwl-run: expression \\$\\{.* in runaway-${c.name}\\.cwl failed: `), c.name);
    assert.match(lines[0], c.why, c.name);
    assert.doesNotMatch(r.stderr + r.stdout, /success|\n\s+at |Node\.js v/, c.name);
  }
  // in a workflow: the step is named; --eval-timeout is a usage error when not a number
  const wf = write('runaway-wf.cwl', `cwlVersion: v1.2
class: Workflow
requirements: { InlineJavascriptRequirement: {} }
inputs: []
outputs: { out: { type: Any, outputSource: spin/out } }
steps:
  spin: { run: runaway-loop.cwl, in: {}, out: [out] }
`);
  const r = await cwlRun(['--outdir', path.join(work, 'o-wf'), '--eval-timeout', '1', wf], { timeoutMs: 30_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /step "spin" failed: expression \$\{while \(true\) \{\} return \{out: 1\};\} in runaway-loop\.cwl failed: time limit of 1 s exceeded/);
  assert.doesNotMatch(r.stderr, /success|\n\s+at /);
  const u = await cwlRun(['--eval-timeout', 'soon', wf]);
  assert.equal(u.code, 2, u.stderr);
  assert.match(u.stderr, /--eval-timeout needs a number of seconds/);
});

test('conformance subset (host mode) through the harness', { timeout: 170_000 }, async (t) => {
  assert.ok(fs.existsSync(path.join(SUITE_SRC, 'conformance_tests.yaml')), `no conformance suite at ${SUITE_SRC}`);
  const suite = path.join(work, 'suite');
  execFileSync('cp', ['-a', '--no-preserve=ownership', SUITE_SRC, suite]);
  execFileSync('chown', ['-R', `${testUser().uid}:${testUser().gid}`, suite]);
  execFileSync('chmod', ['-R', 'u+rwX', suite]);
  const ids = [
    'cl_basic_generation', 'nested_prefixes_arrays', 'nested_cl_bindings', 'stdinout_redirect', 'env_home_tmpdir',
    'initworkdir_expreng_requirements', 'directory_secondaryfiles', 'exprtool_file_literal', 'envvar_req', 'shelldir_notinterpreted',
    'format_checking_equivalentclass', 'secondary_files_in_named_records', 'timelimit_basic', 'timelimit_invalid', 'networkaccess_disabled',
    'timelimit_zero_unlimited', 'input_dir_recurs_copy_writable', 'stage_file_array', 'iwd-jsondump1-nl', 'cwloutput_nolimit',
    'quoting_multiple_backslashes', 'stderr_redirect_shortcut', 'storage_float', 'schema-def_anonymous_enum_in_array', 'capture_files_and_dirs',
  ].join(',');
  const res = path.join(work, 'res');
  fs.mkdirSync(res); fs.chownSync(res, testUser().uid, testUser().gid);
  const harness = path.join(cliDir(), 'dist', 'conformance', 'harness.js');
  const r = await runAsUser(process.execPath, [harness, '-j2', '--timeout', '60', '--id', ids, '--out', res, '--', '--no-container'], {
    cwd: work, timeoutMs: 160_000, env: { CWL_CONFORMANCE_DIR: suite, PATH: `${pyDir}:/usr/local/bin:/usr/bin:/bin` },
  });
  const summary = JSON.parse(fs.readFileSync(path.join(res, 'results.json'), 'utf8'));
  const failed = summary.results.filter((x: { outcome: string }) => x.outcome !== 'pass').map((x: { id: string; message?: string }) => `${x.id}: ${x.message ?? ''}`.slice(0, 300));
  assert.deepEqual(failed, [], r.stderr.slice(-3000));
  assert.ok(summary.results.length >= 15, `ran ${summary.results.length} tests`);
  assert.ok(fs.readFileSync(path.join(res, 'junit.xml'), 'utf8').includes('<testsuite'));
  assert.match(fs.readFileSync(path.join(res, 'summary.md'), 'utf8'), /\| command_line_tool \|/);
});

let ce: ConformanceEnv | undefined;
after(async () => { await ce?.stop(); });

test('containers: DockerRequirement through userdock engines (debian, python, bash entrypoint, dockerOutputDirectory)', { timeout: 300_000 }, async (t) => {
  assert.ok(fs.existsSync(path.join(SUITE_SRC, 'conformance_tests.yaml')), `no conformance suite at ${SUITE_SRC}`);
  ce = await startConformanceEnv();
  const launcher = writeCwlRunLauncher(ce.binDir);
  const res = path.join(ce.workDir, 'res-docker');
  fs.mkdirSync(res); fs.chownSync(res, testUser().uid, testUser().gid);
  const harness = path.join(cliDir(), 'dist', 'conformance', 'harness.js');
  const ids = 'stdin_shorcut,docker_entrypoint,dockeroutputdir,iwd-container-entryname1,envvar_req,stdinout_redirect_docker';
  const r = await runGroup(process.execPath, [harness, '--tool', launcher, '-j2', '--timeout', '120', '--id', ids, '--out', res], {
    env: { ...ce.env, CWL_CONFORMANCE_DIR: ce.suiteDir }, cwd: ce.workDir, timeoutMs: 280_000,
  });
  const summary = JSON.parse(fs.readFileSync(path.join(res, 'results.json'), 'utf8'));
  const failed = summary.results.filter((x: { outcome: string }) => x.outcome !== 'pass').map((x: { id: string; message?: string; stderr?: string }) => `${x.id}: ${x.message ?? ''} ${x.stderr ?? ''}`.slice(0, 600));
  assert.deepEqual(failed, [], r.stderr.slice(-3000));
  assert.ok(summary.results.length >= 5);
});
