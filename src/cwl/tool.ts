import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { UserError, EXIT } from '../errors.js';
import { getReq, shortname, ValidationError, UnsupportedError, type Json, type Process } from './load.js';
import { Evaluator, pyJson, scan } from './expr.js';
import { buildInputs, materializeLiteral, discoverSecondary, resolveLocations } from './inputs.js';
import { buildCommandLine, shellQuote, type Token } from './cmdline.js';
import { collectOutputs, finishOutputObject } from './outputs.js';
import { visitFiles, listDir, fileChecksum } from './files.js';
import { resolveContainer, type ContainerSpec, type Bind } from './docker.js';
import type { Context } from '../cli/context.js';
import { localLauncher, type Launcher } from './launch.js';

export interface ExecOptions {
  ctx: Context;
  tmpdirPrefix: string;
  tmpOutdirPrefix: string;
  noContainer: boolean;
  defaultContainer?: string;
  engine?: string;
  cachedir?: string;
  /** Image acquisition: 'missing' (default: use the store, pull what is not there), 'never' (--disable-pull), 'always' (--force-docker-pull). */
  pull?: 'missing' | 'never' | 'always';
  log: (msg: string) => void;
  /** Failures: shown even with --quiet (defaults to log). */
  error?: (msg: string) => void;
  debug: (msg: string) => void;
  /** Workflows: most tool jobs at once (default: core count). */
  parallel?: number;
  /** Workflows: after a failed step, 'stop' (default) starts nothing new; 'continue' runs what does not depend on it. */
  onError?: 'stop' | 'continue';
  /** The final output directory (workflows leave partial outputs under it on failure). */
  outdir?: string;
  /** Aborted when the workflow stops: running jobs are killed. */
  signal?: AbortSignal;
  /** Where tool processes run (default: here; src/cwl/launch.ts, --executor slurm). */
  launcher?: Launcher;
}

export type Status = 'success' | 'permanentFail' | 'temporaryFail';
export interface ExecResult { status: Status; output: Json; outdir?: string }

export function makeEvaluator(proc: Process): Evaluator {
  const ijr = getReq(proc, 'InlineJavascriptRequirement');
  const lib: string[] = ijr?.req.expressionLib ?? [];
  return new Evaluator(!!ijr || usesJsAnyway(proc), lib.map((x) => String(x)), undefined, path.basename(proc.file));
}

/** v1.0 documents were often run with JS without declaring it; cwltool is strict, so are we (only in v1.2). */
function usesJsAnyway(_proc: Process): boolean { return false; }

/** Every temporary directory made for this run (removed by the CLI at the end). */
export const tempDirs: string[] = [];

export function mkTemp(prefix: string): string {
  const dir = path.dirname(prefix);
  fs.mkdirSync(dir, { recursive: true });
  const d = fs.mkdtempSync(prefix);
  tempDirs.push(d);
  return d;
}

const DEFAULTS: Record<string, number> = { cores: 1, ram: 256, outdirSize: 1024, tmpdirSize: 1024 };
const RR_KEY: Record<string, string> = { cores: 'cores', ram: 'ram', outdirSize: 'outdir', tmpdirSize: 'tmpdir' };

export function evalResources(proc: Process, ev: Evaluator, inputs: Json, runtime: Json): Json {
  const rr: Json = getReq(proc, 'ResourceRequirement')?.req ?? {};
  const out: Json = {};
  for (const k of Object.keys(DEFAULTS)) {
    let mn: Json = rr[`${RR_KEY[k]}Min`] !== undefined ? ev.eval(rr[`${RR_KEY[k]}Min`], { inputs, self: null, runtime }) : undefined;
    const mx: Json = rr[`${RR_KEY[k]}Max`] !== undefined ? ev.eval(rr[`${RR_KEY[k]}Max`], { inputs, self: null, runtime }) : undefined;
    for (const v of [mn, mx]) if (v !== undefined && v !== null && typeof v !== 'number') throw new ValidationError(`ResourceRequirement ${k}: expected a number, got ${JSON.stringify(v)}`);
    if (mn !== undefined && mn !== null && mx !== undefined && mx !== null && mn > mx) {
      throw new ValidationError(`ResourceRequirement: ${k}Min (${mn}) is greater than ${k}Max (${mx})`);
    }
    if (mn === undefined || mn === null) mn = mx !== undefined && mx !== null ? Math.min(DEFAULTS[k], mx) : DEFAULTS[k];
    out[k] = Math.ceil(mn as number);
  }
  return out;
}

export async function runCommandLineTool(proc: Process, job: Json, jobDir: string, opts: ExecOptions): Promise<ExecResult> {
  const ev = makeEvaluator(proc);
  const outHost = mkTemp(opts.tmpOutdirPrefix);
  const tmpHost = mkTemp(opts.tmpdirPrefix);
  const scratch = mkTemp(opts.tmpdirPrefix);
  const container = await resolveContainer(proc, opts);
  const outdir = container ? (container.outputDirectory ?? '/var/spool/cwl') : outHost;
  const tmpdir = container ? '/tmp' : tmpHost;
  const runtime: Json = { outdir, tmpdir, ...DEFAULTS };
  const inputs = buildInputs({ proc, ev, scratch, runtime }, job, jobDir);
  Object.assign(runtime, evalResources(proc, ev, inputs, runtime));
  const tool = proc.raw;

  // Stage inputs: each File/Directory (with its secondaryFiles) under its own stgN/ directory —
  // /var/lib/cwl/stgN/ in a container (read-only binds), symlinks in a scratch dir on the host.
  const binds: Bind[] = [];
  const pathMap = new Map<string, string>();
  const stageRoot = container ? '/var/lib/cwl' : mkTemp(opts.tmpdirPrefix);
  const stagedDirs: [string, string][] = [];
  const cinputs = structuredClone(inputs);
  const stageOne = (hostPath: string, cpath: string): void => {
    pathMap.set(hostPath, cpath);
    if (container) binds.push({ host: hostPath, container: cpath, readonly: true });
    else { fs.mkdirSync(path.dirname(cpath), { recursive: true }); fs.symlinkSync(hostPath, cpath); }
  };
  visitFiles(cinputs, (o) => {
    if (!o.path) return;
    const hostPath = o.path as string;
    let cpath = pathMap.get(hostPath);
    if (!cpath) {
      const under = stagedDirs.find(([h]) => hostPath.startsWith(h + '/'));
      if (under) cpath = under[1] + hostPath.slice(under[0].length);
    }
    if (!cpath) {
      const stg = `${stageRoot}/stg${crypto.randomUUID()}`;
      cpath = `${stg}/${o.basename ?? path.basename(hostPath)}`;
      stageOne(hostPath, cpath);
      if (o.class === 'Directory') stagedDirs.push([hostPath, cpath]);
      for (const s of o.secondaryFiles ?? []) {
        if (s.path && !pathMap.has(s.path)) {
          const sp = `${stg}/${s.basename ?? path.basename(s.path)}`;
          if (sp !== cpath) stageOne(s.path, sp);
          if (s.class === 'Directory') stagedDirs.push([s.path, sp]);
        }
      }
    }
    o.path = cpath;
    if (o.dirname !== undefined) o.dirname = path.dirname(cpath);
  });

  // InitialWorkDirRequirement
  const inplace = !!getReq(proc, 'InplaceUpdateRequirement')?.req.inplaceUpdate;
  await stageInitialWorkDir(proc, ev, cinputs, runtime, outHost, outdir, binds, pathMap, inplace, !!container, scratch);

  const tokens = buildCommandLine({ ev, inputs: cinputs, runtime, proc });
  const shell = !!getReq(proc, 'ShellCommandRequirement')?.required || !!getReq(proc, 'ShellCommandRequirement');
  let argv: string[];
  if (shell && getReq(proc, 'ShellCommandRequirement')?.required) {
    argv = ['/bin/sh', '-c', tokens.map((t: Token) => (t.shellQuote ? shellQuote(t.value) : t.value)).join(' ')];
  } else argv = tokens.map((t) => t.value);
  if (argv.length === 0) throw new ValidationError(`${proc.file}: empty command line (no baseCommand or arguments)`);

  const exprEnv = { inputs: cinputs, self: null, runtime };
  const evalName = (field: string): string | undefined => {
    const v = tool[field];
    if (v === undefined || v === null) return undefined;
    const r = ev.eval(v, exprEnv);
    if (r === null || r === undefined) return undefined;
    if (typeof r !== 'string') throw new ValidationError(`${field} must evaluate to a string (got ${JSON.stringify(r)})`);
    return r;
  };
  let stdinPath = evalName('stdin');
  for (const i of proc.inputs) if (i.type === 'stdin' && cinputs[i.id]) stdinPath = cinputs[i.id].path;
  let stdoutName = evalName('stdout');
  let stderrName = evalName('stderr');
  for (const o of proc.outputs) {
    if (o.type === 'stdout' && !stdoutName) stdoutName = `${crypto.randomBytes(20).toString('hex')}`;
    if (o.type === 'stderr' && !stderrName) stderrName = `${crypto.randomBytes(20).toString('hex')}`;
  }
  for (const [n, v] of [['stdout', stdoutName], ['stderr', stderrName]] as const) {
    if (v && (path.isAbsolute(v) ? !v.startsWith(outdir + '/') : v.split('/').includes('..'))) {
      throw new ValidationError(`${n} must be a relative path inside the output directory (got ${v})`);
    }
  }
  const hostOf = (p: string): string => {
    if (container && (p === outdir || p.startsWith(outdir + '/'))) return outHost + p.slice(outdir.length);
    for (const [h, c] of pathMap) if (c === p) return h;
    for (const [h, c] of stagedDirs) if (p.startsWith(c + '/')) return h + p.slice(c.length);
    return p;
  };
  if (stdinPath) stdinPath = hostOf(stdinPath);

  // Environment
  const env: Record<string, string> = { HOME: outdir, TMPDIR: tmpdir };
  if (!container) env.PATH = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  else env.PATH = container.imageEnv.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  const evr = getReq(proc, 'EnvVarRequirement');
  if (evr) {
    const defs = evr.req.envDef;
    const list: Json[] = Array.isArray(defs) ? defs : Object.entries(defs ?? {}).map(([k, v]) => ({ envName: k, envValue: v }));
    for (const d of list) env[d.envName] = String(ev.eval(d.envValue, exprEnv) ?? '');
  }

  // Time limit
  const tl = getReq(proc, 'ToolTimeLimit');
  let timelimit = 0;
  if (tl) {
    const v = ev.eval(tl.req.timelimit, exprEnv);
    if (typeof v !== 'number' || v < 0) throw new ValidationError(`ToolTimeLimit.timelimit must be a non-negative number (got ${JSON.stringify(v)})`);
    timelimit = v;
  }

  // Work reuse
  const reuse = getReq(proc, 'WorkReuse');
  const reuseOk = opts.cachedir && !(reuse && reuse.req.enableReuse === false);
  let cacheKey: string | undefined;
  if (reuseOk) {
    // Stable across runs: the tool document, host-side inputs (with file identity), resources and image.
    const { outdir: _o, tmpdir: _t, ...res } = runtime;
    cacheKey = computeCacheKey(tool, env.PATH ?? '', inputs, res, container?.imageId ?? null, proc.requirements, proc.hints);
    const cdir = path.join(opts.cachedir!, cacheKey);
    const done = path.join(cdir, 'cwl-run.output.json');
    if (fs.existsSync(done)) {
      opts.log(`[job ${shortname(proc.id)}] reusing cached output from ${cdir}`);
      const output = JSON.parse(fs.readFileSync(done, 'utf8'));
      return { status: 'success', output: rebase(output, '@CACHE@', path.join(cdir, 'out')), outdir: path.join(cdir, 'out') };
    }
  }

  opts.log(`[job ${shortname(proc.id)}] ${outHost}$ ${argv.map(shellQuote).join(' ')}${stdinPath ? ` < ${stdinPath}` : ''}${stdoutName ? ` > ${stdoutName}` : ''}${stderrName ? ` 2> ${stderrName}` : ''}`);
  const stdoutHost = stdoutName ? path.join(outHost, path.relative(outdir, path.resolve(outdir, stdoutName))) : undefined;
  const stderrHost = stderrName ? path.join(outHost, path.relative(outdir, path.resolve(outdir, stderrName))) : undefined;
  for (const f of [stdoutHost, stderrHost]) if (f) fs.mkdirSync(path.dirname(f), { recursive: true });

  if (container) binds.unshift({ host: outHost, container: outdir, readonly: false }, { host: tmpHost, container: tmpdir, readonly: false });
  const launched = await (opts.launcher ?? localLauncher).launch({
    label: shortname(proc.id), argv, env, cwd: container ? outdir : outHost, stdin: stdinPath, stdout: stdoutHost, stderr: stderrHost,
    container: container ? { spec: container, binds, network: networkAccess(proc, ev, exprEnv) } : undefined,
    cores: runtime.cores, ramMB: runtime.ram, outdirMB: runtime.outdirSize, tmpdirMB: runtime.tmpdirSize, timeLimitSec: timelimit,
  }, opts);
  const code = launched.exitCode;
  if (launched.message) opts.log(`[job ${shortname(proc.id)}] ${launched.message}${launched.where ? ` (${launched.where})` : ''}`);
  if (container) {
    // InplaceUpdate: an entry bound writable into the outdir is the original; the outdir holds a link to it, not the empty mount point.
    for (const b of binds) {
      if (b.readonly || !b.container.startsWith(outdir + '/') || b.host === outHost || b.host.startsWith(outHost + '/')) continue;
      const h = outHost + b.container.slice(outdir.length);
      try { fs.rmSync(h, { recursive: true, force: true }); fs.symlinkSync(b.host, h); } catch { /* left as is */ }
    }
  }
  runtime.exitCode = code;
  const status = classify(tool, code);
  (status === 'success' ? opts.log : opts.error ?? opts.log)(`[job ${shortname(proc.id)}] completed ${status} (exit ${code})`);
  if (status !== 'success') return { status, output: null, outdir: outHost };

  const output = await collectOutputs({ proc, ev, inputs: cinputs, runtime, outHost, outdir, stdoutName, stderrName, hostOf });
  if (reuseOk && cacheKey) {
    const cdir = path.join(opts.cachedir!, cacheKey);
    try {
      fs.mkdirSync(cdir, { recursive: true });
      fs.rmSync(path.join(cdir, 'out'), { recursive: true, force: true });
      fs.cpSync(outHost, path.join(cdir, 'out'), { recursive: true });
      fs.writeFileSync(path.join(cdir, 'cwl-run.output.json'), JSON.stringify(rebase(output, outHost, '@CACHE@')));
      return { status: 'success', output: rebase(output, outHost, path.join(cdir, 'out')), outdir: path.join(cdir, 'out') };
    } catch (e) { opts.debug(`cache write failed: ${(e as Error).message}`); }
  }
  return { status: 'success', output, outdir: outHost };
}

function networkAccess(proc: Process, ev: Evaluator, env: Json): boolean {
  const r = getReq(proc, 'NetworkAccess');
  if (!r) return false;
  return !!ev.eval(r.req.networkAccess, env);
}

function rebase(v: Json, from: string, to: string): Json {
  return JSON.parse(JSON.stringify(v, (_k, x) => {
    if (typeof x === 'string') {
      if (x === from || x.startsWith(from + '/')) return to + x.slice(from.length);
      if (x.startsWith('file://' + from + '/') || x === 'file://' + from) return 'file://' + to + x.slice(7 + from.length);
    }
    return x;
  }));
}

function computeCacheKey(argv: string[], env: Json, inputs: Json, ...rest: Json[]): string {
  // Every input value counts; a File or Directory by its content (sha1), not by where it lives,
  // so outputs of upstream workflow steps hit the cache across runs.
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify(argv)); h.update(JSON.stringify(env)); h.update(JSON.stringify(rest));
  h.update(JSON.stringify(inputs, (k, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && (v.class === 'File' || v.class === 'Directory') && typeof v.path === 'string') {
      const { path: p, location: _l, dirname: _d, listing: _ls, checksum: _c, ...rest2 } = v;
      return { ...rest2, content: contentId(p) };
    }
    return v;
  }));
  return h.digest('hex').slice(0, 32);
}

const contentIds = new Map<string, string>();
/** sha1 of a file, or of a directory's names and file contents; memoised by path, size and mtime. */
function contentId(p: string): string {
  let st: fs.Stats;
  try { st = fs.statSync(p); } catch { return `missing:${p}`; }
  const memo = `${p}:${st.size}:${st.mtimeMs}:${st.ino}`;
  const hit = contentIds.get(memo);
  if (hit) return hit;
  let id: string;
  if (st.isDirectory()) {
    const h = crypto.createHash('sha1');
    for (const n of fs.readdirSync(p).sort()) h.update(`${n}\0${contentId(path.join(p, n))}\0`);
    id = `dir$${h.digest('hex')}`;
  } else {
    id = fileChecksum(p);
  }
  contentIds.set(memo, id);
  return id;
}

function classify(tool: Json, code: number): Status {
  const succ: number[] = tool.successCodes ?? [0];
  const temp: number[] = tool.temporaryFailCodes ?? [];
  const perm: number[] = tool.permanentFailCodes ?? [];
  if (succ.includes(code)) return 'success';
  if (temp.includes(code)) return 'temporaryFail';
  if (perm.includes(code)) return 'permanentFail';
  return 'permanentFail';
}

export function runLocal(argv: string[], env: Record<string, string>, cwd: string, stdin: string | undefined, stdout: string | undefined, stderr: string | undefined, timelimit: number, opts: ExecOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const fds: number[] = [];
    const open = (p: string, flags: string): number => { const fd = fs.openSync(p, flags); fds.push(fd); return fd; };
    let inFd: number | 'ignore' | 'pipe' = 'ignore';
    if (stdin) {
      try { inFd = open(stdin, 'r'); } catch (e) { reject(new UserError(`stdin: cannot open ${stdin}: ${(e as Error).message}`, EXIT.fail)); return; }
    }
    const outFd = stdout ? open(stdout, 'w') : 2; // tool stdout goes to our stderr: our stdout is the JSON document
    const errFd = stderr ? open(stderr, 'w') : 2;
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: [inFd, outFd, errFd], detached: true });
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    if (timelimit > 0) {
      timer = setTimeout(() => {
        timedOut = true;
        opts.log(`[job] time limit of ${timelimit}s exceeded; killing`);
        try { process.kill(-child.pid!, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
      }, timelimit * 1000);
    }
    // a stopping workflow kills its running jobs
    const onAbort = (): void => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = (): void => { opts.signal?.removeEventListener('abort', onAbort); if (timer) clearTimeout(timer); for (const fd of fds) try { fs.closeSync(fd); } catch { /* */ } };
    child.on('error', (e: NodeJS.ErrnoException) => {
      cleanup();
      process.stderr.write(`[job] cannot run ${argv[0]}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`);
      resolve(e.code === 'ENOENT' ? 127 : 126);
    });
    child.on('close', (code, signal) => {
      cleanup();
      if (timedOut) resolve(-1);
      else resolve(code ?? (signal ? 128 + 9 : 1));
    });
  });
}

async function stageInitialWorkDir(proc: Process, ev: Evaluator, inputs: Json, runtime: Json, outHost: string, outdir: string, binds: Bind[], pathMap: Map<string, string>, inplace: boolean, inContainer: boolean, scratch: string): Promise<void> {
  const iwd = getReq(proc, 'InitialWorkDirRequirement');
  if (!iwd) return;
  const env = { inputs, self: null, runtime };
  let listing: Json = iwd.req.listing;
  listing = ev.eval(listing, env);
  if (!Array.isArray(listing)) listing = [listing];
  const entries: { name?: string; value: Json; writable: boolean }[] = [];
  const pushVal = (v: Json, name: string | undefined, writable: boolean): void => {
    if (v === null || v === undefined) return;
    if (Array.isArray(v)) { for (const x of v) pushVal(x, undefined, writable); return; }
    entries.push({ name, value: v, writable });
  };
  for (const item of listing) {
    if (item === null || item === undefined) continue;
    if (typeof item === 'string') { pushVal(ev.eval(item, env), undefined, false); continue; }
    if (Array.isArray(item)) { pushVal(resolveLocations(item, proc.baseDir), undefined, false); continue; }
    if (item.class === 'File' || item.class === 'Directory') { pushVal(resolveLocations(item, proc.baseDir), undefined, !!item.writable); continue; }
    if ('entry' in item) {
      const name = item.entryname !== undefined ? (ev.eval(item.entryname, env) as Json) : undefined;
      let v: Json = ev.eval(item.entry, env, false);
      if (typeof item.entry !== 'string') v = resolveLocations(v, proc.baseDir);
      if (v === null || v === undefined) continue;
      if (typeof v === 'object' && !Array.isArray(v) && (v.class === 'File' || v.class === 'Directory')) {
        entries.push({ name: name ?? undefined, value: v, writable: !!item.writable });
      } else if (Array.isArray(v) && v.every((x: Json) => x && typeof x === 'object' && (x.class === 'File' || x.class === 'Directory')) && name === undefined) {
        for (const x of v) entries.push({ value: x, writable: !!item.writable });
      } else {
        if (typeof v !== 'string') v = pyJson(v);
        if (name === undefined || name === null) throw new ValidationError('InitialWorkDirRequirement: entry with string contents needs an entryname');
        entries.push({ name, value: { class: 'File', contents: v }, writable: !!item.writable });
      }
      continue;
    }
    throw new ValidationError(`InitialWorkDirRequirement: invalid listing entry ${JSON.stringify(item).slice(0, 100)}`);
  }
  // Files staged through the listing bring their secondaryFiles along (same directory).
  for (const e of [...entries]) {
    const v = e.value;
    if (v && typeof v === 'object' && v.class === 'File' && Array.isArray(v.secondaryFiles)) {
      for (const sf of v.secondaryFiles) {
        const dir = e.name ? path.dirname(e.name) : '.';
        entries.push({ name: dir === '.' ? undefined : path.join(dir, sf.basename), value: sf, writable: e.writable });
      }
    }
  }
  for (const e of entries) {
    const v = e.value;
    if (typeof v !== 'object' || (v.class !== 'File' && v.class !== 'Directory')) {
      throw new ValidationError(`InitialWorkDirRequirement: listing entries must be File, Directory or Dirent (got ${JSON.stringify(v).slice(0, 100)})`);
    }
    const name: string = e.name ?? v.basename ?? (v.path ? path.basename(v.path) : undefined);
    if (!name) throw new ValidationError('InitialWorkDirRequirement: entry without a name');
    let targetC: string;
    if (path.isAbsolute(name)) {
      if (!inContainer || !getReq(proc, 'DockerRequirement')?.required) throw new ValidationError(`InitialWorkDirRequirement: absolute entryname ${name} is only allowed with DockerRequirement under requirements`);
      targetC = name;
    } else {
      targetC = path.resolve(outdir, name);
      if (!(targetC === outdir || targetC.startsWith(outdir + '/'))) throw new ValidationError(`InitialWorkDirRequirement: entryname ${name} is outside the output directory`);
    }
    const inOut = targetC.startsWith(outdir + '/');
    const targetH = inOut ? outHost + targetC.slice(outdir.length) : path.join(scratch, 'abs', targetC);
    fs.mkdirSync(path.dirname(targetH), { recursive: true });
    // host source
    const hostSrc = (p: string | undefined): string | undefined => {
      if (!p) return undefined;
      for (const [h, c] of pathMap) if (c === p) return h;
      return p;
    };
    const src = hostSrc(v.path) ?? (v.location?.startsWith('file://') ? decodeURIComponent(v.location.slice(7)) : undefined);
    if (!src) {
      // literal
      if (v.class === 'File') {
        fs.writeFileSync(targetH, v.contents ?? '');
      } else {
        fs.mkdirSync(targetH, { recursive: true });
        for (const c of v.listing ?? []) {
          const cc = { ...c };
          if (!cc.path && !cc.location) materializeLiteral(cc, scratch);
          fs.cpSync(hostSrc(cc.path) ?? cc.path, path.join(targetH, cc.basename ?? path.basename(cc.path)), { recursive: true, dereference: true });
          for (const sf of cc.secondaryFiles ?? []) {
            if (sf.path) fs.cpSync(hostSrc(sf.path) ?? sf.path, path.join(targetH, sf.basename ?? path.basename(sf.path)), { recursive: true, dereference: true });
          }
        }
      }
      if (!inOut) binds.push({ host: targetH, container: targetC, readonly: !e.writable });
    } else if (e.writable && !inplace) {
      fs.rmSync(targetH, { recursive: true, force: true });
      fs.cpSync(src, targetH, { recursive: true, dereference: true });
      makeWritable(targetH);
      if (!inOut) binds.push({ host: targetH, container: targetC, readonly: false });
    } else if (inContainer) {
      if (inOut && !(e.writable && inplace)) {
        // a copy in the outdir: outputs globbed from it are real files, and the original stays untouched
        fs.rmSync(targetH, { recursive: true, force: true });
        fs.cpSync(src, targetH, { recursive: true, dereference: true });
      } else {
        if (inOut) { if (v.class === 'Directory') fs.mkdirSync(targetH, { recursive: true }); else fs.writeFileSync(targetH, ''); }
        binds.push({ host: src, container: targetC, readonly: !(e.writable && inplace) });
      }
    } else {
      fs.rmSync(targetH, { recursive: true, force: true });
      fs.symlinkSync(src, targetH);
    }
    // Inputs that were staged now live at the new path.
    const newPath = targetC;
    visitFiles(inputs, (o) => {
      if (o.path && (o.path === v.path || (src && o.path === src))) { o.path = newPath; o.basename = path.basename(newPath); }
    });
    if (v.class === 'Directory' && Array.isArray(v.listing) && src) v.listing = listDir(targetH, 'deep');
  }
  void discoverSecondary;
}

function isSingleExpression(s: string): boolean {
  const t = s.trim();
  const parts = scan(t);
  return parts.length === 1 && typeof parts[0] !== 'string';
}

function makeWritable(p: string): void {
  try {
    const st = fs.lstatSync(p);
    fs.chmodSync(p, st.mode | 0o200);
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) makeWritable(path.join(p, n));
  } catch { /* */ }
}

export function requireSupported(proc: Process): void {
  void UnsupportedError;
  void proc;
}
export { finishOutputObject };
export type { ContainerSpec };
