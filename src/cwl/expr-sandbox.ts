import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';

/**
 * The expression process: CWL JavaScript expressions that are not simple
 * (expr-simple.ts) run in a separate node process (expr-child.ts) with a
 * heap limit (--max-old-space-size), a limit on the rest of its memory
 * (RLIMIT_DATA: typed arrays) and a time limit (its watchdog thread kills
 * it), so an endless loop, a promise loop, a huge allocation, an unhandled
 * rejection or import() ends as one error, never as a hung, crashed or
 * aborted cwl-run.
 *
 * Evaluation stays synchronous: requests and replies go through two named
 * pipes that cwl-run reads and writes with blocking calls (~80 µs a round
 * trip). cwl-run's end is the only writer of the request pipe and the
 * process the only writer of the reply pipe, so either side's death is an
 * end of file to the other. One process serves every expression of the
 * run; it starts on the first such expression (~50 ms) and is replaced
 * after any failed one. Its stderr goes to an unlinked file, read to tell
 * a memory limit from another death.
 *
 * The file is tsc's dist/src/cwl/expr-child.js: beside this module, or
 * seen from the CLI bundles in dist/bundle/.
 */
export const limits = {
  /** Per expression (cwl-run --eval-timeout SECONDS; cwltool's default is 60 s too). */
  timeoutMs: 60_000,
  /** The expression process's V8 heap (--max-old-space-size); its data segment may be twice that. */
  memoryMb: 1024,
};

export type Outcome =
  | { kind: 'ok'; json: string | undefined }
  | { kind: 'error'; message: string };

interface Proc { child: ChildProcess; reqW: number; respR: number; err: number; pending: string; decoder: StringDecoder }
let proc: Proc | undefined;
const readBuf = Buffer.allocUnsafe(1 << 16);

function childScript(): string {
  const at = (p: string) => fileURLToPath(new URL(p, import.meta.url));
  const candidates = ['./expr-child.js', '../src/cwl/expr-child.js'].map(at);
  return candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
}

function start(): Proc {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cwl-expr-'));
  try {
    const req = path.join(dir, 'req');
    const resp = path.join(dir, 'resp');
    execFileSync('mkfifo', ['-m', '600', req, resp], { stdio: 'ignore' });
    const { O_RDWR, O_RDONLY, O_WRONLY } = fs.constants;
    // Opening one end of a FIFO waits for the other: a transient O_RDWR open lets both opens return at once.
    const open = (fifo: string): [read: number, write: number] => {
      const both = fs.openSync(fifo, O_RDWR);
      const r = fs.openSync(fifo, O_RDONLY);
      const w = fs.openSync(fifo, O_WRONLY);
      fs.closeSync(both);
      return [r, w];
    };
    const [childIn, reqW] = open(req);
    const [respR, childOut] = open(resp);
    const err = fs.openSync(path.join(dir, 'stderr'), 'w+', 0o600);
    const node = [process.execPath, `--max-old-space-size=${limits.memoryMb}`, childScript()];
    const child = spawn('/bin/sh', ['-c', `ulimit -d ${limits.memoryMb * 2 * 1024} 2>/dev/null; exec "$0" "$@"`, ...node], {
      stdio: [childIn, childOut, err], env: {}, cwd: '/',
    });
    child.on('error', () => { /* seen as the end of the reply pipe */ });
    child.unref();
    fs.closeSync(childIn);
    fs.closeSync(childOut);
    return { child, reqW, respR, err, pending: '', decoder: new StringDecoder('utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true }); // the open pipes and file live on
  }
}

/** Stop the expression process (a later expression starts a new one). */
export function stopSandbox(): void {
  const p = proc;
  proc = undefined;
  if (!p) return;
  try { p.child.kill('SIGKILL'); } catch { /* gone */ }
  for (const fd of [p.reqW, p.respR, p.err]) { try { fs.closeSync(fd); } catch { /* */ } }
}

/** One reply line, or undefined at the end of the pipe (the process died). */
function readLine(p: Proc): string | undefined {
  for (;;) {
    const nl = p.pending.indexOf('\n');
    if (nl >= 0) {
      const line = p.pending.slice(0, nl);
      p.pending = p.pending.slice(nl + 1);
      return line;
    }
    let n: number;
    try { n = fs.readSync(p.respR, readBuf, 0, readBuf.length, null); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EINTR' || (e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      return undefined;
    }
    if (n === 0) return undefined;
    p.pending += p.decoder.write(readBuf.subarray(0, n)); // a character may span two reads
  }
}

/** Why the process ended, from its stderr. */
function death(p: Proc): string {
  let text = '';
  try {
    const b = Buffer.alloc(8192);
    const size = fs.fstatSync(p.err).size;
    const n = fs.readSync(p.err, b, 0, b.length, Math.max(0, size - b.length));
    text = b.toString('utf8', 0, n);
  } catch { /* nothing to read */ }
  if (/heap out of memory|Allocation failed|invalid size error|invalid table size|out of memory/i.test(text)) return `memory limit of ${limits.memoryMb} MB exceeded`;
  const last = text.trim().split('\n').filter((l) => l.trim()).pop();
  return `the expression process ended unexpectedly${last ? `: ${last.trim().slice(0, 300)}` : ''}`;
}

/**
 * Evaluate `code` (expr-context.ts wrap) with the inputs `json`. Contexts in the
 * process are kept per `scope` (the tool) and expressionLib, so what one
 * tool's expressions leave in their globals never reaches another tool's.
 */
export function evaluateInSandbox(scope: string, lib: string[], code: string, json: string, timeoutMs = limits.timeoutMs): Outcome {
  let p = proc;
  if (!p) {
    try { p = proc = start(); } catch (e) {
      return { kind: 'error', message: `cannot start the expression process: ${(e as Error).message.split('\n')[0]} (it needs mkfifo and a writable TMPDIR)` };
    }
  }
  let line: string | undefined;
  try {
    const req = Buffer.from(JSON.stringify({ scope, lib, code, timeoutMs }) + '\n' + json + '\n');
    for (let off = 0; off < req.length;) off += fs.writeSync(p.reqW, req, off);
    line = readLine(p);
  } catch { line = undefined; }
  const rest = line?.slice(1) ?? '';
  const kind = line?.[0];
  if (kind !== 'o' && kind !== 'u') {
    // a failed expression: its process is not used again
    const why = line === undefined ? death(p) : '';
    stopSandbox();
    switch (kind) {
      case 'e': return { kind: 'error', message: rest };
      case 'r': return { kind: 'error', message: `unhandled promise rejection: ${rest}` };
      case 't': return { kind: 'error', message: `time limit of ${timeoutMs / 1000} s exceeded (cwl-run --eval-timeout SECONDS)` };
      default: return { kind: 'error', message: why || `the expression process answered ${JSON.stringify(line?.slice(0, 100))}` };
    }
  }
  return { kind: 'ok', json: kind === 'o' ? rest : undefined };
}
