import { createRequire } from 'node:module';

/**
 * Built-in modules that the `run` path does not need, loaded on first use:
 * node:crypto and node:stream cost ~5 ms of start-up each, paid by every
 * container step.
 */
const load = createRequire(import.meta.url);

export function crypto(): typeof import('node:crypto') {
  return load('node:crypto') as typeof import('node:crypto');
}

export function readline(): typeof import('node:readline/promises') {
  return load('node:readline/promises') as typeof import('node:readline/promises');
}

export function stream(): typeof import('node:stream') {
  return load('node:stream') as typeof import('node:stream');
}

/**
 * import() of an ES-module-only package (execa). The CLI bundle runs inside a
 * vm.Script (for V8's code cache, src/cli/bin.ts), where import() is not
 * available: there the loader lends its own.
 */
export function importModule<T>(spec: string): Promise<T> {
  const lent = (globalThis as Record<symbol, unknown>)[Symbol.for('userdock.import')] as ((s: string) => Promise<unknown>) | undefined;
  return (lent ? lent(spec) : import(spec)) as Promise<T>;
}

/**
 * require() of a CommonJS package, from its bundled copy beside the CLI
 * (dist/bundle/NAME.cjs, compiled with a code cache by the loader) when
 * there is one, else from node_modules.
 */
export function requirePackage<T>(name: string): T {
  return (requireBundled<T>(name) ?? load(name)) as T;
}

/** The bundled copy dist/bundle/NAME.cjs only (undefined outside the CLI bundle, or when there is none). */
export function requireBundled<T>(name: string): T | undefined {
  const lent = (globalThis as Record<symbol, unknown>)[Symbol.for('userdock.requirePackage')] as ((n: string) => unknown) | undefined;
  return lent?.(name) as T | undefined;
}

/**
 * Random hex digits for temporary names. Uniqueness only, not secrecy: every
 * such name is created with O_EXCL/mkdir or renamed into place, and carries
 * the pid.
 */
export function randomHex(bytes: number): string {
  let s = '';
  while (s.length < bytes * 2) s += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return s.slice(0, bytes * 2);
}

let gcFn: ((o?: { type?: 'major' | 'minor' }) => void) | null | undefined;

/**
 * A minor (young generation) garbage collection, where the engine allows it.
 * Every socket read allocates a fresh 64 KiB buffer, and a download makes
 * so few JS objects that no collection runs for tens of megabytes: each read
 * lands in untouched memory (~9,500 page faults for the 38 MB deb2 pull
 * here, ~10 ms of kernel time). A minor collection every few MiB frees the
 * spent buffers for reuse (~4,200 faults). The function is V8's `gc`,
 * taken from a fresh context made while --expose-gc is set.
 */
export function minorGc(): void {
  if (gcFn === undefined) {
    const v8 = load('node:v8') as typeof import('node:v8');
    try {
      v8.setFlagsFromString('--expose-gc');
      gcFn = (load('node:vm') as typeof import('node:vm')).runInNewContext('gc') as typeof gcFn;
      if (typeof gcFn !== 'function') gcFn = null;
    } catch { gcFn = null; }
    // Later contexts (CWL expressions) get no `gc`, and V8's flag hash is as
    // before, so code caches loaded later still match.
    try { v8.setFlagsFromString('--no-expose-gc'); } catch { /* kept */ }
  }
  gcFn?.({ type: 'minor' });
}
