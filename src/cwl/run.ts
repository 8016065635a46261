import fs from 'node:fs';
import path from 'node:path';
import { UserError, EXIT } from '../errors.js';
import { type Json, type Process, ValidationError } from './load.js';
import { runCommandLineTool, makeEvaluator, mkTemp, evalResources, type ExecOptions, type ExecResult } from './tool.js';
import { buildInputs } from './inputs.js';
import { finishOutputObject } from './outputs.js';
import { mapFiles } from './files.js';
import { matches, describeType } from './types.js';

/**
 * Process dispatch. CommandLineTool and ExpressionTool are built in; a
 * Workflow executor registers itself with `registerExecutor('Workflow', fn)`
 * (src/cwl/workflow.ts) and is loaded lazily when present.
 */
export type Executor = (proc: Process, job: Json, jobDir: string, opts: ExecOptions) => Promise<ExecResult>;

const executors = new Map<string, Executor>([
  ['CommandLineTool', runCommandLineTool],
  ['ExpressionTool', runExpressionTool],
]);

export function registerExecutor(cls: string, fn: Executor): void { executors.set(cls, fn); }

export async function executeProcess(proc: Process, job: Json, jobDir: string, opts: ExecOptions): Promise<ExecResult> {
  let fn = executors.get(proc.class);
  if (!fn && proc.class === 'Workflow') {
    // Loaded on first use: a CommandLineTool run never pays for the workflow engine.
    registerExecutor('Workflow', (await import('./workflow.js')).runWorkflow);
    fn = executors.get(proc.class);
  }
  if (!fn) {
    if (proc.class === 'Operation') throw new UserError(`${proc.file}: an Operation is abstract and cannot be run`, EXIT.unsupported);
    throw new UserError(`${proc.file}: running a ${proc.class} is not supported yet`, EXIT.unsupported);
  }
  return fn(proc, job, jobDir, opts);
}

export async function runExpressionTool(proc: Process, job: Json, jobDir: string, opts: ExecOptions): Promise<ExecResult> {
  const ev = makeEvaluator(proc);
  const outHost = mkTemp(opts.tmpOutdirPrefix);
  const tmpHost = mkTemp(opts.tmpdirPrefix);
  const runtime: Json = { outdir: outHost, tmpdir: tmpHost };
  const inputs = buildInputs({ proc, ev, scratch: tmpHost, runtime }, job, jobDir);
  Object.assign(runtime, evalResources(proc, ev, inputs, runtime));
  const expr = proc.raw.expression;
  if (typeof expr !== 'string') throw new ValidationError(`${proc.file}: ExpressionTool needs an "expression"`);
  const res = ev.eval(expr, { inputs, self: null, runtime });
  if (!res || typeof res !== 'object' || Array.isArray(res)) {
    throw new UserError(`${proc.file}: the expression must return an object (got ${JSON.stringify(res)?.slice(0, 100)})`, EXIT.fail);
  }
  const output: Json = {};
  for (const p of proc.outputs) {
    let v = (res as Json)[p.id] ?? null;
    v = resolveRelative(v, outHost);
    v = finishOutputObject(v, outHost);
    if (!matches(p.type, v, proc) && !(p.type === 'Any' && v === null)) throw new UserError(`output "${p.id}": expected ${describeType(p.type)}, got ${JSON.stringify(v)?.slice(0, 200)}`, EXIT.fail);
    output[p.id] = v;
  }
  return { status: 'success', output, outdir: outHost };
}

function resolveRelative(v: Json, base: string): Json {
  return mapFiles(v, (o) => {
    const loc = o.location ?? o.path;
    if (typeof loc === 'string' && !loc.startsWith('file://') && !path.isAbsolute(loc)) { o.path = path.resolve(base, loc); delete o.location; }
    else if (typeof loc === 'string' && loc.startsWith('file://')) { o.path = decodeURIComponent(loc.slice(7)); }
  });
}

export function removeQuietly(p: string): void {
  try { fs.rmSync(p, { recursive: true, force: true }); } catch { /* */ }
}
