#!/usr/bin/env node
/**
 * Conformance harness: runs the CWL conformance suite (from
 * CWL_CONFORMANCE_DIR, default ../shared/cwl-v1.2 relative to the repo)
 * against any runner command, with cwltest's comparison rules.
 *
 *   node dist/conformance/harness.js [--tool CMD] [-j N] [--tags a,b] [--exclude-tags x]
 *        [-n 1-10,12] [--id ID] [--timeout S] [--out DIR] [--verbose] [-- RUNNER-ARGS...]
 *
 * Writes DIR/results.json, DIR/summary.md (per-tag table) and DIR/junit.xml.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { compare } from './compare.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface TestCase {
  id: string; doc?: string; tool: string; job?: string; output?: unknown; should_fail?: boolean; tags: string[]; number: number;
}
export type Outcome = 'pass' | 'fail' | 'unsupported' | 'timeout';
export interface TestResult { number: number; id: string; tags: string[]; outcome: Outcome; seconds: number; message?: string; command: string[]; stderr?: string }

export function suiteDir(env = process.env): string {
  return path.resolve(env.CWL_CONFORMANCE_DIR ?? path.join(REPO, '..', 'shared', 'cwl-v1.2'));
}

export function loadTests(file: string): TestCase[] {
  const out: TestCase[] = [];
  const load = (f: string): void => {
    const doc = yaml.load(fs.readFileSync(f, 'utf8')) as any[];
    const dir = path.dirname(f);
    for (const t of doc ?? []) {
      if (t.$import) { load(path.resolve(dir, t.$import)); continue; }
      out.push({
        id: t.id ?? t.label ?? `test${out.length + 1}`, doc: t.doc, tool: path.resolve(dir, t.tool), job: t.job ? path.resolve(dir, t.job) : undefined,
        output: resolveImports(t.output, dir), should_fail: !!t.should_fail, tags: t.tags ?? [], number: out.length + 1,
      });
    }
  };
  load(file);
  return out;
}

/** Expected outputs may `$import` a JSON/YAML file (relative to the test list). */
function resolveImports(v: any, dir: string): any {
  if (Array.isArray(v)) return v.map((x) => resolveImports(x, dir));
  if (v && typeof v === 'object') {
    if (typeof v.$import === 'string') return yaml.load(fs.readFileSync(path.resolve(dir, v.$import), 'utf8'));
    const o: any = {};
    for (const [k, x] of Object.entries(v)) o[k] = resolveImports(x, dir);
    return o;
  }
  return v;
}

export function parseRanges(s: string): Set<number> {
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const a = Number(m[1]); const b = m[2] ? Number(m[2]) : a;
    for (let i = a; i <= b; i++) out.add(i);
  }
  return out;
}

export interface HarnessOptions {
  tool: string[]; runnerArgs: string[]; jobs: number; tags?: string[]; excludeTags?: string[]; numbers?: Set<number>; ids?: string[];
  timeoutSec: number; verbose: boolean; cwd: string;
}

export function runOne(t: TestCase, o: HarnessOptions): Promise<TestResult> {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cwlconf-'));
  const cmd = [...o.tool, ...o.runnerArgs, `--outdir=${outdir}`, '--quiet', t.tool, ...(t.job ? [t.job] : [])];
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd[0], cmd.slice(1), { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = []; const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, o.timeoutSec * 1000);
    const finish = (r: Omit<TestResult, 'number' | 'id' | 'tags' | 'seconds' | 'command'>): void => {
      fs.rmSync(outdir, { recursive: true, force: true });
      resolve({ number: t.number, id: t.id, tags: t.tags, seconds: (Date.now() - start) / 1000, command: cmd, ...r });
    };
    child.on('error', (e) => { clearTimeout(timer); finish({ outcome: 'fail', message: `cannot start runner: ${e.message}` }); });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8').slice(-4000);
      if (timedOut) return finish({ outcome: 'timeout', message: `timed out after ${o.timeoutSec}s`, stderr });
      if (code !== 0) {
        if (code === 33 && !t.tags.includes('required')) return finish({ outcome: 'unsupported', stderr });
        if (t.should_fail) return finish({ outcome: 'pass' });
        return finish({ outcome: 'fail', message: code === 33 ? 'does not support required feature' : `returned non-zero (${code})`, stderr });
      }
      if (t.should_fail) return finish({ outcome: 'fail', message: 'returned zero but it should be non-zero', stderr });
      let actual: unknown;
      try { actual = stdout.trim() ? JSON.parse(stdout) : {}; } catch { return finish({ outcome: 'fail', message: `output is not a valid JSON document: ${stdout.slice(0, 500)}`, stderr }); }
      try { compare(t.output, actual); } catch (e) { return finish({ outcome: 'fail', message: (e as Error).message.slice(0, 3000), stderr }); }
      finish({ outcome: 'pass' });
    });
  });
}

export function select(tests: TestCase[], o: Pick<HarnessOptions, 'tags' | 'excludeTags' | 'numbers' | 'ids'>): TestCase[] {
  return tests.filter((t) => (!o.numbers || o.numbers.has(t.number))
    && (!o.ids || o.ids.includes(t.id))
    && (!o.tags || t.tags.some((x) => o.tags!.includes(x)))
    && (!o.excludeTags || !t.tags.some((x) => o.excludeTags!.includes(x))));
}

export async function runAll(tests: TestCase[], o: HarnessOptions, onResult?: (r: TestResult) => void): Promise<TestResult[]> {
  const results: TestResult[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tests.length) {
      const t = tests[next++];
      const r = await runOne(t, o);
      results.push(r);
      onResult?.(r);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.jobs) }, worker));
  return results.sort((a, b) => a.number - b.number);
}

export function tagTable(results: TestResult[]): Record<string, { pass: number; fail: number; unsupported: number; timeout: number; total: number }> {
  const table: Record<string, { pass: number; fail: number; unsupported: number; timeout: number; total: number }> = {};
  for (const r of results) {
    for (const tag of ['*all*', ...r.tags]) {
      const row = table[tag] ??= { pass: 0, fail: 0, unsupported: 0, timeout: 0, total: 0 };
      row[r.outcome]++; row.total++;
    }
  }
  return table;
}

function xmlEsc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' }[c]!)).replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '');
}

export function junit(results: TestResult[]): string {
  const fails = results.filter((r) => r.outcome === 'fail' || r.outcome === 'timeout').length;
  const skipped = results.filter((r) => r.outcome === 'unsupported').length;
  const total = results.reduce((a, r) => a + r.seconds, 0);
  const cases = results.map((r) => {
    let body = '';
    if (r.outcome === 'fail' || r.outcome === 'timeout') body = `<failure message="${xmlEsc((r.message ?? '').split('\n')[0])}">${xmlEsc(r.message ?? '')}</failure><system-err>${xmlEsc(r.stderr ?? '')}</system-err>`;
    if (r.outcome === 'unsupported') body = '<skipped message="unsupported feature"/>';
    return `  <testcase classname="cwl-conformance" name="${xmlEsc(r.id)}" time="${r.seconds.toFixed(3)}">${body}</testcase>`;
  });
  return `<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n<testsuite name="cwl-conformance" tests="${results.length}" failures="${fails}" skipped="${skipped}" time="${total.toFixed(3)}">\n${cases.join('\n')}\n</testsuite>\n</testsuites>\n`;
}

export function markdown(results: TestResult[]): string {
  const t = tagTable(results);
  const rows = Object.entries(t).sort((a, b) => (a[0] === '*all*' ? -1 : b[0] === '*all*' ? 1 : a[0].localeCompare(b[0])));
  const lines = ['| tag | pass | fail | unsupported | timeout | total | % pass |', '|---|---:|---:|---:|---:|---:|---:|'];
  for (const [tag, r] of rows) lines.push(`| ${tag} | ${r.pass} | ${r.fail} | ${r.unsupported} | ${r.timeout} | ${r.total} | ${((100 * r.pass) / r.total).toFixed(1)} |`);
  const failed = results.filter((r) => r.outcome === 'fail' || r.outcome === 'timeout');
  if (failed.length) {
    lines.push('', '## Failures', '');
    for (const r of failed) lines.push(`- ${r.number} \`${r.id}\` [${r.tags.join(', ')}]: ${(r.message ?? '').split('\n')[0].slice(0, 200)}`);
  }
  return lines.join('\n') + '\n';
}

function usage(): never {
  process.stderr.write('usage: harness [--tool CMD] [-j N] [--tags a,b] [--exclude-tags x,y] [-n RANGES] [--id ID] [--timeout S] [--out DIR] [--verbose] [-- RUNNER-ARGS]\n');
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  const o: HarnessOptions = { tool: [process.execPath, path.join(REPO, 'dist', 'bundle', 'cwl-run.cjs')], runnerArgs: [], jobs: Math.max(1, Math.min(8, os.cpus().length)), timeoutSec: 600, verbose: false, cwd: suiteDir() };
  let out = path.join(process.cwd(), 'conformance-results');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => { const v = argv[++i]; if (v === undefined) usage(); return v; };
    if (a === '--') { o.runnerArgs.push(...argv.slice(i + 1)); break; }
    else if (a === '--tool') o.tool = val().split(' ').filter(Boolean);
    else if (a === '-j' || a === '--jobs') o.jobs = Number(val());
    else if (a.startsWith('-j')) o.jobs = Number(a.slice(2));
    else if (a === '--tags') o.tags = val().split(',');
    else if (a.startsWith('--tags=')) o.tags = a.slice(7).split(',');
    else if (a === '--exclude-tags') o.excludeTags = val().split(',');
    else if (a === '-n') o.numbers = parseRanges(val());
    else if (a.startsWith('-n')) o.numbers = parseRanges(a.slice(2));
    else if (a === '--id' || a === '-s') (o.ids ??= []).push(...val().split(','));
    else if (a === '--timeout') o.timeoutSec = Number(val());
    else if (a === '--out') out = path.resolve(val());
    else if (a === '--verbose' || a === '-v') o.verbose = true;
    else usage();
  }
  const dir = suiteDir();
  const file = path.join(dir, 'conformance_tests.yaml');
  if (!fs.existsSync(file)) { process.stderr.write(`harness: no conformance suite at ${dir} (set CWL_CONFORMANCE_DIR)\n`); return 2; }
  const tests = select(loadTests(file), o);
  process.stderr.write(`harness: ${tests.length} tests, -j${o.jobs}, runner: ${[...o.tool, ...o.runnerArgs].join(' ')}\n`);
  const results = await runAll(tests, o, (r) => {
    if (r.outcome !== 'pass' || o.verbose) {
      process.stderr.write(`[${r.number}] ${r.id}: ${r.outcome.toUpperCase()} (${r.seconds.toFixed(1)}s)${r.message ? ' — ' + r.message.split('\n')[0].slice(0, 200) : ''}\n`);
      if (o.verbose && r.stderr && r.outcome !== 'pass') process.stderr.write(r.stderr.split('\n').slice(-15).map((l) => '    ' + l).join('\n') + '\n');
    }
  });
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'results.json'), JSON.stringify({ tags: tagTable(results), results }, null, 2));
  fs.writeFileSync(path.join(out, 'summary.md'), markdown(results));
  fs.writeFileSync(path.join(out, 'junit.xml'), junit(results));
  const c = { pass: 0, fail: 0, unsupported: 0, timeout: 0 };
  for (const r of results) c[r.outcome]++;
  process.stdout.write(`${c.pass} tests passed, ${c.fail + c.timeout} failures, ${c.unsupported} unsupported features (reports in ${out})\n`);
  return c.fail + c.timeout > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { process.stderr.write(`harness: ${(e as Error).stack}\n`); process.exitCode = 2; });
}
