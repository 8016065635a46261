import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { UserError } from '../errors.js';

/**
 * The ONE place a tar stream is applied to a tree (like umoci's oci/layer).
 *
 * Entries are written with synchronous fs calls straight from node-tar's
 * Parser (no Unpack: its per-entry async machinery is several times slower
 * and it has no notion of OCI whiteouts or of a scoped root). Rules:
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
 */
export interface ApplyOptions {
  /** Name for messages, e.g. "layer sha256:ab12… of docker.io/library/debian:12". */
  label?: string;
  /** Called for every skipped or altered entry (the CLI shows these with --debug). */
  report?: (msg: string) => void;
}

export interface ApplyStats { entries: number; files: number; bytes: number; skipped: number }

const O_CREAT_EXCL = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
const MAX_LINKS = 40;

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

/**
 * A tree being built from layers. Keeps a cache of resolved directories
 * across layers; any removal of a directory or symlink clears it.
 */
export class TreeWriter {
  private dirs = new Map<string, string>();
  private onFail?: (e: unknown) => void;
  private readonly umask: number;
  readonly stats: ApplyStats = { entries: 0, files: 0, bytes: 0, skipped: 0 };
  /** Name of the layer being applied, for messages. */
  label: string;

  constructor(readonly root: string, private readonly opts: ApplyOptions = {}) {
    this.root = path.resolve(root);
    this.umask = process.umask();
    this.label = opts.label ?? 'layer';
  }

  private report(msg: string): void {
    this.stats.skipped++;
    this.opts.report?.(`${this.label}: ${msg}`);
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

  /** Physical path of the directory at logical `parts`, created if missing (when create). */
  resolveDir(parts: string[], create: boolean): string | undefined {
    if (parts.length === 0) return this.root;
    const key = parts.join('/');
    const hit = this.dirs.get(key);
    if (hit !== undefined) return hit;
    const parent = this.resolveDir(parts.slice(0, -1), create);
    if (parent === undefined) return undefined;
    let phys = parent + '/' + parts[parts.length - 1];
    let st = fs.lstatSync(phys, { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) {
      phys = this.secureJoin(path.relative(this.root, phys).split('/'));
      st = fs.lstatSync(phys, { throwIfNoEntry: false });
    }
    if (!st) {
      if (!create) return undefined;
      fs.mkdirSync(phys, { recursive: true, mode: 0o755 });
    } else if (!st.isDirectory()) {
      if (!create) return undefined;
      this.report(`${key}: replaced a non-directory by a directory to hold later entries`);
      this.removeExisting(phys);
      fs.mkdirSync(phys, { mode: 0o755 });
    } else if ((st.mode & 0o700) !== 0o700) {
      fs.chmodSync(phys, (st.mode & 0o1777) | 0o700);
    }
    this.dirs.set(key, phys);
    return phys;
  }

  /** Remove whatever is at phys (never following a symlink). */
  private removeExisting(phys: string): boolean {
    const st = fs.lstatSync(phys, { throwIfNoEntry: false });
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

  private fixMode(fd: number, want: number): void {
    if ((want & ~this.umask) !== want) fs.fchmodSync(fd, want);
  }

  /** Apply one uncompressed tar stream. */
  apply(input: Readable): Promise<ApplyStats> {
    const label = this.label;
    const touched = new Set<string>();
    const opaque: string[] = [];
    return new Promise<ApplyStats>((resolve, reject) => {
      let failed: Error | undefined;
      const fail = (e: unknown) => {
        if (failed) return;
        const msg = e instanceof Error ? e.message : String(e);
        failed = e instanceof UserError ? e : new UserError(`cannot apply ${label}: ${msg}`, 1,
          'check free space and permissions of the rootfs directory, or pull the image again if the layer is corrupt');
        input.destroy();
        reject(failed);
      };
      this.onFail = fail;
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
        try { this.entry(entry, touched, opaque); } catch (e) { entry.resume(); fail(e); }
      });
      parser.on('error', fail);
      parser.on('end', () => {
        if (failed) return;
        try {
          for (const d of opaque) this.applyOpaque(d, touched);
          resolve(this.stats);
        } catch (e) { fail(e); }
      });
      input.on('error', fail);
      input.on('data', (c: Buffer) => {
        if (failed) return;
        if (!parser.write(c)) { input.pause(); parser.once('drain', () => input.resume()); }
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

  private entry(entry: ReadEntry, touched: Set<string>, opaque: string[]): void {
    this.stats.entries++;
    const raw = entry.path;
    const parts = cleanParts(raw);
    if (!parts) { this.report(`skipped "${raw}": path contains ".."`); entry.resume(); return; }
    if (raw.startsWith('/')) this.report(`"${raw}": absolute path taken relative to the root`);
    if (parts.length === 0) { entry.resume(); return; } // the root itself
    const name = parts[parts.length - 1];
    const parentParts = parts.slice(0, -1);

    // OCI whiteouts
    if (name.startsWith('.wh.')) {
      entry.resume();
      const dir = this.resolveDir(parentParts, false);
      if (dir === undefined) return;
      if (name === '.wh..wh..opq') { opaque.push(dir); touched.add(dir); return; }
      const victim = name.slice(4);
      if (cleanParts(victim)?.length !== 1) { this.report(`skipped bad whiteout "${raw}"`); return; }
      this.removeExisting(dir + '/' + victim);
      return;
    }

    const type = entry.type;
    if (type === 'CharacterDevice' || type === 'BlockDevice' || type === 'FIFO') {
      this.report(`skipped ${type} "${raw}" (device nodes and fifos cannot be created without root)`);
      entry.resume(); return;
    }
    const parent = this.resolveDir(parentParts, true)!;
    const phys = parent + '/' + name;
    touched.add(phys);
    const mode = entry.mode ?? 0o644;

    switch (type) {
      case 'Directory': {
        entry.resume();
        const want = (mode & 0o1777) | 0o700;
        const st = fs.lstatSync(phys, { throwIfNoEntry: false });
        if (st?.isDirectory()) {
          if ((st.mode & 0o7777) !== want) fs.chmodSync(phys, want);
        } else {
          if (st) this.removeExisting(phys);
          fs.mkdirSync(phys, { mode: want });
          if ((want & ~this.umask) !== want) fs.chmodSync(phys, want);
        }
        this.dirs.set(parts.join('/'), phys);
        return;
      }
      case 'File': case 'OldFile': case 'ContiguousFile': {
        const want = (mode & 0o777) | 0o600;
        if ((mode & 0o6000) !== 0) this.report(`"${raw}": setuid/setgid bit dropped`);
        let fd: number;
        try { fd = fs.openSync(phys, O_CREAT_EXCL, want); } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          this.removeExisting(phys);
          fd = fs.openSync(phys, O_CREAT_EXCL, want);
        }
        this.fixMode(fd, want);
        this.stats.files++;
        const mtime = entry.mtime;
        let open = true;
        const close = () => {
          if (!open) return;
          open = false;
          try { if (mtime) fs.futimesSync(fd, mtime, mtime); } finally { fs.closeSync(fd); }
        };
        entry.on('data', (chunk: Buffer) => {
          if (!open) return;
          try {
            let off = 0;
            while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
            this.stats.bytes += chunk.length;
          } catch (e) {
            try { fs.closeSync(fd); } catch { /* ignore */ }
            open = false;
            this.onFail?.(new UserError(`cannot write ${phys} from ${this.label}: ${(e as Error).message}`, 1,
              'check free space and quota of the rootfs directory'));
          }
        });
        entry.on('end', close);
        return;
      }
      case 'SymbolicLink': {
        entry.resume();
        const target = entry.linkpath ?? '';
        try { fs.symlinkSync(target, phys); } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          this.removeExisting(phys);
          fs.symlinkSync(target, phys);
        }
        return;
      }
      case 'Link': {
        entry.resume();
        const lparts = cleanParts(entry.linkpath ?? '');
        if (!lparts || lparts.length === 0) { this.report(`skipped hard link "${raw}" -> "${entry.linkpath}": target outside the root`); return; }
        const tdir = this.resolveDir(lparts.slice(0, -1), false);
        const target = tdir === undefined ? undefined : tdir + '/' + lparts[lparts.length - 1];
        const tst = target === undefined ? undefined : fs.lstatSync(target, { throwIfNoEntry: false });
        if (!target || !tst || tst.isDirectory()) {
          this.report(`skipped hard link "${raw}" -> "${entry.linkpath}": target is not a file inside the root`);
          return;
        }
        if (target === phys) return;
        try { fs.linkSync(target, phys); } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          this.removeExisting(phys);
          fs.linkSync(target, phys);
        }
        return;
      }
      default:
        this.report(`skipped "${raw}": unsupported entry type ${type}`);
        entry.resume();
    }
  }
}

/** Apply one uncompressed tar stream to root (a fresh TreeWriter). */
export function applyLayer(root: string, input: Readable, opts: ApplyOptions = {}): Promise<ApplyStats> {
  return new TreeWriter(root, opts).apply(input);
}
