import { UserError, EXIT } from '../../errors.js';
import type { Json } from '../load.js';

/**
 * Combining the values of a sink's incoming links (step inputs and workflow
 * outputs), as cwltool does: with linkMerge set, or with more than one
 * source, the values are merged (merge_nested by default); a single source
 * without linkMerge is passed as is. pickValue then applies to the list.
 */
export class WorkflowError extends UserError {
  constructor(message: string) { super(message, EXIT.fail); this.name = 'WorkflowError'; }
}

export type LinkMerge = 'merge_nested' | 'merge_flattened';
export type PickValue = 'first_non_null' | 'the_only_non_null' | 'all_non_null';

export function mergeLinks(values: Json[], linkMerge: LinkMerge | undefined, sourceIsList: boolean): Json {
  const method = linkMerge ?? (values.length > 1 ? 'merge_nested' : undefined);
  if (!method) return sourceIsList && values.length === 0 ? null : values[0] ?? null;
  if (method === 'merge_nested') return [...values];
  if (method === 'merge_flattened') {
    const out: Json[] = [];
    for (const v of values) { if (Array.isArray(v)) out.push(...v); else out.push(v); }
    return out;
  }
  throw new WorkflowError(`unknown linkMerge method "${method as string}"`);
}

export function pickValue(v: Json, method: PickValue | undefined, what: string): Json {
  if (!method || !Array.isArray(v)) return v;
  const nonNull = v.filter((x) => x !== null && x !== undefined);
  switch (method) {
    case 'first_non_null':
      if (!nonNull.length) throw new WorkflowError(`${what}: pickValue first_non_null: all values are null`);
      return nonNull[0];
    case 'the_only_non_null':
      if (nonNull.length !== 1) throw new WorkflowError(`${what}: pickValue the_only_non_null: ${nonNull.length} values are not null (expected exactly one)`);
      return nonNull[0];
    case 'all_non_null':
      return nonNull;
    default:
      throw new WorkflowError(`${what}: unknown pickValue method "${method as string}"`);
  }
}
