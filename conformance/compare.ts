import crypto from 'node:crypto';
import fs from 'node:fs';

/** cwltest's comparison rules (cwltest/compare.py), ported. */
export class CompareFail extends Error {}

function fail(expected: unknown, actual: unknown, cause?: string): CompareFail {
  return new CompareFail(`expected: ${JSON.stringify(expected, null, 2)}\ngot: ${JSON.stringify(actual, null, 2)}${cause ? `\ncaused by: ${cause}` : ''}`);
}

type Obj = Record<string, any>;

function isFileSync(p: string): boolean { try { return fs.statSync(p).isFile(); } catch { return false; } }
function isDirSync(p: string): boolean { try { return fs.statSync(p).isDirectory(); } catch { return false; } }
function localPath(p: string): string { return p.startsWith('file://') ? decodeURIComponent(p.slice(7)) : p; }

function compareLocation(expected: Obj, actual: Obj, skip: boolean): void {
  let ec: string;
  if ('path' in expected) { ec = 'path'; if (!('path' in actual)) actual.path = actual.location; }
  else if ('location' in expected) ec = 'location';
  else return;
  const ac = 'path' in actual ? 'path' : 'location';
  let av = String(actual[ac]);
  if (actual.class === 'Directory') av = av.replace(/\/+$/, '');
  const exists = actual.class === 'Directory' ? isDirSync(localPath(av)) : isFileSync(localPath(av));
  if (!exists && !skip) throw fail(expected, actual, `${av} does not exist`);
  const ev = expected[ec];
  if (ev !== 'Any' && !(av.endsWith('/' + ev) || (!av.includes('/') && ev === av))) throw fail(expected, actual, `${av} does not end with ${ev}`);
}

function sha1(p: string): string { return 'sha1$' + crypto.createHash('sha1').update(fs.readFileSync(p)).digest('hex'); }

function compareFile(expected: Obj, actual: Obj, skip: boolean): void {
  compareLocation(expected, actual, skip);
  const p = localPath(actual.path ?? actual.location);
  if ('contents' in expected) {
    const c = fs.readFileSync(p, 'utf8');
    if (c !== expected.contents) throw fail(expected, actual, `Output file contents do not match: actual '${c}' is not equal to expected '${expected.contents}'`);
  }
  if (actual.class === 'File' && !skip) {
    const onDisk = sha1(p);
    if ('checksum' in actual && actual.checksum !== onDisk) throw fail(expected, actual, `checksum on disk ${onDisk} != declared ${actual.checksum}`);
    if ('checksum' in expected && expected.checksum !== onDisk) throw fail(expected, actual, `Output file checksums do not match: actual ${onDisk} is not equal to expected ${expected.checksum}`);
    const size = fs.statSync(p).size;
    if ('size' in actual && actual.size !== size) throw fail(expected, actual, `size on disk ${size} != declared ${actual.size}`);
    if ('size' in expected && expected.size !== size) throw fail(expected, actual, `Output file sizes do not match: actual ${size} is not equal to expected ${expected.size}`);
  }
  for (const k of Object.keys(expected)) {
    if (['path', 'location', 'listing', 'contents', 'checksum', 'size'].includes(k)) continue;
    try { compare(expected[k], actual[k], skip); } catch (e) { throw fail(expected, actual, `field '${k}' failed comparison: ${(e as Error).message}`); }
  }
}

function compareDirectory(expected: Obj, actual: Obj, skip: boolean): void {
  if (actual.class !== 'Directory') throw fail(expected, actual, "expected object with a class 'Directory'");
  if (!('listing' in actual)) throw fail(expected, actual, "'listing' is mandatory field in Directory object");
  for (const i of expected.listing ?? []) {
    let found = false;
    for (const j of actual.listing) {
      try { compare(i, j, skip); found = true; break; } catch { /* next */ }
    }
    if (!found) throw fail(expected, actual, `${JSON.stringify(i)} not found`);
  }
  compareFile(expected, actual, skip);
}

function pyEqual(a: unknown, b: unknown): boolean {
  // Python: 1 == 1.0 and True == 1; JSON parse loses int/float anyway.
  if (typeof a === 'boolean' || typeof b === 'boolean') {
    const na = typeof a === 'boolean' ? Number(a) : a; const nb = typeof b === 'boolean' ? Number(b) : b;
    return na === nb;
  }
  return JSON.stringify(a) === JSON.stringify(b);
}

export function compare(expected: any, actual: any, skip = false): void {
  if (expected === 'Any') return;
  if (expected !== null && expected !== undefined && (actual === null || actual === undefined)) throw fail(expected, actual);
  if (expected && typeof expected === 'object' && !Array.isArray(expected)) {
    if (!actual || typeof actual !== 'object' || Array.isArray(actual)) throw fail(expected, actual);
    if (expected.class === 'File') return compareFile(expected, actual, skip);
    if (expected.class === 'Directory') return compareDirectory(expected, actual, skip);
    for (const c of Object.keys(expected)) {
      try { compare(expected[c], actual[c], skip); } catch (e) { throw fail(expected, actual, `failed comparison for key '${c}': ${(e as Error).message}`); }
    }
    for (const k of Object.keys(actual)) if (!(k in expected) && actual[k] !== null && actual[k] !== undefined) throw fail(expected, actual, `unexpected key '${k}'`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) throw fail(expected, actual);
    if (expected.length !== actual.length) throw fail(expected, actual, "lengths don't match");
    for (let i = 0; i < expected.length; i++) compare(expected[i], actual[i], skip);
    return;
  }
  if (!pyEqual(expected ?? null, actual ?? null)) throw fail(expected, actual);
}
