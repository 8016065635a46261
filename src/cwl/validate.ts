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
  try { cwl = await import('cwl-ts-auto'); } catch { return; }
  try {
    await cwl.loadDocument(pathToFileURL(proc.file).href);
  } catch (e) {
    const msg = String((e as Error)?.message ?? e).split('\n').filter(Boolean).slice(0, 6).join('\n  ');
    if (lenient) { debug(`cwl-ts-auto: ${msg}`); return; }
    throw new ValidationError(`${proc.file}: invalid CWL:\n  ${msg}`);
  }
}
