import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * The expression process: CWL JavaScript expressions that are not simple
 * (expr-simple.ts) run in a separate node process (expr-child.ts) with a
 * heap limit, reached through a thread (expr-guard.ts) that enforces the
 * time limit; cwl-run's main thread waits for each reply (Atomics.wait on a
 * shared buffer), so evaluation stays synchronous. One process serves every
 * expression of the run; it starts on the first such expression (~50 ms) and
 * is replaced after any failed one. A runaway expression therefore ends as
 * one error, never as a hung, crashed or aborted cwl-run.
 *
 * The files are tsc's dist/src/cwl/expr-{guard,child}.js: beside this
 * module, or seen from the CLI bundles in dist/bundle/.
 */
export const limits = {
  /** Per expression (cwl-run --eval-timeout SECONDS; cwltool's default is 60 s too). */
  timeoutMs: 60_000,
  /** The expression process's V8 heap (--max-old-space-size). */
  memoryMb: 1024,
};

export type Outcome =
  | { kind: 'ok'; json: string | undefined }
  | { kind: 'error'; message: string };

/** How long the main thread waits beyond the time limit for the guard itself (process start, kill). */
const GUARD_SLACK_MS = 15_000;

function here(name: string): string {
  const at = (p: string) => fileURLToPath(new URL(p, import.meta.url));
  const candidates = [`./${name}`, `../src/cwl/${name}`].map(at);
  return candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
}

let guard: { worker: Worker; sab: SharedArrayBuffer; i32: Int32Array } | undefined;

function startGuard(): NonNullable<typeof guard> {
  // growable (ES2024; node 20 has it, the TypeScript lib here does not): the guard grows it for a large result
  const Growable = SharedArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => SharedArrayBuffer;
  const sab = new Growable(1 << 16, { maxByteLength: 1 << 30 });
  const worker = new Worker(here('expr-guard.js'), { workerData: { sab, child: here('expr-child.js'), memoryMb: limits.memoryMb }, env: {}, stdout: false, stderr: false });
  worker.unref();
  worker.on('error', () => { if (guard?.worker === worker) guard = undefined; });
  worker.on('exit', () => { if (guard?.worker === worker) guard = undefined; });
  return { worker, sab, i32: new Int32Array(sab, 0, 2) };
}

/** Stop the expression process and its thread (a later expression starts new ones). */
export function stopSandbox(): void {
  const g = guard;
  guard = undefined;
  if (g) void g.worker.terminate();
}

export function evaluateInSandbox(lib: string[], code: string, json: string, timeoutMs = limits.timeoutMs): Outcome {
  const g = guard ?? (guard = startGuard());
  const seen = Atomics.load(g.i32, 0);
  g.worker.postMessage({ lib, code, json, timeoutMs });
  if (Atomics.wait(g.i32, 0, seen, timeoutMs + GUARD_SLACK_MS) === 'timed-out') {
    stopSandbox();
    return { kind: 'error', message: timeLimit(timeoutMs) };
  }
  const n = Atomics.load(g.i32, 1);
  const text = Buffer.from(g.sab, 8, n).toString('utf8');
  const rest = text.slice(1);
  switch (text[0]) {
    case 'o': return { kind: 'ok', json: rest };
    case 'u': return { kind: 'ok', json: undefined };
    case 'e': return { kind: 'error', message: rest };
    case 'r': return { kind: 'error', message: `unhandled promise rejection: ${rest}` };
    case 't': return { kind: 'error', message: timeLimit(timeoutMs) };
    case 'm': return { kind: 'error', message: `memory limit of ${limits.memoryMb} MB exceeded` };
    default: return { kind: 'error', message: rest || 'the expression process failed' };
  }
}

function timeLimit(ms: number): string {
  return `time limit of ${ms / 1000} s exceeded (cwl-run --eval-timeout SECONDS)`;
}
