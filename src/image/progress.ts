/**
 * Per-layer progress bars on a TTY stderr; silent otherwise. Redraws at most
 * ten times a second, in place, with ANSI cursor movement.
 */
export interface ProgressSink {
  start(id: string, total: number): void;
  update(id: string, done: number): void;
  finish(id: string, status: string): void;
  close(): void;
}

export const silentProgress: ProgressSink = { start() {}, update() {}, finish() {}, close() {} };

export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0; let x = n;
  while (x >= 1000 && i < units.length - 1) { x /= 1000; i++; }
  return `${i === 0 ? x : x.toFixed(x >= 100 ? 0 : 1)}${units[i]}`;
}

interface Row { id: string; total: number; done: number; started: number; status?: string }

export class TtyProgress implements ProgressSink {
  private rows: Row[] = [];
  private drawn = 0;
  private timer?: NodeJS.Timeout;
  constructor(private out: NodeJS.WriteStream = process.stderr) {}

  start(id: string, total: number): void {
    if (!this.rows.find((r) => r.id === id)) this.rows.push({ id, total, done: 0, started: Date.now() });
    this.schedule();
  }
  update(id: string, done: number): void {
    const r = this.rows.find((x) => x.id === id);
    if (r) { r.done = done; this.schedule(); }
  }
  finish(id: string, status: string): void {
    const r = this.rows.find((x) => x.id === id);
    if (r) { r.status = status; r.done = r.total; this.schedule(); }
  }
  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; this.draw(); }, 100);
    this.timer.unref();
  }
  private line(r: Row): string {
    const short = r.id.replace(/^sha256:/, '').slice(0, 12);
    if (r.status) return `${short}: ${r.status}`;
    const width = 30;
    const frac = r.total > 0 ? Math.min(1, r.done / r.total) : 0;
    const fill = Math.round(frac * width);
    const secs = Math.max(0.001, (Date.now() - r.started) / 1000);
    const bar = '='.repeat(Math.max(0, fill - 1)) + (fill > 0 ? '>' : '') + ' '.repeat(width - fill);
    return `${short}: [${bar}] ${humanSize(r.done)}/${humanSize(r.total)} ${humanSize(r.done / secs)}/s`;
  }
  private draw(): void {
    let s = '';
    if (this.drawn) s += `\x1b[${this.drawn}A`;
    const cols = this.out.columns || 100;
    for (const r of this.rows) s += `\x1b[2K${this.line(r).slice(0, cols - 1)}\n`;
    this.drawn = this.rows.length;
    this.out.write(s);
  }
  close(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.rows.length) this.draw();
  }
}

export function makeProgress(quiet: boolean, out: NodeJS.WriteStream = process.stderr): ProgressSink {
  return !quiet && out.isTTY ? new TtyProgress(out) : silentProgress;
}
