import { UsageError } from '../errors.js';

/**
 * One small argument parser for every command. A spec names each option:
 * `string` options take a value (`--x=v`, `--x v`, `-x v`), `list` options
 * may repeat, `bool` options take none. Parsing stops at `--`, and, when
 * `stopAtPositional` is set, at the first positional (so `run IMAGE CMD -x`
 * leaves `-x` to the container command). Short flags combine as in docker:
 * `-it` is `-i -t`, and `-ie NAME=V` / `-ieNAME=V` end in an option that takes a value.
 */
export type OptKind = 'bool' | 'string' | 'list';

export interface OptSpec {
  kind: OptKind;
  /** Other spellings: '-v', '--vol'. */
  aliases?: string[];
}

export interface Parsed {
  opts: Record<string, string | boolean | string[] | undefined>;
  positional: string[];
}

export function parseArgs(argvIn: string[], spec: Record<string, OptSpec>, where: string, stopAtPositional = false): Parsed {
  const names = new Map<string, string>();
  for (const [name, s] of Object.entries(spec)) {
    names.set(`--${name}`, name);
    for (const a of s.aliases ?? []) names.set(a, name);
  }
  let argv = argvIn;
  const opts: Parsed['opts'] = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { positional.push(...argv.slice(i + 1)); break; }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      if (stopAtPositional) { positional.push(...argv.slice(i + 1)); break; }
      continue;
    }
    const eq = arg.indexOf('=');
    let key = eq > 0 ? arg.slice(0, eq) : arg;
    let inline: string | undefined = eq > 0 ? arg.slice(eq + 1) : undefined;
    // -vVALUE short form for single-letter aliases; -it: short flags combined, as docker takes them
    if (!names.has(key) && /^-[a-zA-Z]./.test(arg) && !arg.startsWith('--') && names.has(arg.slice(0, 2))) {
      key = arg.slice(0, 2); inline = arg.slice(2);
      if (spec[names.get(key)!].kind === 'bool' && /^[a-zA-Z]/.test(inline)) {
        opts[names.get(key)!] = true;
        argv = [...argv.slice(0, i), `-${inline}`, ...argv.slice(i + 1)];
        i--;
        continue;
      }
    }
    const name = names.get(key);
    if (!name) throw new UsageError(`${where}: unknown option ${key}`, `see 'userdock ${where.split(' ').pop()} --help'`);
    const s = spec[name];
    if (s.kind === 'bool') {
      if (inline !== undefined && !['true', 'false', '1', '0', 'yes', 'no'].includes(inline)) {
        throw new UsageError(`${where}: option ${key} takes no value (got "${inline}")`);
      }
      opts[name] = inline === undefined ? true : ['true', '1', 'yes'].includes(inline);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`${where}: option ${key} needs a value`);
      value = argv[++i];
    }
    if (s.kind === 'list') {
      const prev = opts[name];
      opts[name] = Array.isArray(prev) ? [...prev, value] : [value];
    } else {
      opts[name] = value;
    }
  }
  return { opts, positional };
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.opts[name];
  return typeof v === 'string' ? v : undefined;
}
export function bool(p: Parsed, name: string): boolean { return p.opts[name] === true; }
export function list(p: Parsed, name: string): string[] {
  const v = p.opts[name];
  return Array.isArray(v) ? v : [];
}
