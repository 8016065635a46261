/**
 * The dataflow scheduler of cwl-run workflows: a node starts as soon as all
 * its dependencies have finished, independent nodes run concurrently, and
 * leaf jobs (tools) share one Limiter of `--parallel` slots. Workflows and
 * scatters never hold a slot while waiting, so nesting cannot deadlock.
 */
export class Limiter {
  private active = 0;
  private waiters: (() => void)[] = [];
  constructor(public readonly limit: number) {}
  get running(): number { return this.active; }
  async acquire(): Promise<void> {
    if (this.active < this.limit) { this.active++; return; }
    await new Promise<void>((r) => this.waiters.push(r));
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w(); else this.active--;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try { return await fn(); } finally { this.release(); }
  }
}

export interface GraphNode { id: string; deps: string[] }
export type OnError = 'stop' | 'continue';
export interface GraphResult { done: string[]; failed: { id: string; error: unknown }[]; notRun: string[] }

/**
 * Run every node once its deps are done. On a failure: 'stop' starts
 * nothing new (running nodes finish or are stopped by the caller through
 * `onFailure`); 'continue' keeps running everything not downstream of it.
 */
export async function runGraph(nodes: GraphNode[], run: (id: string) => Promise<void>, opts: { onError: OnError; onFailure?: (id: string, error: unknown) => void } = { onError: 'stop' }): Promise<GraphResult> {
  const ids = new Set(nodes.map((n) => n.id));
  for (const n of nodes) for (const d of n.deps) if (!ids.has(d)) throw new Error(`node ${n.id} depends on unknown node ${d}`);
  const waiting = new Map(nodes.map((n) => [n.id, new Set(n.deps)]));
  const dependants = new Map<string, string[]>();
  for (const n of nodes) for (const d of new Set(n.deps)) { if (!dependants.has(d)) dependants.set(d, []); dependants.get(d)!.push(n.id); }
  const done: string[] = [];
  const failed: { id: string; error: unknown }[] = [];
  const blocked = new Set<string>();
  let stopping = false;
  let inflight = 0;
  return new Promise<GraphResult>((resolve) => {
    const finish = (): void => {
      const notRun = nodes.map((n) => n.id).filter((id) => waiting.has(id));
      resolve({ done, failed, notRun });
    };
    const block = (id: string): void => {
      for (const d of dependants.get(id) ?? []) if (!blocked.has(d)) { blocked.add(d); block(d); }
    };
    const pump = (): void => {
      if (!stopping) {
        for (const [id, deps] of [...waiting]) {
          if (deps.size === 0 && !blocked.has(id)) {
            waiting.delete(id);
            inflight++;
            Promise.resolve().then(() => run(id)).then(() => {
              done.push(id);
              for (const d of dependants.get(id) ?? []) waiting.get(d)?.delete(id);
            }, (error) => {
              failed.push({ id, error });
              block(id);
              if (opts.onError === 'stop') stopping = true;
              opts.onFailure?.(id, error);
            }).finally(() => { inflight--; pump(); });
          }
        }
      }
      if (inflight === 0) finish();
    };
    pump();
  });
}

/** Nodes in a cycle (empty when the graph is a DAG). */
export function findCycle(nodes: GraphNode[]): string[] {
  const state = new Map<string, number>();
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    const s = state.get(id);
    if (s === 2) return undefined;
    if (s === 1) return stack.slice(stack.indexOf(id));
    state.set(id, 1); stack.push(id);
    for (const d of byId.get(id)?.deps ?? []) { const c = visit(d); if (c) return c; }
    stack.pop(); state.set(id, 2);
    return undefined;
  };
  for (const n of nodes) { const c = visit(n.id); if (c) return c; }
  return [];
}
