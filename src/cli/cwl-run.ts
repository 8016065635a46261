#!/usr/bin/env node
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VERSION } from '../version.js';
import { UserError, UsageError, EXIT, describeError, diskFull, readFailure } from '../errors.js';
import { makeContext } from './context.js';
import { checkStoreUnderProot } from '../engines/nested.js';
import { loadProcess, parseYaml, toPath, type Json, type Process, type Requirement } from '../cwl/load.js';
import { executeProcess } from '../cwl/run.js';
import { relocateOutputs } from '../cwl/outputs.js';
import { tempDirs, type ExecOptions } from '../cwl/tool.js';
import { resolveLocations } from '../cwl/inputs.js';
import { validateWithCwlTsAuto } from '../cwl/validate.js';
import { parseCli, parseToolArgs, toolHelp, toJson } from '../cwl/cli-args.js';
import { limits as exprLimits } from '../cwl/expr-sandbox.js';
import { findDeps } from '../cwl/deps.js';
import { makeTemplate } from '../cwl/template.js';
import { printDot } from '../cwl/dot.js';
import { packProcess } from '../cwl/pack.js';

const USAGE = `usage: cwl-run [options] PROCESS [JOB] [--INPUT VALUE ...]

Run a CWL v1.2 CommandLineTool, ExpressionTool or Workflow (v1.0/v1.1 upgraded in memory).
Prints the output object as JSON on stdout; logs go to stderr.

options:
  --outdir DIR            final output directory (default: current directory)
  --tmpdir-prefix PREFIX  prefix for temporary directories
  --tmp-outdir-prefix P   prefix for intermediate output directories
  --basedir DIR           base directory for relative paths in the job
  --quiet                 only warnings and errors on stderr
  --debug                 extra diagnostics
  --validate              validate PROCESS and exit
  --print-deps            print PROCESS's dependencies (JSON, as cwltool) and exit;
                          --relative-deps primary|cwd: paths relative to PROCESS's
                          directory (default) or the current directory
  --make-template         print a YAML job template for PROCESS's inputs and exit
  --print-dot             print the workflow graph (Graphviz DOT) and exit
  --pack                  print PROCESS and everything it runs as one JSON document
                          ($graph, as cwltool --pack) and exit
  --no-container          ignore DockerRequirement, run on the host
  --default-container IMG image for tools without DockerRequirement
  --engine ID             userdock engine to use for containers
  --disable-pull          never contact a registry: images must be in the store
  --force-docker-pull     pull dockerPull images even when they are in the store
  --parallel[=N], -j N    run up to N workflow jobs at once (default: core count)
  --on-error stop|continue  after a failed workflow step: start nothing new (stop,
                          default) or run every step not depending on it; what
                          finished is left in OUTDIR/cwl-run.partial/
  --cachedir DIR          reuse outputs of identical earlier runs
  --eval-timeout SECONDS  time limit of one JavaScript expression (default 60)
  --executor local|slurm  where tool jobs run (default local); with slurm, jobs
                          arriving together become one sbatch --array
  --slurm-partition P, --slurm-account A, --slurm-extra "ARGS"  passed to sbatch
  --slurm-workdir DIR     shared work dir (default OUTDIR/.cwl-run-slurm); holds
                          job scripts, logs and the job cache (restart = reuse)
  --slurm-retries N       resubmit after NODE_FAIL/PREEMPTED/BOOT_FAIL (default 2)
  --slurm-node-tmp DIR    node-local directory for the tools' tmpdirs (default:
                          the job's $TMPDIR, else /tmp); inputs and outputs stay
                          on the shared work dir
  --version               print the version
PROCESS --help lists the tool's inputs as options. Other cwltool flags are refused
by name (exit 2) or, where they only tune cwltool, accepted: see docs/cwl-run.md.
exit status: 0 success, 1 permanentFail, 2 usage, 33 unsupported requirement`;

function loadJob(ref: string | undefined): { job: Json; dir: string; reqs: Requirement[] } {
  if (!ref) return { job: {}, dir: process.cwd(), reqs: [] };
  let text: string; let file: string;
  if (ref === '-') { text = fs.readFileSync(0, 'utf8'); file = path.join(process.cwd(), '<stdin>'); }
  else {
    file = toPath(ref);
    try { text = fs.readFileSync(file, 'utf8'); } catch (e) { throw new UserError(`cannot read job file ${file}: ${readFailure(e)}`, EXIT.fail); }
  }
  const job = parseYaml(text, file) ?? {};
  if (typeof job !== 'object' || Array.isArray(job)) throw new UserError(`${file}: the job must be a mapping of input names to values`, EXIT.fail);
  const reqs: Requirement[] = [];
  for (const k of ['cwl:requirements', 'https://w3id.org/cwl/cwl#requirements', 'requirements']) {
    if (Array.isArray(job[k])) { reqs.push(...job[k]); delete job[k]; }
  }
  delete job.$namespaces; delete job.$schemas;
  return { job, dir: path.dirname(file), reqs };
}

function parseJobs(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`cwl-run: --parallel/-j needs a positive number (got ${v})`);
  return n;
}

function parseOnError(v: string | undefined): 'stop' | 'continue' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'stop' && v !== 'continue') throw new UsageError(`cwl-run: --on-error must be stop or continue (got ${v})`);
  return v;
}

function parseEvalTimeout(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = Number(v);
  if (!(s > 0) || !Number.isFinite(s)) throw new UsageError(`cwl-run: --eval-timeout needs a number of seconds > 0 (got ${v})`);
  return Math.ceil(s * 1000);
}

function parseExecutor(o: ReturnType<typeof parseCli>): { workdir: string; partition?: string; account?: string; extra: string[]; retries: number; nodeTmp?: string } | undefined {
  const ex = o.executor ?? 'local';
  if (ex !== 'local' && ex !== 'slurm') throw new UsageError(`cwl-run: --executor must be local or slurm (got ${ex})`);
  if (ex === 'local') {
    if (o.slurmPartition || o.slurmAccount || o.slurmExtra || o.slurmWorkdir || o.slurmRetries || o.slurmNodeTmp) throw new UsageError('cwl-run: --slurm-* options need --executor slurm');
    return undefined;
  }
  const retries = o.slurmRetries === undefined ? 2 : Number(o.slurmRetries);
  if (!Number.isInteger(retries) || retries < 0) throw new UsageError(`cwl-run: --slurm-retries needs a number >= 0 (got ${o.slurmRetries})`);
  const workdir = path.resolve(o.slurmWorkdir ?? path.join(o.outdir ?? process.cwd(), '.cwl-run-slurm'));
  fs.mkdirSync(workdir, { recursive: true });
  return { workdir, partition: o.slurmPartition, account: o.slurmAccount, extra: (o.slurmExtra ?? '').split(/\s+/).filter(Boolean), retries,
    nodeTmp: o.slurmNodeTmp === undefined ? undefined : path.resolve(o.slurmNodeTmp) };
}

export async function main(argv: string[]): Promise<number> {
  const o = parseCli(argv);
  const evalTimeoutMs = parseEvalTimeout(o.evalTimeout);
  if (evalTimeoutMs !== undefined) exprLimits.timeoutMs = evalTimeoutMs;
  if (o.version) { process.stdout.write(`cwl-run ${VERSION}\n`); return 0; }
  if (o.help) { process.stdout.write(USAGE + '\n'); return 0; }
  if (o.positional.length < 1) throw new UsageError('cwl-run: missing PROCESS', "see 'cwl-run --help'");
  const ctx = makeContext({ quiet: o.quiet, debug: o.debug, argv0: 'cwl-run' });
  const log = (m: string): void => { if (!o.quiet) process.stderr.write(m + '\n'); };
  const error = (m: string): void => { process.stderr.write(m + '\n'); };
  const dbg = (m: string): void => { if (o.debug) process.stderr.write(`debug: ${m}\n`); };
  const { job: jobObj, dir: jobDir0, reqs } = loadJob(o.positional[1]);
  const proc = loadProcess(o.positional[0], { inheritedRequirements: reqs });
  if (o.toolArgs.some((a) => a === '--help' || a === '-h') && !proc.inputs.some((p) => p.id === 'help' || p.id === 'h')) {
    process.stdout.write(toolHelp(proc, path.basename(o.positional[0])));
    return 0;
  }
  if (o.printDeps) { process.stdout.write(JSON.stringify(findDeps(toPath(o.positional[0]), o.relativeDeps as 'primary' | 'cwd' | undefined), null, 4) + '\n'); return 0; }
  if (o.makeTemplate) { process.stdout.write(makeTemplate(proc)); return 0; }
  if (o.printDot) { process.stdout.write(printDot(proc)); return 0; }
  if (o.pack) { process.stdout.write(JSON.stringify(packProcess(o.positional[0]), null, 4) + '\n'); return 0; }
  if (o.validate) {
    await validateWithCwlTsAuto(proc, dbg);
    process.stdout.write(`${o.positional[0]} is valid CWL.\n`);
    return 0;
  }
  // Schema validation (cwl-ts-auto, v1.2 documents): errors name file:line and stop the run.
  // Workflows: cwl-ts-auto rejects some valid workflow documents (secondaryFiles on workflow inputs); cwl-run's loader checks them.
  await validateWithCwlTsAuto(proc, dbg, proc.class === 'Workflow');
  const jobDir = o.basedir ? path.resolve(o.basedir) : jobDir0;
  const cliInputs = resolveLocations(parseToolArgs(proc, o.toolArgs, process.cwd()), process.cwd());
  const job = { ...resolveLocations(jobObj, jobDir), ...cliInputs };
  const slurm = parseExecutor(o);
  const tmpBase = slurm ? path.join(slurm.workdir, 'tmp') : os.tmpdir();
  const opts: ExecOptions = {
    ctx,
    tmpdirPrefix: path.resolve(o.tmpdirPrefix ?? path.join(tmpBase, 'cwlrun-tmp-')),
    tmpOutdirPrefix: path.resolve(o.tmpOutdirPrefix ?? path.join(tmpBase, 'cwlrun-out-')),
    noContainer: o.noContainer,
    defaultContainer: o.defaultContainer,
    engine: o.engine,
    pull: o.pull,
    cachedir: o.cachedir ? path.resolve(o.cachedir) : slurm ? path.join(slurm.workdir, 'cache') : undefined,
    log, error, debug: dbg,
    parallel: parseJobs(o.jobs),
    onError: parseOnError(o.onError),
    outdir: path.resolve(o.outdir ?? process.cwd()),
  };
  checkStoreUnderProot(ctx.storeDir, [
    { dir: path.dirname(opts.tmpdirPrefix), what: 'temporary directory', fix: 'set TMPDIR (or --tmpdir-prefix, --tmp-outdir-prefix) to a directory bound at the same path inside as outside' },
    { dir: opts.outdir ?? process.cwd(), what: 'output directory', fix: 'use an --outdir bound at the same path inside as outside' }]);

  let stopSlurm: (() => void) | undefined;
  if (slurm) {
    const { SlurmLauncher } = await import('../cwl/slurm/launcher.js');
    const launcher = new SlurmLauncher({ ...slurm, throttle: opts.parallel, log, debug: dbg });
    opts.launcher = launcher;
    // every job of a scatter is handed to the launcher at once (it batches them); --parallel N throttles the array
    opts.parallel = 1_000_000;
    // SIGINT/SIGTERM: scancel everything submitted, leave nothing queued
    const onSignal = (sig: NodeJS.Signals): void => {
      log(`cwl-run: ${sig}: cancelling Slurm jobs`);
      launcher.cancelAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    };
    process.once('SIGINT', onSignal); process.once('SIGTERM', onSignal);
    stopSlurm = () => { launcher.close(); process.removeListener('SIGINT', onSignal); process.removeListener('SIGTERM', onSignal); };
  }
  try {
    const res = await executeProcess(proc, job, jobDir, opts);
    if (res.status !== 'success') {
      process.stdout.write('{}\n');
      error(`Final process status is ${res.status}`);
      return EXIT.fail;
    }
    const outdir = path.resolve(o.outdir ?? process.cwd());
    const final = relocateOutputs(res.output, outdir, tempDirs);
    process.stdout.write(toJson(final) + '\n');
    log('Final process status is success');
    return 0;
  } finally {
    stopSlurm?.();
    for (const d of tempDirs) {
      try { fs.chmodSync(d, 0o700); } catch { /* */ }
      fs.rmSync(d, { recursive: true, force: true });
    }
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (thrown) => {
  const err = diskFull(thrown, 'the output directory, tmpdir or image store', 'choose other places: --outdir, --tmpdir-prefix, --tmp-outdir-prefix, USERDOCK_DIR') ?? thrown;
  // usage errors already start with "cwl-run: "
  process.stderr.write(`${describeError(err).replace(/^(?!cwl-run: )/, 'cwl-run: ')}\n`);
  if (process.env.CWL_RUN_DEBUG || process.argv.includes('--debug')) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  process.exitCode = err instanceof UserError ? err.exitCode : EXIT.fail;
});
