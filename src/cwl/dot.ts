import path from 'node:path';
import { loadProcess, ValidationError, type Json, type Process } from './load.js';

/**
 * `cwl-run --print-dot`: the workflow's graph in Graphviz DOT, laid out as
 * cwltool's (cwlviewer style): one node per step (subworkflows in another
 * colour), the workflow inputs and outputs in two clusters, an edge for
 * every link (input -> step, step -> step, step -> output). Node names are
 * the ids relative to the workflow document ("step1", "main/step1" in a
 * $graph document), as cwltool prints them.
 */

function list(v: Json): Json[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  if (typeof v === 'object') return Object.entries(v).map(([k, x]) => (x && typeof x === 'object' && !Array.isArray(x) ? { ...x, id: k } : { id: k, source: x }));
  return [v];
}
const strip = (id: string): string => (id.includes('#') ? id.slice(id.indexOf('#') + 1) : id);
const q = (s: string): string => JSON.stringify(s);

function runInfo(wf: Process, run: Json): { label?: string; cls: string } {
  if (run && typeof run === 'object') return { label: run.label, cls: String(run.class) };
  if (typeof run !== 'string') return { cls: '' };
  try {
    const p = loadProcess(run.startsWith('#') ? `${wf.file}${run}` : run.startsWith('file://') ? run : path.resolve(wf.baseDir, run));
    return { label: p.raw?.label, cls: p.class };
  } catch { return { cls: '' }; }
}

export function printDot(wf: Process): string {
  if (wf.class !== 'Workflow') throw new ValidationError(`${wf.file}: --print-dot needs a Workflow (this is a ${wf.class})`);
  const scope = strip(wf.raw?.id ?? '');
  const full = (id: string): string => { const s = strip(id); return scope && !s.startsWith(scope + '/') ? `${scope}/${s}` : s; };
  const inputs = new Set(wf.inputs.map((p) => full(p.id)));
  const steps = list(wf.raw.steps).map((s) => ({ id: full(String(s.id)), raw: s }));
  const stepIds = new Set(steps.map((s) => s.id));
  /** A source: a workflow input, or the step that makes it (`step/out`). */
  const origin = (src: string): { input?: string; step?: string } => {
    const f = full(src);
    if (inputs.has(f)) return { input: f };
    const st = f.slice(0, f.lastIndexOf('/'));
    return stepIds.has(st) ? { step: st } : {};
  };
  const edges: [string, string][] = [];
  const seen = new Set<string>();
  const edge = (a: string, b: string): void => { const k = `${a}\0${b}`; if (!seen.has(k)) { seen.add(k); edges.push([a, b]); } };
  const usedInputs: string[] = [];
  for (const s of steps) {
    for (const inp of list(s.raw.in)) {
      for (const src of (Array.isArray(inp.source) ? inp.source : inp.source === undefined ? [] : [inp.source])) {
        const o = origin(String(src));
        if (o.input) { edge(o.input, s.id); if (!usedInputs.includes(o.input)) usedInputs.push(o.input); }
        if (o.step) edge(o.step, s.id);
      }
    }
  }
  const outs: string[] = [];
  const outEdges: [string, string][] = [];
  for (const p of wf.outputs) {
    const srcs = p.raw?.outputSource === undefined ? [] : Array.isArray(p.raw.outputSource) ? p.raw.outputSource : [p.raw.outputSource];
    for (const src of srcs) {
      const o = origin(String(src));
      if (o.step) { if (!outs.includes(full(p.id))) outs.push(full(p.id)); outEdges.push([o.step, full(p.id)]); }
    }
  }
  const node = (name: string, label: string, color: string, style = 'filled'): string =>
    `${q(name)} [fillcolor=${/^[a-z]+$/.test(color) ? color : q(color)}, label=${/^[_a-zA-Z][a-zA-Z0-9_]*$/.test(label) ? label : q(label)}, shape=record, style=${style}];`;
  const lines = ['digraph G {', 'bgcolor="#eeeeee";', 'clusterrank=local;', 'labeljust=right;', 'labelloc=bottom;'];
  for (const s of steps) {
    const r = runInfo(wf, s.raw.run);
    lines.push(node(s.id, r.label ?? s.id, r.cls === 'Workflow' ? '#F3CEA1' : 'lightgoldenrodyellow', r.cls === 'Operation' ? 'dashed' : 'filled'));
  }
  for (const [a, b] of edges) if (stepIds.has(a)) lines.push(`${q(a)} -> ${q(b)};`);
  lines.push('subgraph cluster_inputs {', 'label="Workflow Inputs";', 'rank=same;', 'style=dashed;');
  for (const i of usedInputs) lines.push(node(i, i, '#94DDF4'));
  lines.push('}', '');
  for (const [a, b] of edges) if (!stepIds.has(a)) lines.push(`${q(a)} -> ${q(b)};`);
  lines.push('subgraph cluster_outputs {', 'label="Workflow Outputs";', 'labelloc=b;', 'rank=same;', 'style=dashed;');
  for (const o of outs) lines.push(node(o, o, '#94DDF4'));
  lines.push('}', '');
  for (const [a, b] of outEdges) lines.push(`${q(a)} -> ${q(b)};`);
  lines.push('}');
  return lines.join('\n') + '\n';
}
