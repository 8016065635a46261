/**
 * Packing CWL scatter items into Slurm array tasks.
 *
 * A task slot costs about a second of controller/slurmd turnaround even for an
 * empty payload (measured on the test cluster, see docs/scale.md), and every
 * task is a job record. So N scatter items become at most `maxTasks` array
 * tasks, each running a contiguous block of items: task t runs items
 * [t*perTask, min(N, (t+1)*perTask)).
 */
export interface Packing { tasks: number; perTask: number }

export function packScatter(items: number, opts: { maxTasks?: number; minPerTask?: number } = {}): Packing {
  if (!Number.isInteger(items) || items < 0) throw new RangeError(`packScatter: bad item count ${items}`);
  const maxTasks = Math.max(1, Math.floor(opts.maxTasks ?? 1000));
  const minPerTask = Math.max(1, Math.floor(opts.minPerTask ?? 1));
  if (items === 0) return { tasks: 0, perTask: minPerTask };
  const perTask = Math.max(minPerTask, Math.ceil(items / maxTasks));
  return { tasks: Math.ceil(items / perTask), perTask };
}

/** Items [start, end) run by array task `task`. */
export function taskItems(task: number, p: Packing, items: number): [number, number] {
  const start = task * p.perTask;
  return [Math.min(start, items), Math.min(items, start + p.perTask)];
}

/** The `--array=` value for a packing, with an optional `%limit` on concurrently running tasks. */
export function arraySpec(p: Packing, maxRunning?: number): string {
  if (p.tasks < 1) throw new RangeError('arraySpec: no tasks');
  return `0-${p.tasks - 1}${maxRunning && maxRunning > 0 ? `%${Math.floor(maxRunning)}` : ''}`;
}
