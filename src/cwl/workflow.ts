import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError, EXIT } from '../errors.js';
import {
  loadProcess, processFromDoc, shortname, getReq, where, ValidationError, UnsupportedError,
  type Json, type Process, type Requirement, type SecondaryFile,
} from './load.js';
import { executeProcess, registerExecutor } from './run.js';
import { makeEvaluator, mkTemp, tempDirs, type ExecOptions, type ExecResult } from './tool.js';
import { buildInputs, resolveLocations } from './inputs.js';
import { finishOutputObject, relocateOutputs } from './outputs.js';
import { readContents, substitute } from './files.js';
import { matches, describeType, pickType } from './types.js';
import { mergeLinks, pickValue, WorkflowError, type LinkMerge, type PickValue } from './wf/links.js';
import { planScatter, shapeResults, runPool, type ScatterMethod } from './scatter.js';
import { Limiter, runGraph, findCycle, type OnError } from './wf/graph.js';
import type { Evaluator } from './expr.js';

/**
 * Workflow execution for cwl-run: the workflow is a dataflow graph of steps.
 * A step starts when every step it takes input from has finished; steps run
 * concurrently; tool jobs (including scatter items) share `--parallel` slots.
 *
 * On failure the workflow fails naming the step; with `--on-error stop` (the
 * default) nothing new starts and running jobs are stopped; with `continue`
 * every step not downstream of the failure still runs. The top-level
 * workflow leaves what finished under `<outdir>/cwl-run.partial/`
 * (`<step>/` outputs, `outputs.json`, and the failed job's directory as
 * `<step>.failed/`).
 */

interface WfOpts extends ExecOptions {
  parallel?: number;
  onError?: OnError;
  outdir?: string;
  signal?: AbortSignal;
}

interface StepIn {
  id: string;
  sources: string[];
  sourceIsList: boolean;
  linkMerge?: LinkMerge;
  pickValue?: PickValue;
  hasDefault: boolean;
  default?: Json;
  valueFrom?: Json;
  loadContents: boolean;
}

interface Step {
  id: string;
  raw: Json;
  ins: StepIn[];
  outs: string[];
  run: Process;
  scatter: string[];
  scatterMethod: ScatterMethod;
  when?: string;
  deps: string[];
  ev: Evaluator;
}

interface OutSpec { id: string; type: Json; sources: string[]; sourceIsList: boolean; linkMerge?: LinkMerge; pickValue?: PickValue }

interface Shared { limiter: Limiter; warmed: Map<string, Promise<void>>; depth: number; controller: AbortController }
const shared = new WeakMap<ExecOptions, Shared>();

const V12 = (v: string): boolean => v === 'v1.2' || v.startsWith('v1.2.');

function listify(v: Json): Json[] { return v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]; }

function mapOrList(v: Json, what: string, file: string): Json[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  if (typeof v === 'object') {
    return Object.entries(v).map(([k, x]) => {
      if (x && typeof x === 'object' && !Array.isArray(x)) return { ...x, id: k };
      return { id: k, source: x };
    });
  }
  throw new ValidationError(`${where(v, file)}: ${what} must be a list or a map`);
}

/** The requirements a step's process inherits: workflow, then step; the process's own come last (most specific wins). */
function loadStepRun(wf: Process, stepRaw: Json, stepId: string, reqs: Requirement[], hints: Requirement[]): Process {
  const run = stepRaw.run;
  let child: Process;
  const inherited = reqs.filter((r) => r.class !== 'SubworkflowFeatureRequirement' || true);
  const lo = { inheritedRequirements: inherited };
  if (typeof run === 'string') {
    if (run.startsWith('#')) child = loadProcess(`${wf.file}${run}`, lo);
    else {
      const ref = run.startsWith('file://') ? run : path.resolve(wf.baseDir, run);
      const file = ref.startsWith('file://') ? fileURLToPath(ref.replace(/#.*$/, '')) : ref.replace(/#.*$/, '');
      if (!fs.existsSync(file)) throw new ValidationError(`${where(stepRaw, wf.file)}: step "${stepId}" runs ${run}, which does not exist (${file})`);
      child = loadProcess(ref, lo);
    }
  } else if (run && typeof run === 'object') {
    child = processFromDoc(run, wf.file, undefined, { cwlVersion: wf.cwlVersion, namespaces: wf.namespaces }, lo);
    if (typeof run.id !== 'string') child.id = `${wf.file}#${stepId}`; // logs name inline tools by their step
  } else throw new ValidationError(`${where(stepRaw, wf.file)}: step "${stepId}" needs "run"`);
  checkVersionSyntax(child);
  const own = child.requirements.slice(0, child.requirements.length - inherited.length);
  child.requirements = [...inherited, ...own];
  child.hints = [...hints, ...child.hints];
  return child;
}

/** Documents marked v1.0/v1.1 may not use v1.2-only syntax (cwltool rejects them the same way). */
function checkVersionSyntax(p: Process): void {
  const v = p.cwlVersion;
  if (V12(v)) return;
  const bad = (msg: string): never => { throw new ValidationError(`${p.file}: ${msg} is not allowed in a ${v} document`); };
  const v10 = v === 'v1.0' || v.startsWith('v1.0.');
  if (v10) {
    for (const q of [...p.inputs, ...p.outputs]) {
      for (const sf of listify(q.raw?.secondaryFiles)) if (sf && typeof sf === 'object') bad(`secondaryFiles with "pattern"/"required" (input or output "${q.id}")`);
    }
  }
  for (const r of [...p.requirements, ...p.hints]) {
    if (r.class !== 'ResourceRequirement') continue;
    for (const [k, x] of Object.entries(r)) if (k !== 'class' && typeof x === 'number' && !Number.isInteger(x)) bad(`a fractional ResourceRequirement ${k}`);
  }
  if (p.class === 'Workflow') {
    for (const st of mapOrList(p.raw.steps, 'steps', p.file)) {
      if (st?.when !== undefined) bad('"when" on a step');
      for (const i of mapOrList(st?.in, 'in', p.file)) if (i?.pickValue !== undefined) bad('"pickValue"');
    }
    for (const o of p.outputs) if (o.raw?.pickValue !== undefined) bad('"pickValue"');
  }
}

/**
 * Inside a workflow, a tool's required secondaryFiles must come with the
 * File (declared on the workflow input or produced by the upstream step);
 * they are not looked up next to it on disk, as cwltool does.
 */
function requireSecondaries(proc: Process, inputs: Json, what: string): void {
  const walk = (t: Json, sfs: SecondaryFile[] | undefined, v: Json): void => {
    if (v === null || v === undefined) return;
    if (Array.isArray(t)) t = pickType(t, v, proc);
    if (!t) return;
    if (Array.isArray(v)) { for (const x of v) walk(t?.type === 'array' ? t.items : 'Any', sfs, x); return; }
    if (typeof v !== 'object') return;
    if (v.class === 'File') {
      for (const sf of sfs ?? []) {
        if (typeof sf.pattern !== 'string' || sf.pattern.includes('$(') || sf.pattern.includes('${')) continue;
        if (!(sf.required === null || sf.required === undefined || sf.required === true)) continue;
        const want = substitute(v.basename ?? path.basename(v.path ?? ''), sf.pattern);
        if (!(v.secondaryFiles ?? []).some((x: Json) => (x.basename ?? path.basename(x.path ?? x.location ?? '')) === want)) {
          throw new WorkflowError(`${what}: missing required secondary file ${want} of ${v.path ?? v.basename}`);
        }
      }
      return;
    }
    if (t?.type === 'record') for (const f of t.fields) walk(f.type, f.secondaryFiles, v[f.name]);
  };
  for (const p of proc.inputs) walk(p.type, p.secondaryFiles, inputs[p.id]);
}

/** Directories passed between steps lose their listing: the next step lists them again as its loadListing says. */
function dropListings(v: Json): Json {
  if (Array.isArray(v)) return v.map(dropListings);
  if (!v || typeof v !== 'object') return v;
  if (v.class === 'Directory' && v.path && v.listing !== undefined) { const o = { ...v }; delete o.listing; return o; }
  if (v.class === 'File') return v.secondaryFiles ? { ...v, secondaryFiles: dropListings(v.secondaryFiles) } : v;
  let changed = false;
  const o: Json = {};
  for (const [k, x] of Object.entries(v)) { const y = dropListings(x); if (y !== x) changed = true; o[k] = y; }
  return changed ? o : v;
}

function parseSourceRef(s: string): string {
  let r = s;
  const h = r.lastIndexOf('#');
  if (h >= 0) r = r.slice(h + 1);
  return r;
}

/** Load and check a workflow: steps, sources, feature requirements, cycles. */
export function loadWorkflow(wf: Process): { steps: Step[]; outputs: OutSpec[] } {
  const raw = wf.raw;
  const file = wf.file;
  const has = (cls: string): boolean => !!getReq(wf, cls);
  const stepsRaw = mapOrList(raw.steps, 'steps', file).map((s) => (s && typeof s === 'object' && 'source' in s && !('run' in s) ? s : s));
  const inputIds = new Set(wf.inputs.map((p) => p.id));
  const stepIds = new Set(stepsRaw.map((s: Json) => shortname(String(s.id))));
  const stepOuts = new Map<string, Set<string>>();
  for (const s of stepsRaw) stepOuts.set(shortname(String(s.id)), new Set(listify(s.out).map((o: Json) => shortname(typeof o === 'string' ? o : String(o.id)))));
  const wfIdShort = wf.raw.id ? parseSourceRef(String(wf.raw.id)) : '';

  /** A source names a workflow input (`in:x`) or a step output (`step/out`). */
  const resolve = (src: string, at: Json): string => {
    let r = parseSourceRef(String(src));
    if (wfIdShort && r.startsWith(wfIdShort + '/')) {
      const rest = r.slice(wfIdShort.length + 1);
      if (inputIds.has(rest) || rest.includes('/')) r = rest;
    }
    const parts = r.split('/');
    if (parts.length >= 2) {
      const out = parts[parts.length - 1];
      const st = parts[parts.length - 2];
      if (stepIds.has(st)) {
        if (!stepOuts.get(st)!.has(out)) throw new ValidationError(`${where(at, file)}: source "${src}": step "${st}" has no output "${out}"`);
        return `${st}/${out}`;
      }
    }
    const last = parts[parts.length - 1];
    if (inputIds.has(last)) return `in:${last}`;
    throw new ValidationError(`${where(at, file)}: source "${src}" is neither a workflow input nor a step output`);
  };

  const steps: Step[] = [];
  for (const s of stepsRaw) {
    if (!s || typeof s !== 'object' || s.id === undefined) throw new ValidationError(`${where(s ?? raw, file)}: each step needs an "id"`);
    const id = shortname(String(s.id));
    const stepReqs = mapOrList(s.requirements, 'requirements', file).map((r: Json) => (r.class ? r : { ...r, class: r.id })) as Requirement[];
    const stepHints = mapOrList(s.hints, 'hints', file).map((r: Json) => (r.class ? r : { ...r, class: r.id })) as Requirement[];
    for (const r of [...stepReqs, ...stepHints]) delete (r as Json).id;
    const pseudo: Process = { ...wf, requirements: [...wf.requirements, ...stepReqs], hints: [...wf.hints, ...stepHints] };
    const stepHas = (cls: string): boolean => !!getReq(pseudo, cls);
    const runProc = loadStepRun(wf, s, id, pseudo.requirements, pseudo.hints);
    if (runProc.class === 'Workflow' && !stepHas('SubworkflowFeatureRequirement')) {
      throw new ValidationError(`${where(s, file)}: step "${id}" runs a Workflow but SubworkflowFeatureRequirement is not declared`);
    }
    if (s.when !== undefined && !V12(wf.cwlVersion)) throw new ValidationError(`${where(s, file)}: step "${id}": "when" needs cwlVersion v1.2 (document is ${wf.cwlVersion})`);
    const ins: StepIn[] = mapOrList(s.in, 'in', file).map((i: Json) => {
      const iid = shortname(String(i.id));
      const srcs = listify(i.source);
      if (srcs.length > 1 && !stepHas('MultipleInputFeatureRequirement')) {
        throw new ValidationError(`${where(i, file)}: step "${id}" input "${iid}" has several sources but MultipleInputFeatureRequirement is not declared`);
      }
      if (i.valueFrom !== undefined && !stepHas('StepInputExpressionRequirement')) {
        throw new ValidationError(`${where(i, file)}: step "${id}" input "${iid}" uses valueFrom but StepInputExpressionRequirement is not declared`);
      }
      if ((i.pickValue !== undefined) && !V12(wf.cwlVersion)) throw new ValidationError(`${where(i, file)}: pickValue needs cwlVersion v1.2`);
      return {
        id: iid,
        sources: srcs.map((x: Json) => resolve(String(x), i)),
        sourceIsList: Array.isArray(i.source),
        linkMerge: i.linkMerge, pickValue: i.pickValue,
        hasDefault: 'default' in i, default: i.default,
        valueFrom: i.valueFrom,
        loadContents: !!i.loadContents,
      };
    });
    const scatter = listify(s.scatter).map((x: Json) => shortname(String(x)));
    if (scatter.length && !stepHas('ScatterFeatureRequirement')) throw new ValidationError(`${where(s, file)}: step "${id}" scatters but ScatterFeatureRequirement is not declared`);
    for (const k of scatter) if (!ins.some((i) => i.id === k)) throw new ValidationError(`${where(s, file)}: step "${id}" scatters over "${k}", which is not one of its inputs`);
    const outs = [...stepOuts.get(id)!];
    for (const o of outs) {
      if (!runProc.outputs.some((p) => p.id === o)) throw new ValidationError(`${where(s, file)}: step "${id}": "${o}" is not an output of ${shortname(runProc.id)}`);
    }
    const deps = new Set<string>();
    for (const i of ins) for (const src of i.sources) if (!src.startsWith('in:')) deps.add(src.split('/')[0]);
    steps.push({
      id, raw: s, ins, outs, run: runProc, scatter,
      scatterMethod: (s.scatterMethod ?? 'dotproduct') as ScatterMethod,
      when: s.when, deps: [...deps], ev: makeEvaluator(pseudo),
    });
  }
  const cycle = findCycle(steps);
  if (cycle.length) throw new ValidationError(`${file}: the steps ${cycle.join(' -> ')} form a cycle`);
  const outputs: OutSpec[] = wf.outputs.map((p) => {
    const r = p.raw;
    const srcs = listify(r.outputSource);
    if (srcs.length > 1 && !has('MultipleInputFeatureRequirement')) {
      throw new ValidationError(`${where(r, file)}: output "${p.id}" has several sources but MultipleInputFeatureRequirement is not declared`);
    }
    return {
      id: p.id, type: p.type,
      sources: srcs.map((x: Json) => resolve(String(x), r)),
      sourceIsList: Array.isArray(r.outputSource),
      linkMerge: r.linkMerge, pickValue: r.pickValue,
    };
  });
  return { steps, outputs };
}

function sharedFor(opts: WfOpts): Shared {
  let s = shared.get(opts);
  if (!s) {
    const n = opts.parallel && opts.parallel > 0 ? opts.parallel : (os.availableParallelism?.() ?? os.cpus().length);
    s = { limiter: new Limiter(Math.max(1, n)), warmed: new Map(), depth: 0, controller: new AbortController() };
    shared.set(opts, s);
  }
  return s;
}

function gather(ins: { sources: string[]; sourceIsList: boolean; linkMerge?: LinkMerge; pickValue?: PickValue }, values: Map<string, Json>, what: string): Json {
  const vals = ins.sources.map((s) => (values.has(s) ? values.get(s) : null));
  const merged = mergeLinks(vals, ins.linkMerge, ins.sourceIsList);
  return pickValue(merged, ins.pickValue, what);
}

export async function runWorkflow(wf: Process, job: Json, jobDir: string, opts0: ExecOptions): Promise<ExecResult> {
  const opts = opts0 as WfOpts;
  const sh = sharedFor(opts);
  const top = sh.depth === 0;
  sh.depth++;
  try {
    return await execWorkflow(wf, job, jobDir, opts, sh, top);
  } finally { sh.depth--; }
}

async function execWorkflow(wf: Process, job: Json, jobDir: string, opts: WfOpts, sh: Shared, top: boolean): Promise<ExecResult> {
  const { steps, outputs } = loadWorkflow(wf);
  const ev = makeEvaluator(wf);
  const scratch = mkTemp(opts.tmpdirPrefix);
  const inputs = buildInputs({ proc: wf, ev, scratch, runtime: {} }, job, jobDir);
  const values = new Map<string, Json>();
  for (const p of wf.inputs) values.set(`in:${p.id}`, inputs[p.id] ?? null);
  const byId = new Map(steps.map((s) => [s.id, s]));
  const finished = new Map<string, Json>();
  const failedDirs = new Map<string, string>();
  const wfName = shortname(wf.id);
  let permanent = false;

  const runStep = async (id: string): Promise<void> => {
    const step = byId.get(id)!;
    const what = `step "${id}"`;
    // 1. source / linkMerge / pickValue / default
    const sin: Json = {};
    for (const i of step.ins) {
      let v = dropListings(gather(i, values, `${what} input "${i.id}"`));
      if ((v === null || v === undefined) && i.hasDefault) v = resolveLocations(structuredClone(i.default), wf.baseDir);
      sin[i.id] = v ?? null;
    }
    // 2. scatter, then per job: valueFrom, when, run
    const runOne = async (item: Json): Promise<Json | null> => {
      const jobIn = await applyValueFrom(step, item);
      if (step.when !== undefined) {
        const c = step.ev.eval(step.when, { inputs: jobIn, self: null, runtime: {} });
        if (typeof c !== 'boolean') throw new WorkflowError(`${what}: "when" must evaluate to true or false (got ${JSON.stringify(c)})`);
        if (!c) { opts.log(`[step ${id}] skipped (when is false)`); return null; }
      }
      if (sh.controller.signal.aborted) throw new WorkflowError(`${what}: not started (workflow stopping)`);
      const leaf = step.run.class !== 'Workflow';
      if (step.run.class === 'CommandLineTool') requireSecondaries(step.run, jobIn, what);
      if (leaf) await warm(step.run, opts, sh);
      const exec = (): Promise<ExecResult> => executeProcess(step.run, jobIn, wf.baseDir, { ...opts, signal: sh.controller.signal } as WfOpts);
      const res = leaf ? await sh.limiter.run(exec) : await exec();
      if (res.status !== 'success') {
        if (res.outdir) failedDirs.set(id, res.outdir);
        if (res.status === 'permanentFail') permanent = true;
        throw new WorkflowError(`${what} failed (${res.status})${res.outdir ? `; its output directory is ${res.outdir}` : ''}`);
      }
      const o: Json = {};
      for (const k of step.outs) o[k] = res.output?.[k] ?? null;
      return o;
    };
    let outObj: Json = {};
    if (step.scatter.length) {
      const plan = planScatter(sin, step.scatter, step.scatterMethod, what);
      const perOut = new Map(step.outs.map((k) => [k, new Array(plan.total).fill(null)]));
      opts.log(`[step ${id}] scatter of ${plan.total} job${plan.total === 1 ? '' : 's'} (${plan.method})`);
      await runPool(plan.total, sh.limiter.limit, async (n) => {
        const r = await runOne(plan.itemAt(n));
        for (const k of step.outs) perOut.get(k)![n] = r ? r[k] : null;
      }, () => sh.controller.signal.aborted);
      for (const k of step.outs) outObj[k] = shapeResults(plan, perOut.get(k)!);
    } else {
      const r = await runOne(sin);
      for (const k of step.outs) outObj[k] = r ? r[k] : null;
    }
    for (const k of step.outs) values.set(`${id}/${k}`, outObj[k]);
    finished.set(id, outObj);
    opts.log(`[step ${id}] completed success`);
  };

  const applyValueFrom = async (step: Step, item: Json): Promise<Json> => {
    const withContents: Json = { ...item };
    for (const i of step.ins) if (i.loadContents) withContents[i.id] = loadContentsOf(withContents[i.id]);
    if (!step.ins.some((i) => i.valueFrom !== undefined)) return withContents;
    const out: Json = { ...withContents };
    for (const i of step.ins) {
      if (i.valueFrom === undefined) continue;
      out[i.id] = step.ev.eval(i.valueFrom, { inputs: withContents, self: withContents[i.id] ?? null, runtime: {} }) ?? null;
    }
    return out;
  };

  const onError: OnError = opts.onError ?? 'stop';
  const res = await runGraph(steps, runStep, {
    onError,
    onFailure: (id, error) => {
      (opts.error ?? opts.log)(`[step ${id}] failed: ${(error as Error)?.message ?? String(error)}`);
      if (onError === 'stop') sh.controller.abort();
    },
  });
  if (res.failed.length) {
    const first = res.failed[0];
    const err = first.error;
    if (top) leavePartial(opts, wfName, finished, failedDirs);
    if (err instanceof UserError && err.exitCode === EXIT.unsupported) throw err;
    if (err instanceof UserError && !(err instanceof WorkflowError) && !permanent) {
      throw new UserError(`workflow ${wfName}: step "${first.id}" failed: ${err.message}`, err.exitCode);
    }
    if (!(err instanceof UserError)) throw err;
    (opts.error ?? opts.log)(`[workflow ${wfName}] step "${first.id}" failed${res.failed.length > 1 ? ` (and ${res.failed.length - 1} more: ${res.failed.slice(1).map((f) => f.id).join(', ')})` : ''}`);
    return { status: 'permanentFail', output: null };
  }

  // Workflow outputs
  let outHost: string | undefined;
  const output: Json = {};
  for (const o of outputs) {
    let v = gather(o, values, `output "${o.id}"`);
    if (v !== null && v !== undefined) {
      v = finishOutputObject(v, outHost ??= mkTemp(opts.tmpOutdirPrefix));
    }
    if (!matches(o.type, v ?? null, wf) && !(o.type === 'Any' && (v === null || v === undefined))) {
      throw new WorkflowError(`workflow ${wfName}: output "${o.id}": expected ${describeType(o.type)}, got ${JSON.stringify(v)?.slice(0, 200)}`);
    }
    output[o.id] = v ?? null;
  }
  return { status: 'success', output };
}

function loadContentsOf(v: Json): Json {
  if (Array.isArray(v)) return v.map(loadContentsOf);
  if (v && typeof v === 'object' && v.class === 'File' && v.contents === undefined && v.path) return { ...v, contents: readContents(v.path) };
  return v;
}

/** Resolve a step's container once before its jobs run in parallel (one pull, one rootfs). */
async function warm(proc: Process, opts: WfOpts, sh: Shared): Promise<void> {
  if (proc.class !== 'CommandLineTool' || opts.noContainer) return;
  const dr = getReq(proc, 'DockerRequirement')?.req;
  const ref = dr?.dockerImageId ?? dr?.dockerPull ?? opts.defaultContainer;
  if (!ref || typeof ref !== 'string') return;
  let p = sh.warmed.get(ref);
  if (!p) {
    const prev = [...sh.warmed.values()].pop() ?? Promise.resolve();
    p = prev.catch(() => undefined).then(async () => {
      const { resolveContainer } = await import('./docker.js');
      await resolveContainer(proc, opts);
    });
    sh.warmed.set(ref, p);
  }
  await p.catch(() => undefined); // the job itself reports the error
}

/** Leave finished step outputs and failed job directories under <outdir>/cwl-run.partial/. */
function leavePartial(opts: WfOpts, wfName: string, finished: Map<string, Json>, failedDirs: Map<string, string>): void {
  if (!opts.outdir) return;
  const dest = path.join(opts.outdir, 'cwl-run.partial');
  try {
    const summary: Json = { workflow: wfName, finished: {}, failed: {} };
    for (const [id, out] of finished) summary.finished[id] = relocateOutputs(out, path.join(dest, id), tempDirs);
    for (const [id, dir] of failedDirs) {
      const d = path.join(dest, `${id}.failed`);
      fs.mkdirSync(dest, { recursive: true });
      fs.rmSync(d, { recursive: true, force: true });
      try { fs.renameSync(dir, d); } catch { fs.cpSync(dir, d, { recursive: true }); }
      summary.failed[id] = d;
    }
    fs.mkdirSync(dest, { recursive: true });
    fs.writeFileSync(path.join(dest, 'outputs.json'), JSON.stringify(summary, null, 2) + '\n');
    opts.log(`[workflow ${wfName}] partial outputs left in ${dest}`);
  } catch (e) { opts.debug(`could not save partial outputs: ${(e as Error).message}`); }
}

void UnsupportedError;
registerExecutor('Workflow', runWorkflow);
