#!/usr/bin/env node
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VERSION } from '../version.js';
import { UserError, UsageError, EXIT, describeError } from '../errors.js';
import { makeContext } from './context.js';
import { loadProcess, parseYaml, toPath, type Json, type Process, type Requirement } from '../cwl/load.js';
import { executeProcess } from '../cwl/run.js';
import { relocateOutputs } from '../cwl/outputs.js';
import { tempDirs, type ExecOptions } from '../cwl/tool.js';
import { resolveLocations } from '../cwl/inputs.js';
import { validateWithCwlTsAuto } from '../cwl/validate.js';

const USAGE = `usage: cwl-run [options] PROCESS [JOB] [--INPUT VALUE ...]

Run a CWL v1.2 CommandLineTool or ExpressionTool (v1.0/v1.1 upgraded in memory).
Prints the output object as JSON on stdout; logs go to stderr.

options:
  --outdir DIR            final output directory (default: current directory)
  --tmpdir-prefix PREFIX  prefix for temporary directories
  --tmp-outdir-prefix P   prefix for intermediate output directories
  --basedir DIR           base directory for relative paths in the job
  --quiet                 only warnings and errors on stderr
  --debug                 extra diagnostics
  --validate              validate PROCESS and exit
  --no-container          ignore DockerRequirement, run on the host
  --default-container IMG image for tools without DockerRequirement
  --engine ID             userdock engine to use for containers
  --parallel              accepted for cwltool compatibility
  --cachedir DIR          reuse outputs of identical earlier runs
  --version               print the version
exit status: 0 success, 1 permanentFail, 2 usage, 33 unsupported requirement`;

interface Opts {
  outdir?: string; tmpdirPrefix?: string; tmpOutdirPrefix?: string; basedir?: string;
  quiet: boolean; debug: boolean; validate: boolean; noContainer: boolean; defaultContainer?: string;
  engine?: string; parallel: boolean; cachedir?: string; version: boolean; help: boolean;
  positional: string[]; toolArgs: string[];
}

const VALUE_OPTS: Record<string, keyof Opts> = {
  '--outdir': 'outdir', '--tmpdir-prefix': 'tmpdirPrefix', '--tmp-outdir-prefix': 'tmpOutdirPrefix', '--basedir': 'basedir',
  '--default-container': 'defaultContainer', '--engine': 'engine', '--cachedir': 'cachedir',
};
const BOOL_OPTS: Record<string, keyof Opts> = {
  '--quiet': 'quiet', '--debug': 'debug', '--validate': 'validate', '--no-container': 'noContainer', '--parallel': 'parallel',
  '--version': 'version', '--help': 'help', '-h': 'help',
};
/** cwltool flags accepted and ignored so existing scripts keep working. */
const IGNORED_BOOL = new Set(['--leave-tmpdir', '--leave-outputs', '--move-outputs', '--copy-outputs', '--strict', '--non-strict', '--skip-schemas', '--disable-pull', '--enable-pull', '--preserve-entire-environment', '--no-read-only', '--print-deps', '--enable-ext', '--disable-color', '--verbose', '--timestamps', '--enable-dev', '--strict-memory-limit', '--singularity', '--podman', '--udocker']);
const IGNORED_VALUE = new Set(['--preserve-environment', '--tmpdir', '--js-console', '--user-space-docker-cmd']);

export function parseCli(argv: string[]): Opts {
  const o: Opts = { quiet: false, debug: false, validate: false, noContainer: false, parallel: false, version: false, help: false, positional: [], toolArgs: [] };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { i++; break; }
    if (o.positional.length >= 1 && a.startsWith('--') && !VALUE_OPTS[a.split('=')[0]] && !BOOL_OPTS[a.split('=')[0]] && !IGNORED_BOOL.has(a) && !IGNORED_VALUE.has(a.split('=')[0])) break;
    if (!a.startsWith('-') || a === '-') {
      if (o.positional.length >= 2) break;
      o.positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    if (VALUE_OPTS[key]) {
      let v: string | undefined = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`cwl-run: option ${key} needs a value`);
      (o as any)[VALUE_OPTS[key]] = v;
    } else if (BOOL_OPTS[key]) (o as any)[BOOL_OPTS[key]] = true;
    else if (IGNORED_BOOL.has(key)) { /* accepted */ }
    else if (IGNORED_VALUE.has(key)) { if (eq < 0) i++; }
    else throw new UsageError(`cwl-run: unknown option ${key}`, "see 'cwl-run --help'");
  }
  o.toolArgs = argv.slice(i);
  return o;
}

/** Inputs given as --name value on the command line, typed by the tool's input schema. */
export function parseToolArgs(proc: Process, args: string[], baseDir: string): Json {
  const out: Json = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) throw new UsageError(`cwl-run: unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    const name = (eq > 0 ? a.slice(2, eq) : a.slice(2)).replace(/-/g, '_');
    const p = proc.inputs.find((x) => x.id === name || x.id.replace(/-/g, '_') === name);
    if (!p) throw new UsageError(`cwl-run: unknown input --${name} (inputs: ${proc.inputs.map((x) => x.id).join(', ')})`);
    const types = (Array.isArray(p.type) ? p.type : [p.type]).filter((t: Json) => t !== 'null');
    const t = types[0];
    const values: string[] = [];
    if (eq > 0) values.push(a.slice(eq + 1));
    if (t === 'boolean') {
      if (values.length) out[p.id] = values[0] === 'true';
      else if (args[i + 1] === 'true' || args[i + 1] === 'false') out[p.id] = args[++i] === 'true';
      else out[p.id] = true;
      continue;
    }
    const isArray = t && typeof t === 'object' && t.type === 'array';
    if (!values.length) {
      while (i + 1 < args.length && !args[i + 1].startsWith('--')) { values.push(args[++i]); if (!isArray) break; }
    }
    if (!values.length) throw new UsageError(`cwl-run: input --${name} needs a value`);
    const conv = (s: string, tt: Json): Json => {
      if (tt === 'int' || tt === 'long') return parseInt(s, 10);
      if (tt === 'float' || tt === 'double') return parseFloat(s);
      if (tt === 'File' || tt === 'Directory') return { class: tt, location: path.resolve(baseDir, s) };
      return s;
    };
    if (isArray) out[p.id] = [...(Array.isArray(out[p.id]) ? out[p.id] : []), ...values.map((v) => conv(v, t.items))];
    else out[p.id] = conv(values[0], t);
  }
  return out;
}

function loadJob(ref: string | undefined): { job: Json; dir: string; reqs: Requirement[] } {
  if (!ref) return { job: {}, dir: process.cwd(), reqs: [] };
  let text: string; let file: string;
  if (ref === '-') { text = fs.readFileSync(0, 'utf8'); file = path.join(process.cwd(), '<stdin>'); }
  else {
    file = toPath(ref);
    try { text = fs.readFileSync(file, 'utf8'); } catch (e) { throw new UserError(`cannot read job file ${file}: ${(e as NodeJS.ErrnoException).code}`, EXIT.fail); }
  }
  const job = parseYaml(text, file) ?? {};
  if (typeof job !== 'object' || Array.isArray(job)) throw new UserError(`${file}: the job must be a mapping of input names to values`, EXIT.fail);
  const reqs: Requirement[] = [];
  for (const k of ['cwl:requirements', 'https://w3id.org/cwl/cwl#requirements', 'requirements']) {
    if (Array.isArray(job[k])) { reqs.push(...job[k]); delete job[k]; }
  }
  delete job.$namespaces; delete job.$schemas;
  return { job, dir: path.dirname(file), reqs };
}

export async function main(argv: string[]): Promise<number> {
  const o = parseCli(argv);
  if (o.version) { process.stdout.write(`cwl-run ${VERSION}\n`); return 0; }
  if (o.help) { process.stdout.write(USAGE + '\n'); return 0; }
  if (o.positional.length < 1) throw new UsageError('cwl-run: missing PROCESS', "see 'cwl-run --help'");
  const ctx = makeContext({ quiet: o.quiet, debug: o.debug, argv0: 'cwl-run' });
  const log = (m: string): void => { if (!o.quiet) process.stderr.write(m + '\n'); };
  const dbg = (m: string): void => { if (o.debug) process.stderr.write(`debug: ${m}\n`); };
  const { job: jobObj, dir: jobDir0, reqs } = loadJob(o.positional[1]);
  const proc = loadProcess(o.positional[0], { inheritedRequirements: reqs });
  if (o.validate) {
    await validateWithCwlTsAuto(proc, dbg);
    process.stdout.write(`${o.positional[0]} is valid CWL.\n`);
    return 0;
  }
  const jobDir = o.basedir ? path.resolve(o.basedir) : jobDir0;
  const cliInputs = resolveLocations(parseToolArgs(proc, o.toolArgs, process.cwd()), process.cwd());
  const job = { ...resolveLocations(jobObj, jobDir), ...cliInputs };
  const tmpBase = os.tmpdir();
  const opts: ExecOptions = {
    ctx,
    tmpdirPrefix: path.resolve(o.tmpdirPrefix ?? path.join(tmpBase, 'cwlrun-tmp-')),
    tmpOutdirPrefix: path.resolve(o.tmpOutdirPrefix ?? path.join(tmpBase, 'cwlrun-out-')),
    noContainer: o.noContainer,
    defaultContainer: o.defaultContainer,
    engine: o.engine,
    cachedir: o.cachedir ? path.resolve(o.cachedir) : undefined,
    log, debug: dbg,
  };
  try {
    const res = await executeProcess(proc, job, jobDir, opts);
    if (res.status !== 'success') {
      process.stdout.write('{}\n');
      log(`Final process status is ${res.status}`);
      return EXIT.fail;
    }
    const outdir = path.resolve(o.outdir ?? process.cwd());
    const final = relocateOutputs(res.output, outdir, tempDirs);
    process.stdout.write(JSON.stringify(final, null, 4) + '\n');
    log('Final process status is success');
    return 0;
  } finally {
    for (const d of tempDirs) {
      try { fs.chmodSync(d, 0o700); } catch { /* */ }
      fs.rmSync(d, { recursive: true, force: true });
    }
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`cwl-run: ${describeError(err)}\n`);
  if (process.env.CWL_RUN_DEBUG || process.argv.includes('--debug')) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  process.exitCode = err instanceof UserError ? err.exitCode : EXIT.fail;
});
