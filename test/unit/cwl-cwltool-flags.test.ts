import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCli, REFUSED, ACCEPTED_NOOP } from '../../src/cwl/cli-args.js';
import { describeError, UsageError } from '../../src/errors.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** A cwltool flag cwl-run does not implement: a usage error (exit 2) naming the flag, one line. */
function refused(argv: string[], flag: string, why?: RegExp): void {
  let threw = false;
  try { parseCli(argv); } catch { threw = true; }
  if (!threw) assert.fail(`${argv.join(' ')} parses: if ${flag} is implemented now, remove it from REFUSED in src/cwl/cli-args.ts and from docs/cwl-run.md`);
  assert.throws(() => parseCli(argv), (e: unknown) => {
    assert.ok(e instanceof UsageError, `${argv.join(' ')}: ${String(e)}`);
    assert.equal(e.exitCode, 2);
    const line = describeError(e);
    assert.ok(line.startsWith(`cwl-run: ${flag} is not supported (`), line);
    assert.ok(!line.includes('\n'), 'one line');
    if (why) assert.match(line, why);
    return true;
  }, argv.join(' '));
}

test('cwltool flags cwl-run does not implement are refused by name, exit 2, with the reason', () => {
  const table: [string[], string, RegExp?][] = [
    [['--print-rdf', 'wf.cwl'], '--print-rdf'],
    [['--print-input-deps', 'wf.cwl', 'job.yml'], '--print-input-deps'],
    [['--leave-tmpdir', 'wf.cwl'], '--leave-tmpdir', /always removed/],
    [['--singularity', 'wf.cwl'], '--singularity', /--engine S1/],
    [['--user-space-docker-cmd=udocker', 'wf.cwl'], '--user-space-docker-cmd', /--engine/],
    [['--user-space-docker-cmd', 'udocker', 'wf.cwl'], '--user-space-docker-cmd'],
    [['--preserve-environment', 'HOME', 'wf.cwl'], '--preserve-environment', /EnvVarRequirement/],
    [['--strict', 'wf.cwl'], '--strict'],
    [['--non-strict', 'wf.cwl'], '--non-strict'],
    [['--write-summary', 'out.json', 'wf.cwl'], '--write-summary'],
    [['-w', 'out.json', 'wf.cwl'], '-w'],
    [['--target', 'out', 'wf.cwl'], '--target'],
    [['-t', 'out', 'wf.cwl'], '-t'],
    [['--single-step', 's1', 'wf.cwl'], '--single-step'],
    [['--tool-help', 'tool.cwl'], '--tool-help', /cwl-run PROCESS --help/],
    [['--provenance', 'ro', 'wf.cwl'], '--provenance'],
    [['--timestamps', 'wf.cwl'], '--timestamps'],
    [['--no-read-only', 'wf.cwl'], '--no-read-only'],
    [['--strict-memory-limit', 'wf.cwl'], '--strict-memory-limit'],
    [['--quiet', '--outdir', 'o', '--js-console', 'wf.cwl'], '--js-console'],
  ];
  for (const [argv, flag, why] of table) refused(argv, flag, why);
  // every entry of the table, with and without a value
  for (const flag of Object.keys(REFUSED)) { refused([flag, 'wf.cwl'], flag); refused([`${flag}=x`, 'wf.cwl'], flag); }
});

test('flags that only tune cwltool are accepted and change nothing; their values are not taken for PROCESS', () => {
  const base = parseCli(['wf.cwl', 'job.yml']);
  for (const [flag, { value }] of Object.entries(ACCEPTED_NOOP)) {
    const o = parseCli(value ? [flag, 'v', 'wf.cwl', 'job.yml'] : [flag, 'wf.cwl', 'job.yml']);
    assert.deepEqual(o, base, flag);
    assert.ok(!Object.hasOwn(REFUSED, flag), `${flag} both accepted and refused`);
  }
  assert.throws(() => parseCli(['--tmpdir', 'x', 'wf.cwl']), /unknown option --tmpdir/, 'not a cwltool flag');
});

test('--print-deps, --make-template, --print-dot, --pack: one at a time; --relative-deps primary|cwd', () => {
  assert.equal(parseCli(['--print-deps', '--relative-deps', 'cwd', 'wf.cwl']).relativeDeps, 'cwd');
  assert.equal(parseCli(['--print-deps', 'wf.cwl']).printDeps, true);
  assert.equal(parseCli(['--make-template', 'wf.cwl']).makeTemplate, true);
  assert.equal(parseCli(['--print-dot', 'wf.cwl']).printDot, true);
  assert.equal(parseCli(['--pack', 'wf.cwl']).pack, true);
  assert.throws(() => parseCli(['--pack', '--print-deps', 'wf.cwl']), (e: any) => e.exitCode === 2 && /--print-deps and --pack cannot be combined/.test(e.message));
  assert.throws(() => parseCli(['--print-deps', '--relative-deps', 'up', 'wf.cwl']), (e: any) => e.exitCode === 2 && /--relative-deps must be primary or cwd/.test(e.message));
});

test("every flag of the installed cwltool is implemented, accepted with a reason, or refused; docs/cwl-run.md lists the accepted and refused ones", (t) => {
  const doc = fs.readFileSync(path.join(REPO, 'docs', 'cwl-run.md'), 'utf8');
  for (const flag of [...Object.keys(REFUSED), ...Object.keys(ACCEPTED_NOOP)]) assert.ok(doc.includes(`\`${flag}\``), `docs/cwl-run.md does not list ${flag}`);
  const argparser = '/usr/lib/python3/dist-packages/cwltool/argparser.py';
  if (!fs.existsSync(argparser)) { t.skip('cwltool is not installed'); return; }
  const flags = [...new Set(fs.readFileSync(argparser, 'utf8').match(/"--?[a-zA-Z][a-zA-Z0-9-]*"/g)!.map((s) => s.slice(1, -1)))];
  assert.ok(flags.length > 80, `found ${flags.length} flags`);
  for (const flag of flags) {
    if (Object.hasOwn(REFUSED, flag) || ACCEPTED_NOOP[flag]) continue;
    // implemented: parses (with a value where it takes one); never "unknown option"
    let err: unknown;
    try { parseCli([flag, 'wf.cwl']); } catch (e) { err = e; }
    assert.ok(!(err instanceof Error && /unknown option/.test(err.message)), `cwltool's ${flag} is neither implemented, accepted nor refused`);
  }
});
