import path from 'node:path';
import { UsageError } from '../errors.js';
import type { Json, Process } from './load.js';

/** cwl-run's command line: cwltool-compatible options, then PROCESS [JOB] [--input value ...]. */
export interface Opts {
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
