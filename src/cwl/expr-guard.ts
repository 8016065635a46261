import { spawn, type ChildProcess } from 'node:child_process';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * The thread between cwl-run and its expression process (expr-child.ts),
 * see expr-sandbox.ts. It takes one request at a time from the main
 * thread (a message), hands it to the expression process, and writes the
 * reply into the shared buffer, then wakes the main thread, which waits
 * for it (Atomics.wait) — expressions are evaluated synchronously.
 *
 * The limits are kept here, where the event loop is free: past the time
 * limit the process is killed (SIGKILL) and the reply says so; when the
 * process dies (past its heap limit node aborts it) the reply says that.
 * After any failed expression the process is not used again: the next
 * request starts a new one.
 */
interface Setup { sab: SharedArrayBuffer; child: string; memoryMb: number }
interface Request { lib: string[]; code: string; json: string; timeoutMs: number }

const { child: childScript, memoryMb } = workerData as Setup;
/** Growable (ES2024; node 20 has it, the TypeScript lib here does not). */
const sab = (workerData as Setup).sab as SharedArrayBuffer & { maxByteLength: number; grow(n: number): void };
const i32 = new Int32Array(sab, 0, 2);

function reply(text: string): void {
  const bytes = Buffer.byteLength(text);
  if (8 + bytes > sab.byteLength) {
    if (8 + bytes > sab.maxByteLength) text = `eexpression result too large (${bytes} bytes)`;
    else sab.grow(Math.min(sab.maxByteLength, Math.max(8 + bytes, 2 * sab.byteLength)));
  }
  const n = Buffer.from(sab, 8, sab.byteLength - 8).write(text, 'utf8');
  Atomics.store(i32, 1, n);
  Atomics.add(i32, 0, 1);
  Atomics.notify(i32, 0);
}

class Evaluator {
  readonly proc: ChildProcess;
  private out = '';
  private err = '';
  private pending: { timer: NodeJS.Timeout } | undefined;
  dead = false;

  constructor() {
    // The heap: node's limit. Memory outside it (typed arrays): the data segment limit (RLIMIT_DATA, twice the heap's).
    const node = [process.execPath, `--max-old-space-size=${memoryMb}`, childScript];
    this.proc = spawn('/bin/sh', ['-c', `ulimit -d ${memoryMb * 2 * 1024} 2>/dev/null; exec "$0" "$@"`, ...node], { stdio: ['pipe', 'pipe', 'pipe'], env: {}, cwd: '/' });
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stdout!.on('data', (s: string) => {
      this.out += s;
      const nl = this.out.indexOf('\n');
      if (nl < 0) return;
      const line = this.out.slice(0, nl);
      this.out = this.out.slice(nl + 1);
      this.finish(line);
    });
    this.proc.stderr!.on('data', (s: string) => { this.err = (this.err + s).slice(-4000); });
    this.proc.stdin!.on('error', () => { /* the process died: 'exit' reports it */ });
    this.proc.on('error', (e) => this.died(`cannot start the expression process: ${e.message}`));
    this.proc.on('exit', (code, signal) => {
      // stderr may still hold the reason: read what is left first
      this.proc.stderr!.once('close', () => this.died(this.why(code, signal)));
      setTimeout(() => this.died(this.why(code, signal)), 200).unref();
    });
  }

  private why(code: number | null, signal: NodeJS.Signals | null): string {
    if (/heap out of memory|Allocation failed|invalid size error|invalid table size|out of memory/i.test(this.err)) return `m`;
    const last = this.err.trim().split('\n').filter((l) => l.trim()).pop();
    return `xthe expression process ended (${signal ? `signal ${signal}` : `exit code ${code}`})${last ? `: ${last.trim().slice(0, 300)}` : ''}`;
  }

  send(r: Request): void {
    this.pending = { timer: setTimeout(() => { this.kill(); this.finish('t'); }, r.timeoutMs) };
    this.proc.stdin!.write(JSON.stringify({ lib: r.lib, code: r.code }) + '\n' + r.json + '\n');
  }

  private finish(line: string): void {
    if (!this.pending) return;
    clearTimeout(this.pending.timer);
    this.pending = undefined;
    // a failed expression: this process is not used again
    if (line[0] !== 'o' && line[0] !== 'u') this.kill();
    reply(line);
  }

  private died(why: string): void {
    if (this.dead && !this.pending) return;
    this.dead = true;
    if (this.pending) this.finish(why);
  }

  kill(): void {
    this.dead = true;
    try { this.proc.kill('SIGKILL'); } catch { /* gone */ }
  }
}

let current: Evaluator | undefined;
parentPort!.on('message', (r: Request) => {
  if (!current || current.dead) current = new Evaluator();
  current.send(r);
});
