import fs from 'node:fs';
import { requirePackage } from '../lazy.js';
import { pathToFileURL } from 'node:url';
import { ValidationError, type Process } from './load.js';

/**
 * Schema validation with cwl-ts-auto (the CWL v1.2 parser generated from the
 * spec's schema-salad definitions). Only v1.2 documents are checked against
 * it — v1.0/v1.1 are upgraded in memory by our own loader. In non-strict
 * mode (normal runs) a failure is logged with --debug only: our own loader
 * has already checked what execution needs.
 */
export async function validateWithCwlTsAuto(proc: Process, debug: (m: string) => void, lenient = false): Promise<void> {
  if (proc.cwlVersion !== 'v1.2') return;
  let cwl: typeof import('cwl-ts-auto');
  try { cwl = requirePackage<typeof import('cwl-ts-auto')>('cwl-ts-auto'); } catch { return; }
  try {
    await cwl.loadDocument(pathToFileURL(proc.file).href);
  } catch (e) {
    const full = sectionFor(String((e as Error)?.toString?.() ?? e), proc.class);
    const located = locate(proc.file, full);
    const msg = full.split('\n').filter((l) => l.trim()).slice(0, 12).join('\n  ');
    if (lenient) { debug(`cwl-ts-auto: ${msg}`); return; }
    throw new ValidationError(`${located.length ? located.join('; ') : proc.file + ': invalid CWL'}\n  ${msg}`);
  }
}

/** Map cwl-ts-auto's "invalid field X" complaints to file:line (first line where `X:` is a key). */
function locate(file: string, message: string): string[] {
  let lines: string[];
  try { lines = fs.readFileSync(file, 'utf8').split('\n'); } catch { return []; }
  const out: string[] = [];
  const seen = new Set<string>();
  for (const m of message.matchAll(/invalid field (\S+?),/g)) {
    if (seen.has(m[1])) continue;
    seen.add(m[1]);
    const key = m[1].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const re = new RegExp(`^\\s*(?:-\\s*)?["']?${key}["']?\\s*:`);
    const i = lines.findIndex((l) => re.test(l));
    out.push(`${file}:${i >= 0 ? i + 1 : '?'}: invalid field "${m[1]}"`);
  }
  return out;
}

/** cwl-ts-auto tries every class; keep only the part about the document's own class. */
function sectionFor(message: string, cls: string): string {
  const lines = message.split('\n');
  const i = lines.findIndex((l) => l.includes(`Trying '${cls}'`));
  if (i < 0) return message;
  const indent = (l: string): number => l.length - l.trimStart().length;
  const base = indent(lines[i]);
  let j = i + 1;
  while (j < lines.length && (lines[j].trim() === '' || indent(lines[j]) > base)) j++;
  return lines.slice(i, j).join('\n');
}
