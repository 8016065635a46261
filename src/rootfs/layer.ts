import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { UserError } from '../errors.js';
import { getCreator } from './creator.js';

/**
 * The ONE place a tar stream is applied to a tree (like umoci's oci/layer).
 *
 * Entries come straight from node-tar's Parser (no Unpack: its per-entry
 * machinery is several times slower and it has no notion of OCI whiteouts or
 * of a scoped root). Rules:
 *  - paths are relative to the root: a leading "/" is dropped, an entry with a
 *    ".." component is skipped and reported;
 *  - every parent directory is resolved INSIDE the root: a symlink met on the
 *    way is followed as if the root were "/" (like umoci's securejoin), so
 *    `link -> /tmp/outside` then `link/file` writes <root>/tmp/outside/file;
 *    nothing is ever written through a symlink to a place outside the root;
 *  - an existing node at an entry's own path is unlinked first (never written
 *    through: a symlink is replaced, a hard-linked file is not modified);
 *  - hard links must name an existing non-directory inside the root;
 *  - device nodes and fifos are skipped (reported);
 *  - setuid/setgid bits are dropped; directories are always u+rwx and files
 *    u+rw, so the unprivileged owner can always modify and remove the tree;
 *  - OCI whiteouts `.wh.NAME` delete NAME; `.wh..wh..opq` hides everything in
 *    its directory that did not come from this same layer.
 *
 * SPEED. Almost all the time goes into creating inodes (mkdir, openat(O_CREAT),
 * symlink: ~0.05 ms each on an idle ext4, 0.5 ms and more when the block
 * group is full of recently deleted inodes), copying file data into the page
 * cache and inflating the layer. So directories, regular files and symlinks
 * are created on a worker thread (creator.ts: batches of operations run in
 * order, file data copied into transferred buffers), at most MAX_OPS /
 * MAX_BYTES unfinished; the input is paused beyond that, so memory stays
 * bounded and big files are streamed chunk by chunk. Whiteouts, hard links,
 * removals and path resolution stay synchronous on the main thread, in stream
 * order. Ordering: `pending` maps each physical path to its unfinished
 * creation; an entry that must see an earlier one finished (same path again,
 * a hard link to it or into a directory being made, a symlink or file met
 * while resolving a parent, a removal of a directory) throws WaitFor, which
 * holds the entry (and thereby node-tar's parser) until that creation has
 * settled, then processes the entry again from the start. Without such a
 * conflict no entry ever waits. A new tree (empty root) skips the lstat
 * before each creation: `known` holds every path this writer made, so a
 * path not in it cannot exist.
 */
export interface ApplyOptions {
  /** Name for messages, e.g. "layer sha256:ab12… of docker.io/library/debian:12". */
  label?: string;
  /** Called for every skipped or altered entry (the CLI shows these with --debug). */
  report?: (msg: string) => void;
}

export interface ApplyStats { entries: number; files: number; bytes: number; skipped: number }

const MAX_LINKS = 40;
/** Bounds of the asynchronous creation queue (unfinished creations, bytes of file data not yet written). */
const MAX_OPS = 1024;
const MAX_BYTES = 16 << 20;
/** Entries held back (waiting for a creation) before the input is paused. */
const MAX_HELD = 1024;

/** Split a tar path into clean components; undefined when it contains "..". */
export function cleanParts(p: string): string[] | undefined {
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') return undefined;
    out.push(c);
  }
  return out;
}

/** Thrown (before any side effect of the entry) when an entry must wait for earlier creations. */
class WaitFor {
  constructor(readonly done: Promise<unknown>) {}
}

/**
 * A tree being built from layers. Keeps a cache of resolved directories
 * across layers; any removal of a directory or symlink clears it.
 */
export class TreeWriter {
  private dirs = new Map<string, string>();
  private onFail?: (e: unknown) => void;
  /** Unfinished asynchronous creations by physical path. */
  private pending = new Map<string, Promise<void>>();
  /** End every file creation still waiting for data (after a failure). */
  private aborters = new Set<() => void>();
  /** Was the root empty when the first layer started (then `known` is authoritative)? */
  private fresh: boolean | undefined;
  /** Every physical path this writer created (a superset of what exists, when fresh). */
  private known = new Set<string>();
  readonly stats: ApplyStats = { entries: 0, files: 0, bytes: 0, skipped: 0 };
  /** Name of the layer being applied, for messages. */
  label: string;

  constructor(readonly root: string, private readonly opts: ApplyOptions = {}) {
    this.root = path.resolve(root);
    this.label = opts.label ?? 'layer';
  }

  private report(msg: string): void {
    this.stats.skipped++;
    this.opts.report?.(`${this.label}: ${msg}`);
  }

  private hasRoom(): boolean { return this.pending.size < MAX_OPS && getCreator().bytes < MAX_BYTES; }

  /** Throw WaitFor when phys has an unfinished creation. */
  private waitPath(phys: string): void {
    const p = this.pending.get(phys);
    if (p) throw new WaitFor(p);
  }

  /** Throw WaitFor when any creation is unfinished (before removing a directory tree, a whiteout…). */
  private waitAll(): void {
    if (this.pending.size) throw new WaitFor(Promise.all(this.pending.values()));
  }

  /** Settle every unfinished creation. */
  private async flush(): Promise<void> {
    while (this.pending.size) await Promise.all(this.pending.values());
  }

  /** lstat unless the tree is fresh and phys was never created by us (then it cannot exist). */
  private lstatMaybe(phys: string): fs.Stats | undefined {
    if (this.fresh && !this.known.has(phys)) return undefined;
    return fs.lstatSync(phys, { throwIfNoEntry: false });
  }

  /** Resolve a path (components) inside the root, following symlinks scoped to it. */
  secureJoin(parts: string[]): string {
    const stack: string[] = [];
    const todo = parts.slice().reverse();
    let links = 0;
    while (todo.length) {
      const c = todo.pop()!;
      if (c === '' || c === '.') continue;
      if (c === '..') { stack.pop(); continue; }
      const cand = this.root + '/' + (stack.length ? stack.join('/') + '/' : '') + c;
      this.waitPath(cand);
      const st = fs.lstatSync(cand, { throwIfNoEntry: false });
      if (st?.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw new UserError(`too many levels of symbolic links at ${cand}`);
        const target = fs.readlinkSync(cand);
        if (target.startsWith('/')) stack.length = 0;
        const tparts = target.split('/');
        for (let i = tparts.length - 1; i >= 0; i--) todo.push(tparts[i]);
        continue;
      }
      stack.push(c);
    }
    return stack.length ? this.root + '/' + stack.join('/') : this.root;
  }

  /** mkdir -p that records what it made in `known`. */
  private mkdirs(phys: string): void {
    const first = fs.mkdirSync(phys, { recursive: true, mode: 0o755 });
    if (first === undefined) return;
    for (let p = phys; p.length >= first.length && p !== this.root; p = path.dirname(p)) this.known.add(p);
  }

  /** Physical path of the directory at logical `parts`, created if missing (when create). */
  resolveDir(parts: string[], create: boolean): string | undefined {
    if (parts.length === 0) return this.root;
    const key = parts.join('/');
    const hit = this.dirs.get(key);
    if (hit !== undefined) return hit;
    const parent = this.resolveDir(parts.slice(0, -1), create);
    if (parent === undefined) return undefined;
    let phys = parent + '/' + parts[parts.length - 1];
    this.waitPath(phys);
    let st = this.lstatMaybe(phys);
    if (st?.isSymbolicLink()) {
      phys = this.secureJoin(path.relative(this.root, phys).split('/'));
      this.waitPath(phys);
      st = fs.lstatSync(phys, { throwIfNoEntry: false });
    }
    if (!st) {
      if (!create) return undefined;
      this.mkdirs(phys);
    } else if (!st.isDirectory()) {
      if (!create) return undefined;
      this.report(`${key}: replaced a non-directory by a directory to hold later entries`);
      this.removeExisting(phys);
      fs.mkdirSync(phys, { mode: 0o755 });
      this.known.add(phys);
    } else if ((st.mode & 0o700) !== 0o700) {
      fs.chmodSync(phys, (st.mode & 0o1777) | 0o700);
    }
    this.dirs.set(key, phys);
    return phys;
  }

  /** Remove whatever is at phys (never following a symlink). Callers made sure nothing under it is pending. */
  private removeExisting(phys: string, st = fs.lstatSync(phys, { throwIfNoEntry: false })): boolean {
    if (!st) return false;
    if (st.isDirectory()) {
      fs.rmSync(phys, { recursive: true, force: true });
      this.dirs.clear();
    } else {
      fs.unlinkSync(phys);
      if (st.isSymbolicLink()) this.dirs.clear();
    }
    return true;
  }

  /**
   * Make room at phys for a new non-directory entry: wait for an unfinished
   * creation there (or, when a directory must go, for all of them), then
   * remove what is there.
   */
  private clearPath(phys: string): void {
    this.waitPath(phys);
    const st = this.lstatMaybe(phys);
    if (!st) return;
    if (st.isDirectory()) this.waitAll();
    this.removeExisting(phys, st);
  }

  /** Register an asynchronous creation at phys; `run(done)` must call done exactly once. */
  private startOp(phys: string, run: (done: (err?: unknown) => void) => void): void {
    this.known.add(phys);
    let settle!: () => void;
    const p = new Promise<void>((r) => { settle = r; });
    this.pending.set(phys, p);
    run((err) => {
      if (this.pending.get(phys) === p) this.pending.delete(phys);
      if (err) this.onFail?.(err);
      settle();
    });
  }

  /** Completion callback of a creation on the creator thread. */
  private created(phys: string, done: (err?: unknown) => void) {
    return (err: string | undefined, unlinkedSymlink: boolean) => {
      if (unlinkedSymlink) this.dirs.clear();
      done(err === undefined ? undefined : new UserError(`cannot write ${phys} from ${this.label}: ${err}`, 1,
        'check free space and quota of the rootfs directory'));
    };
  }

  /**
   * Create a regular file on the creator thread (creator.ts: open O_EXCL
   * with the final mode, the data as it arrives, futimes, close).
   */
  private startFile(entry: ReadEntry, phys: string, want: number): void {
    const c = getCreator();
    this.startOp(phys, (done) => {
      const id = c.open(phys, want, this.created(phys, done));
      let ended = false;
      const end = (mtime?: Date) => {
        if (ended) return;
        ended = true;
        this.aborters.delete(end);
        c.close(id, mtime);
      };
      this.aborters.add(end);
      entry.on('data', (chunk: Buffer) => {
        this.stats.bytes += chunk.length;
        if (!ended) c.data(id, chunk);
      });
      entry.on('end', () => end(entry.mtime));
    });
  }

  /** Create a symlink on the creator thread. */
  private startSymlink(target: string, phys: string): void {
    this.startOp(phys, (done) => getCreator().symlink(phys, target, this.created(phys, done)));
  }

  /** Apply one uncompressed tar stream. */
  apply(input: Readable): Promise<ApplyStats> {
    const label = this.label;
    const touched = new Set<string>();
    const opaque: string[] = [];
    if (this.fresh === undefined) {
      try { this.fresh = fs.readdirSync(this.root).length === 0; } catch { this.fresh = false; }
    }
    return new Promise<ApplyStats>((resolve, reject) => {
      let failed: Error | undefined;
      /** Entries received from the parser, not yet processed (the first may be waiting). */
      const held: ReadEntry[] = [];
      let waiting = false;
      let parserEnded = false;
      let finishing = false;
      let parserBlocked = false;
      let writerBlocked = false;

      const fail = (e: unknown) => {
        if (failed) return;
        const msg = e instanceof Error ? e.message : String(e);
        failed = e instanceof UserError ? e : new UserError(`cannot apply ${label}: ${msg}`, 1,
          'check free space and permissions of the rootfs directory, or pull the image again if the layer is corrupt');
        input.destroy();
        for (const h of held.splice(0)) h.resume();
        for (const a of [...this.aborters]) a();
        const err = failed;
        // let creations in flight settle, so the caller can remove the tree
        this.flush().then(() => reject(err), () => reject(err));
      };
      this.onFail = fail;

      const resumeInput = () => {
        if (failed || parserBlocked || writerBlocked) return;
        input.resume();
      };
      const checkRoom = () => {
        if (writerBlocked || (this.hasRoom() && held.length < MAX_HELD)) return;
        writerBlocked = true;
        input.pause();
        const retry = () => {
          if (this.hasRoom() && held.length < MAX_HELD) { writerBlocked = false; resumeInput(); return; }
          if (!this.hasRoom()) getCreator().onAck.add(retry); else setImmediate(retry);
        };
        retry();
      };

      const finish = () => {
        if (finishing || failed || waiting || held.length || !parserEnded) return;
        finishing = true;
        this.flush().then(() => {
          if (failed) return;
          for (const d of opaque) this.applyOpaque(d, touched);
          resolve(this.stats);
        }).catch(fail);
      };

      // Not re-entrant: entry.resume() inside this.entry() makes the parser
      // emit the next entry synchronously; it is only queued then.
      let draining = false;
      const drain = () => {
        if (draining) return;
        draining = true;
        try {
          while (held.length && !failed) {
            const e = held[0];
            try {
              this.entry(e, touched, opaque);
            } catch (x) {
              if (x instanceof WaitFor) {
                waiting = true;
                x.done.then(() => { waiting = false; if (!failed) drain(); });
                return;
              }
              held.shift();
              e.resume();
              fail(x);
              return;
            }
            held.shift();
          }
        } finally { draining = false; }
        finish();
      };

      const parser = new Parser({
        strict: false,
        onwarn: (code: string, message: string | Error) => {
          const m = typeof message === 'string' ? message : message.message;
          if (code === 'TAR_BAD_ARCHIVE' || code === 'TAR_ABORT') fail(new UserError(`${label} is not a valid tar archive: ${m}`, 1, 'the blob is corrupt or truncated; pull or load the image again'));
          else this.report(`${code}: ${m}`);
        },
      });
      parser.on('entry', (entry: ReadEntry) => {
        if (failed) { entry.resume(); return; }
        held.push(entry);
        if (!waiting) drain();
      });
      parser.on('error', fail);
      parser.on('end', () => { parserEnded = true; if (!waiting) finish(); });
      input.on('error', fail);
      input.on('data', (c: Buffer) => {
        if (failed) return;
        if (!parser.write(c)) {
          parserBlocked = true;
          input.pause();
          parser.once('drain', () => { parserBlocked = false; resumeInput(); });
        }
        checkRoom();
      });
      input.on('end', () => { if (!failed) parser.end(); });
    });
  }

  private applyOpaque(dirPhys: string, touched: Set<string>): void {
    let names: string[];
    try { names = fs.readdirSync(dirPhys); } catch { return; }
    for (const n of names) {
      const p = dirPhys + '/' + n;
      if (!touched.has(p)) { this.removeExisting(p); continue; }
      const st = fs.lstatSync(p);
      if (st.isDirectory()) this.applyOpaque(p, touched);
    }
  }

  /**
   * Process one entry. May throw WaitFor before any side effect that matters
   * (directories made on the way are kept and cached): it is then called
   * again with the same entry once the awaited creations settled.
   */
  private entry(entry: ReadEntry, touched: Set<string>, opaque: string[]): void {
    const raw = entry.path;
    const parts = cleanParts(raw);
    if (!parts) { this.stats.entries++; this.report(`skipped "${raw}": path contains ".."`); entry.resume(); return; }
    if (parts.length === 0) { this.stats.entries++; entry.resume(); return; } // the root itself
    const name = parts[parts.length - 1];
    const parentParts = parts.slice(0, -1);
    const type = entry.type;

    // OCI whiteouts
    if (name.startsWith('.wh.')) {
      const dir = this.resolveDir(parentParts, false);
      const victim = name.slice(4);
      const bad = name !== '.wh..wh..opq' && cleanParts(victim)?.length !== 1;
      if (dir !== undefined && name !== '.wh..wh..opq' && !bad) this.waitAll();
      this.stats.entries++;
      entry.resume();
      if (dir === undefined) return;
      if (name === '.wh..wh..opq') { opaque.push(dir); touched.add(dir); return; }
      if (bad) { this.report(`skipped bad whiteout "${raw}"`); return; }
      this.removeExisting(dir + '/' + victim);
      return;
    }

    if (type === 'CharacterDevice' || type === 'BlockDevice' || type === 'FIFO') {
      this.stats.entries++;
      this.report(`skipped ${type} "${raw}" (device nodes and fifos cannot be created without root)`);
      entry.resume(); return;
    }
    const parent = this.resolveDir(parentParts, true)!;
    const phys = parent + '/' + name;
    const mode = entry.mode ?? 0o644;

    switch (type) {
      case 'Directory': {
        this.waitPath(phys);
        const want = (mode & 0o1777) | 0o700;
        const st = this.lstatMaybe(phys);
        if (st?.isDirectory()) {
          if ((st.mode & 0o7777) !== want) fs.chmodSync(phys, want);
        } else {
          if (st) this.removeExisting(phys, st);
          this.startOp(phys, (done) => getCreator().mkdir(phys, want, this.created(phys, done)));
        }
        this.dirs.set(parts.join('/'), phys);
        break;
      }
      case 'File': case 'OldFile': case 'ContiguousFile': {
        this.clearPath(phys);
        const want = (mode & 0o777) | 0o600;
        if ((mode & 0o6000) !== 0) this.report(`"${raw}": setuid/setgid bit dropped`);
        this.stats.files++;
        this.stats.entries++;
        touched.add(phys);
        if (raw.startsWith('/')) this.report(`"${raw}": absolute path taken relative to the root`);
        this.startFile(entry, phys, want);
        return;
      }
      case 'SymbolicLink': {
        this.clearPath(phys);
        this.startSymlink(entry.linkpath ?? '', phys);
        break;
      }
      case 'Link': {
        this.waitPath(parent); // a directory still being made
        const lparts = cleanParts(entry.linkpath ?? '');
        if (!lparts || lparts.length === 0) {
          this.stats.entries++; entry.resume();
          this.report(`skipped hard link "${raw}" -> "${entry.linkpath}": target outside the root`); return;
        }
        const tdir = this.resolveDir(lparts.slice(0, -1), false);
        const target = tdir === undefined ? undefined : tdir + '/' + lparts[lparts.length - 1];
        if (target !== undefined) this.waitPath(target);
        const tst = target === undefined ? undefined : fs.lstatSync(target, { throwIfNoEntry: false });
        if (!target || !tst || tst.isDirectory()) {
          this.stats.entries++; entry.resume();
          this.report(`skipped hard link "${raw}" -> "${entry.linkpath}": target is not a file inside the root`);
          return;
        }
        if (target !== phys) {
          this.clearPath(phys);
          fs.linkSync(target, phys);
          this.known.add(phys);
        }
        break;
      }
      default:
        this.stats.entries++;
        this.report(`skipped "${raw}": unsupported entry type ${type}`);
        entry.resume();
        return;
    }
    this.stats.entries++;
    touched.add(phys);
    if (raw.startsWith('/')) this.report(`"${raw}": absolute path taken relative to the root`);
    entry.resume();
  }
}

/** Apply one uncompressed tar stream to root (a fresh TreeWriter). */
export function applyLayer(root: string, input: Readable, opts: ApplyOptions = {}): Promise<ApplyStats> {
  return new TreeWriter(root, opts).apply(input);
}
