import type { Json } from './load.js';
import { WorkflowError } from './wf/links.js';

/**
 * Scatter plans: which input object the i-th job of a scattered step gets,
 * and how the job outputs are shaped back into arrays. Items are produced on
 * demand from an index, so a 10,000-way scatter never holds 10,000 job
 * objects at once.
 */
export type ScatterMethod = 'dotproduct' | 'nested_crossproduct' | 'flat_crossproduct';

export interface ScatterPlan {
  method: ScatterMethod;
  keys: string[];
  /** Length of each scattered input (dotproduct: one dimension). */
  dims: number[];
  total: number;
  itemAt(i: number): Json;
}

export function planScatter(inputs: Json, keys: string[], method: ScatterMethod = 'dotproduct', what = 'scatter'): ScatterPlan {
  if (!keys.length) throw new WorkflowError(`${what}: scatter names no inputs`);
  for (const k of keys) {
    if (!Array.isArray(inputs[k])) throw new WorkflowError(`${what}: scatter input "${k}" is not an array (got ${JSON.stringify(inputs[k])?.slice(0, 100)})`);
  }
  const lens = keys.map((k) => (inputs[k] as Json[]).length);
  if (keys.length === 1 || method === 'dotproduct') {
    if (lens.some((n) => n !== lens[0])) throw new WorkflowError(`${what}: dotproduct scatter needs arrays of equal length (got ${lens.join(', ')})`);
    return {
      method: keys.length === 1 ? (method === 'nested_crossproduct' ? 'nested_crossproduct' : 'dotproduct') : 'dotproduct',
      keys, dims: [lens[0]], total: lens[0],
      itemAt(i) {
        const o = { ...inputs };
        for (const k of keys) o[k] = inputs[k][i];
        return o;
      },
    };
  }
  if (method !== 'nested_crossproduct' && method !== 'flat_crossproduct') throw new WorkflowError(`${what}: unknown scatterMethod "${method as string}"`);
  const total = lens.reduce((a, b) => a * b, 1);
  return {
    method, keys, dims: lens, total,
    itemAt(i) {
      const o = { ...inputs };
      let rest = i;
      for (let d = keys.length - 1; d >= 0; d--) {
        o[keys[d]] = inputs[keys[d]][rest % lens[d]];
        rest = Math.floor(rest / lens[d]);
      }
      return o;
    },
  };
}

/** Shape the per-job values (index order) into the step output: flat, or nested by dimension. */
export function shapeResults(plan: Pick<ScatterPlan, 'method' | 'dims'>, values: Json[]): Json {
  if (plan.method !== 'nested_crossproduct' || plan.dims.length <= 1) return values;
  const build = (d: number, offset: number): Json[] => {
    const n = plan.dims[d];
    if (d === plan.dims.length - 1) return values.slice(offset, offset + n);
    const stride = plan.dims.slice(d + 1).reduce((a, b) => a * b, 1);
    const out: Json[] = [];
    for (let i = 0; i < n; i++) out.push(build(d + 1, offset + i * stride));
    return out;
  };
  return build(0, 0);
}

/**
 * Run `fn` for indices 0..total-1 with at most `limit` in flight. Stops
 * starting new items once `shouldStop()` says so or an item throws (the
 * first error is rethrown after the running ones settle).
 */
export async function runPool(total: number, limit: number, fn: (i: number) => Promise<void>, shouldStop: () => boolean = () => false): Promise<void> {
  let next = 0;
  let firstErr: unknown;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && !shouldStop() && next < total) {
      const i = next++;
      try { await fn(i); } catch (e) { if (!failed) { failed = true; firstErr = e; } }
    }
  };
  const n = Math.max(1, Math.min(limit, total));
  await Promise.all(Array.from({ length: n }, worker));
  if (failed) throw firstErr;
}
