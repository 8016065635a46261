import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Creation of directories, regular files and symlinks on a worker thread
 * (create-worker.ts), so the expensive system calls (inode creation, copying
 * the data into the page cache, futimes, close) run beside the main thread,
 * which parses the tar stream and resolves paths.
 *
 * Operations are queued into a batch: a table of numbers (Float64Array), the
 * paths joined by NUL, and the file data copied into the batch's own
 * ArrayBuffer (transferred, not cloned; the worker hands it back with the
 * acknowledgement for reuse). The batch is posted at the end of the current
 * tick or when its buffer is full. The worker runs the operations in order
 * and acknowledges each batch; a creation is finished (its callback runs)
 * when the batch holding its last operation is acknowledged. One worker
 * serves the whole process; it is started on first use, keeps the process
 * alive only while batches are outstanding, and ends after a second idle.
 *
 * The worker file is tsc's dist/src/rootfs/create-worker.js: beside this
 * module, or seen from the CLI bundles in dist/bundle/.
 */

export const OP = { open: 0, data: 1, close: 2, symlink: 3, mkdir: 4 } as const;
/** Numbers per operation: kind, id, then mode (open, mkdir) | offset, length (data) | mtime in seconds or NaN (close). */
export const OP_SIZE = 4;
export interface Batch { seq: number; ops: Float64Array; n: number; names: string; buf?: ArrayBuffer }
export interface Ack { seq: number; errors: Array<[id: number, message: string]>; unlinkedSymlink?: boolean; buf?: ArrayBuffer }

/** Called once per creation: with the error message when it failed; `unlinkedSymlink` when a symlink not made by us was replaced. */
export type Done = (err: string | undefined, unlinkedSymlink: boolean) => void;

const ARENA = 1 << 20;
const IDLE_MS = 1000;

function workerPath(): string {
  const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
  const candidates = ['./create-worker.js', '../src/rootfs/create-worker.js'].map(here);
  return candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
}

class Creator {
  private worker: Worker;
  private nextId = 1;
  private seq = 0;
  private ops: number[] = [];
  private names: string[] = [];
  /** Creations finishing in the batch being filled. */
  private finishing: number[] = [];
  private buf: ArrayBuffer | undefined;
  private used = 0;
  /** Buffers of acknowledged batches, for reuse. */
  private arenas: ArrayBuffer[] = [];
  private scheduled = false;
  /** Posted batches not yet acknowledged: their finished creations and byte count. */
  private sent = new Map<number, { finished: number[]; bytes: number }>();
  private callbacks = new Map<number, Done>();
  private idle: NodeJS.Timeout | undefined;
  /** Bytes of file data queued or posted, not yet acknowledged. */
  bytes = 0;
  /** Called once at the next acknowledgement (by callers waiting for room). */
  readonly onAck = new Set<() => void>();

  constructor() {
    this.worker = new Worker(workerPath());
    this.worker.unref();
    this.worker.on('message', (a: Ack) => this.ack(a));
    this.worker.on('error', (e) => this.die(e.message));
    this.worker.on('exit', () => this.die('the file creation thread exited'));
  }

  /** Start a file (the final mode, O_EXCL); returns its id for data() and close(). */
  open(path: string, mode: number, done: Done): number {
    const id = this.start(done);
    if (!this.named(id, path)) return id;
    this.push(OP.open, id, mode, 0);
    return id;
  }

  data(id: number, chunk: Uint8Array): void {
    if (!this.buf || this.used + chunk.length > this.buf.byteLength) {
      if (this.buf) this.post();
      this.buf = chunk.length <= ARENA ? this.arenas.pop() ?? Buffer.allocUnsafeSlow(ARENA).buffer : new ArrayBuffer(chunk.length);
    }
    new Uint8Array(this.buf, this.used, chunk.length).set(chunk);
    this.push(OP.data, id, this.used, chunk.length);
    this.used += chunk.length;
    this.bytes += chunk.length;
  }

  close(id: number, mtime: Date | undefined): void {
    this.push(OP.close, id, mtime ? mtime.getTime() / 1000 : NaN, 0);
    this.finishing.push(id);
  }

  symlink(path: string, target: string, done: Done): void {
    const id = this.start(done);
    if (!this.named(id, path, target)) return;
    this.push(OP.symlink, id, 0, 0);
    this.finishing.push(id);
  }

  /** mkdir with the final mode (an existing directory is kept and given that mode). */
  mkdir(path: string, mode: number, done: Done): void {
    const id = this.start(done);
    if (!this.named(id, path)) return;
    this.push(OP.mkdir, id, mode, 0);
    this.finishing.push(id);
  }

  private start(done: Done): number {
    const id = this.nextId++;
    this.callbacks.set(id, done);
    return id;
  }

  /** Queue the names of an operation; a NUL in one (no valid path has one) fails the creation at once. */
  private named(id: number, ...names: string[]): boolean {
    if (names.some((n) => n.includes('\0'))) { queueMicrotask(() => this.settle(id, 'name contains a NUL byte', false)); return false; }
    this.names.push(...names);
    return true;
  }

  private push(kind: number, id: number, a: number, b: number): void {
    this.ops.push(kind, id, a, b);
    if (!this.scheduled) { this.scheduled = true; setImmediate(() => this.post()); }
  }

  private post(): void {
    this.scheduled = false;
    if (!this.ops.length) return;
    const b: Batch = { seq: ++this.seq, ops: new Float64Array(this.ops), n: this.ops.length, names: this.names.join('\0'), buf: this.buf };
    this.sent.set(b.seq, { finished: this.finishing, bytes: this.used });
    this.ops = []; this.names = []; this.finishing = []; this.buf = undefined; this.used = 0;
    if (this.sent.size === 1) { clearTimeout(this.idle); this.worker.ref(); }
    this.worker.postMessage(b, [b.ops.buffer as ArrayBuffer, ...(b.buf ? [b.buf] : [])]);
  }

  private ack(a: Ack): void {
    const s = this.sent.get(a.seq)!;
    this.sent.delete(a.seq);
    this.bytes -= s.bytes;
    if (a.buf?.byteLength === ARENA) this.arenas.push(a.buf);
    const errs = new Map(a.errors);
    for (const [id, msg] of errs) this.settle(id, msg, false);
    for (const id of s.finished) this.settle(id, undefined, a.unlinkedSymlink ?? false);
    if (this.sent.size === 0) {
      this.worker.unref();
      clearTimeout(this.idle);
      this.idle = setTimeout(() => { if (!this.sent.size && !this.scheduled && !this.callbacks.size) void this.end(); }, IDLE_MS).unref();
    }
    for (const f of [...this.onAck]) { this.onAck.delete(f); f(); }
  }

  private settle(id: number, err: string | undefined, unlinkedSymlink: boolean): void {
    const cb = this.callbacks.get(id);
    if (!cb) return;
    this.callbacks.delete(id);
    cb(err, unlinkedSymlink);
  }

  private die(msg: string): void {
    if (creator === this) creator = undefined;
    for (const id of [...this.callbacks.keys()]) this.settle(id, msg, false);
  }

  private async end(): Promise<void> {
    if (creator === this) creator = undefined;
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

let creator: Creator | undefined;

/** The process's creator (started on first use). */
export function getCreator(): Creator {
  return creator ??= new Creator();
}

export type { Creator };
