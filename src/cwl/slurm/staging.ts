import fs from 'node:fs';
import path from 'node:path';
import type { LaunchSpec } from '../launch.js';

/**
 * Node-side staging for `cwl-run --executor slurm` (node.ts): inputs and the
 * outdir stay on the shared work directory, each job's tmpdir is node-local.
 */

/** Where node-local tmpdirs go: --slurm-node-tmp, else the job's $TMPDIR, else /tmp. */
export function nodeTmpBase(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return configured || env.TMPDIR || '/tmp';
}

function rmTree(d: string): void {
  // a tool may leave read-only directories behind
  try { fs.rmSync(d, { recursive: true, force: true }); return; } catch { /* chmod and retry */ }
  const walk = (p: string): void => {
    try { fs.chmodSync(p, 0o700); for (const n of fs.readdirSync(p, { withFileTypes: true })) if (n.isDirectory()) walk(path.join(p, n.name)); } catch { /* */ }
  };
  walk(d);
  fs.rmSync(d, { recursive: true, force: true });
}

/**
 * Give the job a fresh node-local tmpdir under `base` in place of the one the driver made on the shared
 * work dir: a container's tmpdir bind (host side of the bind at $TMPDIR, i.e. /tmp) is re-pointed; for a
 * process job, whose command line may name the shared path, that (empty) path becomes a symlink to the
 * local one until done(). Returns undefined when the spec has no tmpdir of its own.
 */
export function localTmp(spec: LaunchSpec, base: string): { dir: string; done: () => void } | undefined {
  const want = spec.env.TMPDIR;
  if (!want) return undefined;
  fs.mkdirSync(base, { recursive: true });
  if (spec.container) {
    const b = spec.container.binds.find((x) => x.container === want && !x.readonly);
    if (!b) return undefined;
    const dir = fs.mkdtempSync(path.join(base, 'cwl-run-tmp-'));
    b.host = dir;
    return { dir, done: () => rmTree(dir) };
  }
  let st: fs.Stats;
  try { st = fs.lstatSync(want); } catch { return undefined; }
  if (!st.isDirectory() || fs.readdirSync(want).length) return undefined;
  const dir = fs.mkdtempSync(path.join(base, 'cwl-run-tmp-'));
  try { fs.rmdirSync(want); fs.symlinkSync(dir, want); } catch { rmTree(dir); return undefined; }
  return {
    dir,
    done: () => {
      rmTree(dir);
      try { fs.unlinkSync(want); fs.mkdirSync(want, { mode: 0o700 }); } catch { /* the driver removes it */ }
    },
  };
}

