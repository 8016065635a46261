import path from 'node:path';
import yaml from 'js-yaml';
import { UsageError } from '../errors.js';
import type { Json, Process } from './load.js';

/** cwl-run's command line: cwltool-compatible options, then PROCESS [JOB] [--input value ...]. */
export interface Opts {
  outdir?: string; tmpdirPrefix?: string; tmpOutdirPrefix?: string; basedir?: string;
  quiet: boolean; debug: boolean; validate: boolean; noContainer: boolean; defaultContainer?: string;
  engine?: string; pull: 'missing' | 'never' | 'always'; parallel: boolean; jobs?: string; onError?: string; cachedir?: string; version: boolean; help: boolean;
  positional: string[]; toolArgs: string[];
  /** --executor local|slurm and the Slurm options (src/cwl/slurm). */
  /** --eval-timeout SECONDS: the time limit of one JavaScript expression (as cwltool's). */
  evalTimeout?: string;
  /** --print-deps [--relative-deps primary|cwd], --make-template, --print-dot, --pack: print and exit (src/cwl/deps.ts, template.ts, dot.ts, pack.ts). */
  printDeps: boolean; relativeDeps?: string; makeTemplate: boolean; printDot: boolean; pack: boolean;
  executor?: string; slurmPartition?: string; slurmAccount?: string; slurmExtra?: string; slurmWorkdir?: string; slurmRetries?: string; slurmNodeTmp?: string;
}

const VALUE_OPTS: Record<string, keyof Opts> = {
  '--outdir': 'outdir', '--tmpdir-prefix': 'tmpdirPrefix', '--tmp-outdir-prefix': 'tmpOutdirPrefix', '--basedir': 'basedir',
  '--default-container': 'defaultContainer', '--engine': 'engine', '--cachedir': 'cachedir', '-j': 'jobs', '--jobs': 'jobs', '--on-error': 'onError',
  '--eval-timeout': 'evalTimeout', '--executor': 'executor', '--slurm-partition': 'slurmPartition', '--slurm-account': 'slurmAccount', '--slurm-extra': 'slurmExtra',
  '--slurm-workdir': 'slurmWorkdir', '--slurm-retries': 'slurmRetries', '--slurm-node-tmp': 'slurmNodeTmp', '--relative-deps': 'relativeDeps',
};
const BOOL_OPTS: Record<string, keyof Opts> = {
  '--quiet': 'quiet', '--debug': 'debug', '--validate': 'validate', '--no-container': 'noContainer', '--parallel': 'parallel',
  '--version': 'version', '--help': 'help', '-h': 'help',
  '--print-deps': 'printDeps', '--make-template': 'makeTemplate', '--print-dot': 'printDot', '--pack': 'pack',
};
/**
 * cwltool flags that cwl-run accepts and ignores: each one only tunes
 * cwltool's internals or asks for what cwl-run always does.
 * docs/cwl-run.md ("cwltool flags") lists the same reasons.
 */
export const ACCEPTED_NOOP: Record<string, { value: boolean; why: string }> = {
  '--verbose': { value: false, why: "cwl-run's default logging" },
  '--enable-pull': { value: false, why: "cwl-run's default: a missing image is pulled" },
  '--rm-container': { value: false, why: 'no container outlives its job' },
  '--rm-tmpdir': { value: false, why: 'temporary directories are always removed' },
  '--move-outputs': { value: false, why: 'outputs always end in --outdir and intermediate directories are removed' },
  '--compute-checksum': { value: false, why: 'output Files always carry a sha1 checksum' },
  '--skip-schemas': { value: false, why: 'cwl-run never loads $schemas' },
  '--doc-cache': { value: false, why: 'cwl-run loads only local documents; there is no HTTP document cache' },
  '--no-doc-cache': { value: false, why: 'cwl-run loads only local documents; there is no HTTP document cache' },
  '--enable-color': { value: false, why: 'logs have no colour' },
  '--disable-color': { value: false, why: 'logs have no colour' },
  '--enable-dev': { value: false, why: 'the v1.2.0-devN versions load without it' },
  '--enable-ext': { value: false, why: 'cwltool: extension classes are read without it' },
  '--disable-js-validation': { value: false, why: 'cwl-run does no jshint validation' },
  '--js-hint-options-file': { value: true, why: 'cwl-run does no jshint validation' },
  '--disable-ga4gh-tool-registry': { value: false, why: 'cwl-run never resolves tools through a registry' },
  '--fast-parser': { value: false, why: "a choice between cwltool's own parsers" },
};

/** cwltool flags cwl-run does not implement: each is refused by name, exit 2, with the reason (docs/cwl-run.md lists them). */
export const REFUSED: Record<string, string> = {
  '--leave-tmpdir': 'temporary directories are always removed',
  '--leave-outputs': 'outputs are always moved to --outdir',
  '--copy-outputs': 'outputs are always moved to --outdir',
  '--leave-container': 'no container outlives its job',
  '--preserve-environment': 'tools get the environment the CWL spec gives them; use EnvVarRequirement',
  '--preserve-entire-environment': 'tools get the environment the CWL spec gives them; use EnvVarRequirement',
  '--record-container-id': 'userdock containers have no container id',
  '--cidfile-dir': 'userdock containers have no container id',
  '--cidfile-prefix': 'userdock containers have no container id',
  '--log-dir': 'not implemented',
  '--write-summary': 'not implemented; the output object is printed on stdout',
  '-w': 'not implemented (--write-summary); the output object is printed on stdout',
  '--rdf-serializer': 'there is no --print-rdf',
  '--print-rdf': 'not implemented',
  '--print-pre': 'not implemented',
  '--print-input-deps': 'not implemented; --print-deps prints the document\'s dependencies',
  '--print-supported-versions': 'not implemented; cwl-run runs v1.2 and upgrades v1.0/v1.1 in memory',
  '--print-subgraph': 'not implemented',
  '--print-targets': 'not implemented',
  '--tool-help': "use 'cwl-run PROCESS --help'",
  '--strict': "cwl-run's validation has one fixed strictness",
  '--non-strict': "cwl-run's validation has one fixed strictness",
  '--timestamps': 'not implemented',
  '--js-console': 'not implemented',
  '--strict-memory-limit': 'ResourceRequirement is not enforced as a limit',
  '--strict-cpu-limit': 'ResourceRequirement is not enforced as a limit',
  '--user-space-docker-cmd': "cwl-run runs containers with userdock itself; use --engine ID (or 'cwltool --user-space-docker-cmd=userdock')",
  '--udocker': 'cwl-run runs containers with userdock itself; use --engine ID',
  '--singularity': 'cwl-run runs containers with userdock itself; use --engine S1 for apptainer/singularity',
  '--podman': 'cwl-run runs containers with userdock itself; use --engine ID',
  '--beta-dependency-resolvers-configuration': 'SoftwareRequirement resolution is not implemented',
  '--beta-dependencies-directory': 'SoftwareRequirement resolution is not implemented',
  '--beta-use-biocontainers': 'SoftwareRequirement resolution is not implemented',
  '--beta-conda-dependencies': 'SoftwareRequirement resolution is not implemented',
  '--no-match-user': 'tools always run as the invoking user',
  '--custom-net': 'the network is off, or the host\'s with NetworkAccess',
  '--disable-validate': 'documents are always validated',
  '--enable-ga4gh-tool-registry': 'tools are not resolved through a registry',
  '--add-ga4gh-tool-registry': 'tools are not resolved through a registry',
  '--no-compute-checksum': 'output Files always carry a sha1 checksum',
  '--relax-path-checks': 'not implemented',
  '--no-read-only': "the image's rootfs is always read-only",
  '--overrides': 'not implemented',
  '--target': 'not implemented; the whole workflow runs',
  '-t': 'not implemented (--target); the whole workflow runs',
  '--single-step': 'not implemented; the whole workflow runs',
  '--single-process': 'not implemented; the whole workflow runs',
  '--mpi-config-file': 'MPIRequirement is not implemented',
  '--provenance': 'not implemented',
  '--enable-user-provenance': 'not implemented (--provenance)',
  '--disable-user-provenance': 'not implemented (--provenance)',
  '--full-name': 'not implemented (--provenance)',
  '--orcid': 'not implemented (--provenance)',
  '--no-warnings': 'not implemented; --quiet keeps warnings',
};

export function parseCli(argv: string[]): Opts {
  const o: Opts = { pull: 'missing', quiet: false, debug: false, validate: false, noContainer: false, parallel: false, version: false, help: false,
    printDeps: false, makeTemplate: false, printDot: false, pack: false, positional: [], toolArgs: [] };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { i++; break; }
    // After PROCESS: an optional JOB, then everything is tool input (as cwltool does).
    if (o.positional.length >= 1) {
      if (o.positional.length === 1 && (!a.startsWith('-') || a === '-')) { o.positional.push(a); i++; }
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      o.positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    if (key === '--parallel' && eq > 0) { o.parallel = true; o.jobs = a.slice(eq + 1); continue; }
    if (/^-j\d+$/.test(a)) { o.jobs = a.slice(2); continue; }
    if (VALUE_OPTS[key]) {
      let v: string | undefined = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`cwl-run: option ${key} needs a value`);
      (o as any)[VALUE_OPTS[key]] = v;
    } else if (BOOL_OPTS[key]) (o as any)[BOOL_OPTS[key]] = true;
    else if (key === '--disable-pull') o.pull = 'never';
    else if (key === '--force-docker-pull') o.pull = 'always';
    else if (ACCEPTED_NOOP[key]) { if (ACCEPTED_NOOP[key].value && eq < 0) i++; }
    else if (Object.hasOwn(REFUSED, key)) throw new UsageError(`cwl-run: ${key} is not supported`, REFUSED[key]);
    else throw new UsageError(`cwl-run: unknown option ${key}`, "see 'cwl-run --help'");
  }
  o.toolArgs = argv.slice(i);
  const modes = (['--print-deps', '--make-template', '--print-dot', '--pack', '--validate'] as const)
    .filter((f) => o[BOOL_OPTS[f] as 'printDeps']);
  if (modes.length > 1) throw new UsageError(`cwl-run: ${modes.join(' and ')} cannot be combined`, 'give one of them');
  if (o.relativeDeps !== undefined && o.relativeDeps !== 'primary' && o.relativeDeps !== 'cwd') throw new UsageError(`cwl-run: --relative-deps must be primary or cwd (got ${o.relativeDeps})`);
  return o;
}

/**
 * One command-line option per tool input, as cwltool makes them: `--id`
 * (`-x` for one-letter ids, `--x` accepted too), record fields as
 * `--rec.field` (nested: `--rec.sub.field`), arrays by repeating the option
 * (or several values after one option), booleans as bare flags.
 */
interface ToolOpt { flag: string; path: string[]; type: Json; doc?: string; required: boolean; defaultValue?: Json; hidden?: boolean }

function nonNull(t: Json): Json[] { return (Array.isArray(t) ? t : [t]).filter((x: Json) => x !== 'null'); }
function optFlag(id: string): string { return id.length === 1 ? `-${id}` : `--${id}`; }
const norm = (f: string): string => f.replace(/^-+/, '').replace(/-/g, '_');

export function toolOptions(proc: Process): ToolOpt[] {
  const out: ToolOpt[] = [];
  const add = (names: string[], type: Json, doc: Json, required: boolean, def: Json, depth: number): void => {
    const ts = nonNull(type);
    const single = ts.length === 1 ? ts[0] : undefined;
    if (single && typeof single === 'object' && single.type === 'record' && depth < 8) {
      // the whole record as one JSON/YAML value (not in --help): --rec '{"a": 1}'
      out.push({ flag: optFlag(names.join('.')), path: names, type: single, required: false, hidden: true });
      for (const f of single.fields ?? []) add([...names, f.name], f.type, f.doc, required && !(Array.isArray(f.type) && f.type.includes('null')), def?.[f.name], depth + 1);
      return;
    }
    const id = names.join('.');
    out.push({ flag: optFlag(id), path: names, type, doc: typeof doc === 'string' ? doc : Array.isArray(doc) ? doc.join(' ') : undefined, required, defaultValue: def });
  };
  for (const p of proc.inputs) {
    const optional = (Array.isArray(p.type) && p.type.includes('null')) || p.default !== undefined || nonNull(p.type)[0] === 'boolean';
    add([p.id], p.type, p.raw?.doc ?? p.raw?.label, !optional, p.default, 0);
  }
  return out;
}

function typeWord(t: Json): string {
  const ts = nonNull(t);
  if (ts.length !== 1) return ts.map(typeWord).join('|').toUpperCase();
  const x = ts[0];
  if (typeof x === 'string') return x.toUpperCase();
  if (x.type === 'enum') return `{${(x.symbols ?? []).join(',')}}`;
  if (x.type === 'array') return typeWord(x.items);
  if (x.type === 'record') return 'JSON';
  return 'VALUE';
}

/** `cwl-run PROCESS --help`: the tool's inputs as options. */
export function toolHelp(proc: Process, name: string): string {
  const opts = toolOptions(proc).filter((o) => !o.hidden);
  const usage = opts.map((o) => {
    const t = nonNull(o.type)[0];
    const s = t === 'boolean' ? o.flag : `${o.flag} ${typeWord(o.type)}`;
    return o.required ? s : `[${s}]`;
  });
  const lines = [`usage: ${name} [-h] ${usage.join(' ')} [job_order]`.replace(/ +$/, ''), ''];
  const doc = proc.raw?.doc ?? proc.raw?.label;
  if (doc) lines.push(String(Array.isArray(doc) ? doc.join('\n') : doc).trim(), '');
  lines.push('positional arguments:', '  job_order            job input file (YAML or JSON)', '', 'inputs:');
  for (const o of opts) {
    const t = nonNull(o.type)[0];
    const left = `  ${t === 'boolean' ? o.flag : `${o.flag} ${typeWord(o.type)}`}`;
    const notes: string[] = [];
    if (o.doc) notes.push(o.doc.trim().replace(/\s+/g, ' '));
    if (t && typeof t === 'object' && t.type === 'array') notes.push('repeat for more items');
    if (o.required) notes.push('required');
    else if (o.defaultValue !== undefined && o.defaultValue !== null) notes.push(`default: ${JSON.stringify(o.defaultValue)}`);
    lines.push(notes.length ? `${left.padEnd(30)} ${notes.join('; ')}` : left);
  }
  if (!opts.length) lines.push('  (none)');
  return lines.join('\n') + '\n';
}

/** Inputs given as --name value on the command line, typed by the tool's input schema. */
export function parseToolArgs(proc: Process, args: string[], baseDir: string): Json {
  const opts = toolOptions(proc);
  const out: Json = {};
  // record fields given one by one fill in a record given whole (set() merges into it)
  const find = (flag: string): ToolOpt | undefined => opts.find((o) => o.flag === flag) ?? opts.find((o) => norm(o.flag) === norm(flag));
  const set = (o: ToolOpt, v: Json, append: boolean): void => {
    let obj = out;
    for (const k of o.path.slice(0, -1)) obj = (obj[k] && typeof obj[k] === 'object' && !Array.isArray(obj[k])) ? obj[k] : (obj[k] = {});
    const k = o.path[o.path.length - 1];
    obj[k] = append ? [...(Array.isArray(obj[k]) ? obj[k] : []), ...v] : v;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('-') || a === '-') throw new UsageError(`cwl-run: unexpected argument "${a}"`, 'give tool inputs as --name value (see cwl-run PROCESS --help)');
    const eq = a.indexOf('=');
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const o = find(flag);
    if (!o) throw new UsageError(`cwl-run: unknown input ${flag}`, `inputs: ${opts.map((x) => x.flag).join(' ') || '(none)'}; see cwl-run PROCESS --help`);
    const ts = nonNull(o.type);
    const t = ts.length === 1 ? ts[0] : undefined;
    if (t === 'boolean') {
      const v = eq > 0 ? a.slice(eq + 1) : (args[i + 1] === 'true' || args[i + 1] === 'false') ? args[++i] : 'true';
      if (v !== 'true' && v !== 'false') throw new UsageError(`cwl-run: argument ${flag}: expected true or false, got "${v}"`);
      set(o, v === 'true', false);
      continue;
    }
    const isArray = !!t && typeof t === 'object' && t.type === 'array';
    const values: string[] = [];
    if (eq > 0) values.push(a.slice(eq + 1));
    else {
      while (i + 1 < args.length && (!args[i + 1].startsWith('-') || args[i + 1] === '-' || /^-\d/.test(args[i + 1]))) { values.push(args[++i]); if (!isArray) break; }
    }
    if (!values.length) throw new UsageError(`cwl-run: argument ${flag}: expected a value`);
    if (isArray) set(o, values.map((v) => convertArg(v, t.items, flag, baseDir)), true);
    else set(o, convertArg(values[0], o.type, flag, baseDir), false);
  }
  return out;
}

/** A command-line string as a value of CWL type `type` (unions: the first member that accepts it). */
function convertArg(s: string, type: Json, flag: string, baseDir: string): Json {
  const ts = nonNull(type);
  const errors: string[] = [];
  for (const t of ts) {
    const r = convertOne(s, t, baseDir);
    if (r.ok) return r.value;
    errors.push(r.error);
  }
  throw new UsageError(`cwl-run: argument ${flag}: ${errors.join('; ') || `cannot convert "${s}"`}`);
}

function convertOne(s: string, t: Json, baseDir: string): { ok: true; value: Json } | { ok: false; error: string } {
  if (t === 'int' || t === 'long') return /^[-+]?\d+$/.test(s.trim()) ? { ok: true, value: Number(s) } : { ok: false, error: `invalid int value: '${s}'` };
  if (t === 'float' || t === 'double') return s.trim() !== '' && Number.isFinite(Number(s)) ? { ok: true, value: Number(s) } : { ok: false, error: `invalid float value: '${s}'` };
  if (t === 'string' || t === 'Any' || t === 'stdin') {
    if (t === 'stdin') return { ok: true, value: { class: 'File', location: fileLoc(s, baseDir) } };
    return { ok: true, value: s };
  }
  if (t === 'File' || t === 'Directory') return { ok: true, value: { class: t, location: fileLoc(s, baseDir) } };
  if (t === 'boolean') return s === 'true' || s === 'false' ? { ok: true, value: s === 'true' } : { ok: false, error: `invalid boolean value: '${s}'` };
  if (t && typeof t === 'object' && t.type === 'enum') {
    const syms: string[] = t.symbols ?? [];
    return syms.includes(s) ? { ok: true, value: s } : { ok: false, error: `invalid choice: '${s}' (choose from ${syms.map((x) => `'${x}'`).join(', ')})` };
  }
  // records, arrays given whole: a JSON/YAML value
  try { return { ok: true, value: yaml.load(s) as Json }; } catch (e) { return { ok: false, error: `expected a JSON/YAML value: ${(e as Error).message.split('\n')[0]}` }; }
}

function fileLoc(s: string, baseDir: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return s;
  return path.resolve(baseDir, s);
}

/** A number as JSON; integers beyond 1e21 are written out in full (Python reads them back as the same int). */
function numJson(n: number): string {
  if (!Number.isFinite(n)) return 'null';
  if (Number.isInteger(n) && Math.abs(n) >= 1e21) {
    const m = /^(-?)(\d)(?:\.(\d+))?e\+(\d+)$/.exec(n.toString());
    if (m) { const digits = m[2] + (m[3] ?? ''); return m[1] + digits + '0'.repeat(Number(m[4]) - (digits.length - 1)); }
  }
  return JSON.stringify(n);
}

/** JSON.stringify(v, null, indent) with numbers written by numJson. */
export function toJson(v: unknown, indent = 4, level = 0): string {
  const pad = ' '.repeat(indent * (level + 1));
  const end = ' '.repeat(indent * level);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') return numJson(v);
  if (typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return '[\n' + v.map((x) => pad + toJson(x, indent, level + 1)).join(',\n') + '\n' + end + ']';
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (!entries.length) return '{}';
  return '{\n' + entries.map(([k, x]) => pad + JSON.stringify(k) + ': ' + toJson(x, indent, level + 1)).join(',\n') + '\n' + end + '}';
}
