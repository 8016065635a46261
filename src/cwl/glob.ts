import fs from 'node:fs';
import path from 'node:path';

/** Minimal POSIX glob (`*`, `?`, `[...]`, `{a,b}`) relative to a base directory. Results sorted. */
export function glob(base: string, pattern: string): string[] {
  const pats = expandBraces(pattern);
  const out = new Set<string>();
  for (const p of pats) {
    const abs = path.isAbsolute(p);
    const parts = p.split('/').filter((x, i) => x !== '' || (i === 0 && abs));
    const start = abs ? '/' : base;
    const segs = abs ? parts.slice(1) : parts;
    walk(start, segs, out);
  }
  return [...out].sort();
}

function expandBraces(p: string): string[] {
  const m = /\{([^{}]*)\}/.exec(p);
  if (!m) return [p];
  const [pre, post] = [p.slice(0, m.index), p.slice(m.index + m[0].length)];
  return m[1].split(',').flatMap((alt) => expandBraces(pre + alt + post));
}

function hasMagic(s: string): boolean { return /[*?[]/.test(s); }

function toRegex(seg: string): RegExp {
  let r = '^';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === '*') r += '[^/]*';
    else if (c === '?') r += '[^/]';
    else if (c === '[') {
      const j = seg.indexOf(']', i + 2);
      if (j < 0) { r += '\\['; continue; }
      let cls = seg.slice(i + 1, j);
      if (cls.startsWith('!')) cls = '^' + cls.slice(1);
      r += '[' + cls.replace(/\\/g, '\\\\') + ']';
      i = j;
    } else r += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(r + '$');
}

function walk(dir: string, segs: string[], out: Set<string>): void {
  if (segs.length === 0) { if (fs.existsSync(dir)) out.add(dir); return; }
  const [seg, ...rest] = segs;
  if (seg === '.') { walk(dir, rest, out); return; }
  if (!hasMagic(seg)) {
    const p = path.join(dir, seg);
    if (rest.length === 0) { try { fs.lstatSync(p); out.add(p); } catch { /* none */ } return; }
    walk(p, rest, out);
    return;
  }
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  const re = toRegex(seg);
  for (const n of names) {
    if (n.startsWith('.') && !seg.startsWith('.')) continue;
    if (re.test(n)) walk(path.join(dir, n), rest, out);
  }
}
