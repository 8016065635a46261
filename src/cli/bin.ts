/**
 * What `userdock`, `cwl-run` and the Slurm node script start (dist/bundle/NAME.cjs):
 * it runs the bundle beside it, NAME.code.cjs, compiled with V8's code
 * cache NAME.code.cache when that cache was made from this very file by
 * this very node. Parsing and compiling the bundle is ~10 ms of every start,
 * and every container step of a CWL run is a start. A missing, stale or
 * rejected cache only costs that time back.
 *
 * Packages bundled beside it (dist/bundle/PKG.cjs: cwl-ts-auto, whose
 * hundreds of files cost ~100 ms to resolve and compile) are lent to the
 * code the same way (src/lazy.ts requirePackage).
 *
 * The build makes the caches (src/build/code-cache.ts): it runs each
 * command once with USERDOCK_CODE_CACHE=write, so the cache holds the
 * functions that command compiled (USERDOCK_CODE_CACHE=write:NAME writes
 * only the cache of dist/bundle/NAME.cjs).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

declare const __filename: string;

const cacheMode = process.env.USERDOCK_CODE_CACHE;

/** Run the CommonJS file `file` (X.cjs) compiled with its code cache X.cache; returns its module.exports. */
function runCached(file: string): unknown {
  let source = fs.readFileSync(file, 'utf8');
  if (source.startsWith('#!')) source = '//' + source; // same length and lines: positions in stack traces stay right
  // The cache file: one line naming the code file's size and mtime and node's version, then V8's data.
  const st = fs.statSync(file);
  const stamp = `userdock-code-cache ${st.size} ${st.mtimeMs} ${process.version}\n`;
  const cacheFile = file.replace(/\.cjs$/, '.cache');
  let cachedData: Buffer | undefined;
  try {
    const data = fs.readFileSync(cacheFile);
    const nl = data.indexOf(10);
    if (nl > 0 && data.toString('latin1', 0, nl + 1) === stamp) cachedData = data.subarray(nl + 1);
  } catch { /* no cache: compile from source */ }
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  if (cacheMode === 'write' || cacheMode === `write:${path.basename(file, '.cjs')}`) {
    process.once('exit', () => fs.writeFileSync(cacheFile, Buffer.concat([Buffer.from(stamp, 'latin1'), script.createCachedData()])));
  }
  const mod = { exports: {} as unknown };
  (script.runInThisContext() as (...a: unknown[]) => void)(mod.exports, createRequire(file), mod, file, path.dirname(file));
  return mod.exports;
}

const here = path.dirname(__filename);
const lent = globalThis as Record<symbol, unknown>;
// import() does not work inside a vm.Script: lend ours (src/lazy.ts importModule).
lent[Symbol.for('userdock.import')] = (spec: string) => import(spec);
const packages = new Map<string, unknown>();
lent[Symbol.for('userdock.requirePackage')] = (name: string): unknown => {
  if (!packages.has(name)) {
    const file = path.join(here, `${name}.cjs`);
    packages.set(name, fs.existsSync(file) ? runCached(file) : undefined);
  }
  return packages.get(name);
};
runCached(__filename.replace(/\.cjs$/, '.code.cjs'));
