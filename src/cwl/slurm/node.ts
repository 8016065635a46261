#!/usr/bin/env node
/**
 * The node side of `cwl-run --executor slurm`: one array task runs its block
 * of tool jobs from a batch file on the shared work directory, one after the
 * other, with the same code as a local run (launchHere: spawn, or runProfile
 * for containers). Container images come from the shared store (pulled on
 * the submit side); each node builds the rootfs once in its own rootfs
 * directory (imageRootfs: O_EXCL lock + rename, no flock), so N tasks on a
 * node extract once. Every job's result is written atomically to
 * item-<i>.json next to the batch file; a job without a result file failed
 * with its task (the driver reads the task's Slurm state).
 *
 * Staging: inputs and the outdir stay on the shared work directory; each
 * job's tmpdir is node-local (a fresh directory under --slurm-node-tmp, else
 * the job's $TMPDIR, else /tmp), removed after the job. A container sees it
 * at /tmp as before (the tmpdir bind is re-pointed); a process job's shared
 * tmpdir path becomes a symlink to it for the job's duration, so
 * $(runtime.tmpdir) on its command line still works.
 *
 *   node node.js BATCH.json [TASK]     (TASK defaults to $SLURM_ARRAY_TASK_ID)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { taskItems } from './pack.js';
import { resultPath, type BatchFile, type ItemResult } from './batch.js';
import type { ExecOptions } from '../tool.js';
import { localTmp, nodeTmpBase } from './staging.js';
import type { Context } from '../../cli/context.js';

function writeResult(batchDir: string, id: string, r: ItemResult): void {
  const p = resultPath(batchDir, id);
  const tmp = `${p}.tmp.${os.hostname()}.${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(r) + '\n');
  fs.renameSync(tmp, p);
}

async function main(): Promise<number> {
  const [file, taskArg] = process.argv.slice(2);
  if (!file) { process.stderr.write('usage: node.js BATCH.json [TASK]\n'); return 2; }
  const batch = JSON.parse(fs.readFileSync(file, 'utf8')) as BatchFile;
  const dir = path.dirname(path.resolve(file));
  const task = Number(taskArg ?? process.env.SLURM_ARRAY_TASK_ID ?? 0);
  const [start, end] = taskItems(task, { tasks: batch.tasks, perTask: batch.perTask }, batch.items.length);
  const host = os.hostname();
  const jobTag = process.env.SLURM_ARRAY_JOB_ID ? `${process.env.SLURM_ARRAY_JOB_ID}_${process.env.SLURM_ARRAY_TASK_ID}` : (process.env.SLURM_JOB_ID ?? `pid ${process.pid}`);
  const where = `${host}, Slurm job ${jobTag}`;
  const mine = batch.items.slice(start, end);
  const say = (m: string): void => { process.stderr.write(`cwl-run node ${host} task ${task}: ${m}\n`); };

  // ResourceRequirement tmpdirSize against the node-local disk that holds the tmpdirs (the outdir is on the shared work dir).
  const tmp = nodeTmpBase(batch.nodeTmp);
  const need = Math.max(0, ...mine.map((it) => it.spec.tmpdirMB || 0));
  let availMB = Infinity;
  try { const st = fs.statfsSync(tmp); availMB = Math.floor((st.bavail * st.bsize) / 2 ** 20); } catch (e) { say(`cannot stat ${tmp}: ${(e as Error).message}`); }
  if (availMB < need) {
    const message = `node ${host}: ${tmp} (node-local tmpdir) has ${availMB} MiB free, the tool asks for ${need} MiB (ResourceRequirement tmpdirMin)`;
    say(message);
    for (const it of mine) writeResult(dir, it.id, { exitCode: 1, message, where, seconds: 0 });
    return 1;
  }

  const { makeContext } = await import('../../cli/context.js');
  const { launchHere } = await import('../launch.js');
  const { describeError } = await import('../../errors.js');
  const ctx: Context = makeContext({ storeDir: batch.storeDir, configDir: batch.configDir, quiet: true, debug: batch.debug, argv0: 'cwl-run' });
  const opts = { ctx, engine: batch.engine, log: say, debug: (m: string) => { if (batch.debug) say(m); } } as unknown as ExecOptions;
  const rootfsOf = new Map<string, Promise<{ path: string; how: 'reused' | 'waited' }>>();
  const nodeRootfs = (name: string, id: string): Promise<{ path: string; how: 'reused' | 'waited' }> => {
    let p = rootfsOf.get(id);
    if (!p) {
      p = (async () => {
        const { openStore } = await import('../../image/store.js');
        const { findImage } = await import('../../image/index.js');
        const { imageRootfs, rootfsDir } = await import('../../rootfs/index.js');
        const store = openStore(ctx.storeDir);
        const image = findImage(store, name) ?? findImage(store, id);
        if (!image) throw new Error(`image ${name} (${id}) is not in the store ${ctx.storeDir} as seen from ${host}`);
        const final = path.join(rootfsDir(ctx), image.ref.digest.replace(/^sha256:/, ''), 'rootfs');
        const had = fs.existsSync(final);
        const t0 = Date.now();
        // debug on for this call only: the one task that extracts says so in its log
        const rootfs = await imageRootfs({ ...ctx, debug: true }, image);
        const how = had ? 'reused' : 'waited';
        say(`rootfs of ${name}: ${rootfs} (${had ? 'present' : `ready after ${Date.now() - t0} ms`})`);
        return { path: rootfs, how };
      })();
      rootfsOf.set(id, p);
    }
    return p;
  };

  // scancel / Slurm time limit: SIGTERM reaches this process and the tool's at once. Items ended by
  // it get no result file, so the driver reports the task's Slurm state (CANCELLED, TIMEOUT, ...).
  let terminated = false;
  let current: { done: () => void } | undefined; // the running job's node-local tmpdir
  process.on('SIGTERM', () => { terminated = true; setTimeout(() => { current?.done(); process.exit(143); }, 100); });
  let failed = 0;
  for (const it of mine) {
    if (terminated) break;
    if (fs.existsSync(resultPath(dir, it.id))) continue; // already ran (a rerun of this task)
    const t0 = performance.now();
    let r: ItemResult;
    try {
      let how: ItemResult['rootfs'];
      if (it.spec.container) {
        const rf = await nodeRootfs(it.spec.container.spec.image, it.spec.container.spec.imageId);
        it.spec.container.spec.rootfs = rf.path;
        how = rf.how;
      }
      const local = localTmp(it.spec, tmp);
      current = local;
      let res: Awaited<ReturnType<typeof launchHere>>;
      try {
        if (batch.debug && local) say(`${it.spec.label}: tmpdir ${local.dir}`);
        res = await launchHere(it.spec, opts);
      } finally { current = undefined; local?.done(); }
      r = { ...res, where, seconds: (performance.now() - t0) / 1000, rootfs: how };
      // some engines report the time-limit kill as their own exit status (proot: 255)
      if (res.exitCode !== 0 && it.spec.timeLimitSec > 0 && r.seconds >= it.spec.timeLimitSec) r.exitCode = -1;
      if (r.exitCode === -1) r.message = `time limit of ${it.spec.timeLimitSec}s exceeded (ToolTimeLimit, on ${host})`;
    } catch (e) {
      r = { exitCode: 1, message: `could not run on ${host}: ${describeError(e)}`, where, seconds: (performance.now() - t0) / 1000 };
    }
    if (r.exitCode !== 0) {
      failed++;
      // killed with us? then let the driver read the Slurm state instead
      await new Promise((res) => setTimeout(res, 200));
      if (terminated) break;
    }
    writeResult(dir, it.id, r);
  }
  if (batch.debug) say(`${mine.length} job(s) done, ${failed} non-zero`);
  return 0;
}

main().then((c) => { process.exitCode = c; }, (e) => {
  process.stderr.write(`cwl-run node: ${(e as Error)?.stack ?? e}\n`);
  process.exitCode = 1;
});
