import { crypto, randomHex, stream } from '../lazy.js';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { UserError } from '../errors.js';

/**
 * The content-addressed store, shaped like an OCI image layout:
 *
 *   <dir>/oci-layout
 *   <dir>/blobs/sha256/<hex>          every blob, verified, committed by rename
 *   <dir>/refs/<encoded name>.json    image name -> manifest digest (one file per name)
 *   <dir>/tmp/                        partial downloads and temp trees (same fs as blobs)
 *   <dir>/containers/<id>/            containers (src/rootfs)
 *   <dir>/locks/                      lock files (src/lock.ts)
 *
 * A blob is only ever visible at its final path once its digest is verified,
 * so a killed writer leaves at most a file in tmp/, which is cleaned later.
 * One file per ref means concurrent pulls of different images never contend.
 */

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface Platform { os: string; architecture: string; variant?: string }

export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: {
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, unknown>;
    Volumes?: Record<string, unknown> | null;
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: unknown[];
  created?: string;
}

/** What a name in the store points to. */
export interface ImageRef {
  /** Canonical full name, e.g. docker.io/library/debian:12 or quay.io/x/y@sha256:… */
  name: string;
  /** Digest of the single-platform image manifest. */
  digest: string;
  /** Digest the registry answered for the tag (an index or the manifest itself). */
  sourceDigest?: string;
  platform?: Platform;
  /** ISO time the ref was written. */
  updated: string;
  /**
   * ISO time a registry last confirmed that the tag names this image (a pull
   * that asked it). `userdock pull` skips the request while this is younger
   * than USERDOCK_PULL_TTL seconds (src/image/fresh.ts).
   */
  checked?: string;
}

export interface Image {
  ref: ImageRef;
  manifest: Manifest;
  config: ImageConfig;
  /** Digest of the config blob: the image id, as docker reports it. */
  id: string;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): boolean { return DIGEST_RE.test(s); }

export function sha256Hex(data: Buffer | string): string {
  return crypto().createHash('sha256').update(data).digest('hex');
}

export class Store {
  readonly blobsDir: string;
  readonly refsDir: string;
  readonly tmpDir: string;
  readonly containersDir: string;
  readonly locksDir: string;

  constructor(readonly dir: string) {
    this.blobsDir = path.join(dir, 'blobs', 'sha256');
    this.refsDir = path.join(dir, 'refs');
    this.tmpDir = path.join(dir, 'tmp');
    this.containersDir = path.join(dir, 'containers');
    this.locksDir = path.join(dir, 'locks');
  }

  /** Create the layout if missing. Cheap and idempotent. */
  init(): this {
    for (const d of [this.blobsDir, this.refsDir, this.tmpDir, this.containersDir, this.locksDir]) {
      fs.mkdirSync(d, { recursive: true });
    }
    const layout = path.join(this.dir, 'oci-layout');
    if (!fs.existsSync(layout)) writeFileAtomic(layout, JSON.stringify({ imageLayoutVersion: '1.0.0' }) + '\n', this.tmpDir);
    return this;
  }

  blobPath(digest: string): string {
    if (!isDigest(digest)) throw new UserError(`invalid or unsupported digest: ${digest}`);
    return path.join(this.blobsDir, digest.slice('sha256:'.length));
  }

  /**
   * Whether the blob is stored; with `size`, also that its length is that
   * (blobs are not fsynced, see docs/registries.md: after a power loss a
   * blob can be short, and is then fetched again instead of trusted).
   */
  hasBlob(digest: string, size?: number): boolean {
    try {
      const st = fs.statSync(this.blobPath(digest));
      return st.isFile() && (size === undefined || st.size === size);
    } catch { return false; }
  }

  blobSize(digest: string): number { return fs.statSync(this.blobPath(digest)).size; }

  readBlob(digest: string): Buffer {
    try { return fs.readFileSync(this.blobPath(digest)); } catch (e) {
      throw new UserError(`blob ${digest} is missing from the store ${this.dir}`, 1, 'pull the image again');
    }
  }

  readJSONBlob<T>(digest: string): T { return JSON.parse(this.readBlob(digest).toString('utf8')) as T; }

  /** A unique temp path on the store's filesystem (so rename into blobs/ is atomic). */
  tempPath(label: string): string {
    return path.join(this.tmpDir, `${label}.${process.pid}.${randomHex(6)}`);
  }

  /**
   * Stream data into the store, hashing as it goes. With `expected`, a
   * mismatch discards the data and throws; nothing is stored. Data in memory
   * (a manifest, a config) is written at once, without a stream.
   */
  async putBlob(source: Readable | Buffer | string, expected?: string): Promise<{ digest: string; size: number }> {
    if (typeof source === 'string') return this.putBlobData(Buffer.from(source), expected);
    if (Buffer.isBuffer(source)) return this.putBlobData(source, expected);
    const { Transform, promises: { pipeline } } = stream();
    const tmp = this.tempPath('blob');
    const hash = crypto().createHash('sha256');
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) { hash.update(chunk); size += chunk.length; cb(null, chunk); },
    });
    try {
      await pipeline(source, counter, fs.createWriteStream(tmp, { mode: 0o644 }));
      const digest = `sha256:${hash.digest('hex')}`;
      if (expected && digest !== expected) {
        throw new UserError(`digest mismatch: expected ${expected}, got ${digest}; the data was discarded`);
      }
      this.commitTemp(tmp, digest);
      return { digest, size };
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  private putBlobData(data: Buffer, expected?: string): { digest: string; size: number } {
    const digest = `sha256:${sha256Hex(data)}`;
    if (expected && digest !== expected) {
      throw new UserError(`digest mismatch: expected ${expected}, got ${digest}; the data was discarded`);
    }
    if (this.hasBlob(digest, data.length)) return { digest, size: data.length };
    const tmp = this.tempPath('blob');
    try {
      fs.writeFileSync(tmp, data, { mode: 0o644 });
      this.commitTemp(tmp, digest, data.length);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    return { digest, size: data.length };
  }

  /**
   * Move a verified temp file into blobs/. If the blob is already there (and,
   * given `size`, has that length), keep the old one; a short one is replaced.
   */
  commitTemp(tmp: string, digest: string, size?: number): void {
    const dest = this.blobPath(digest);
    if (this.hasBlob(digest, size)) { fs.rmSync(tmp, { force: true }); return; }
    fs.renameSync(tmp, dest);
  }

  // ---- refs -------------------------------------------------------------

  private refPath(name: string): string {
    return path.join(this.refsDir, encodeURIComponent(name) + '.json');
  }

  setRef(ref: ImageRef): void {
    writeFileAtomic(this.refPath(ref.name), JSON.stringify(ref, null, 2) + '\n', this.tmpDir);
  }

  getRef(name: string): ImageRef | undefined {
    try { return JSON.parse(fs.readFileSync(this.refPath(name), 'utf8')) as ImageRef; } catch { return undefined; }
  }

  deleteRef(name: string): boolean {
    try { fs.unlinkSync(this.refPath(name)); return true; } catch { return false; }
  }

  listRefs(): ImageRef[] {
    let files: string[] = [];
    try { files = fs.readdirSync(this.refsDir); } catch { return []; }
    const out: ImageRef[] = [];
    for (const f of files) {
      if (!f.endsWith('.json')) continue;
      try { out.push(JSON.parse(fs.readFileSync(path.join(this.refsDir, f), 'utf8')) as ImageRef); } catch { /* ignore partial */ }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Load a stored image by its ref. */
  loadImage(ref: ImageRef): Image {
    const manifest = this.readJSONBlob<Manifest>(ref.digest);
    const config = this.readJSONBlob<ImageConfig>(manifest.config.digest);
    return { ref, manifest, config, id: manifest.config.digest };
  }

  /** Blobs reachable from any ref (manifest, config, layers, source index). */
  liveBlobs(): Set<string> {
    const live = new Set<string>();
    for (const ref of this.listRefs()) {
      live.add(ref.digest);
      if (ref.sourceDigest) live.add(ref.sourceDigest);
      try {
        const m = this.readJSONBlob<Manifest>(ref.digest);
        live.add(m.config.digest);
        for (const l of m.layers) live.add(l.digest);
      } catch { /* missing manifest: nothing more is reachable */ }
    }
    return live;
  }
}

/** Write a file by temp + rename, so readers never see a partial file. */
export function writeFileAtomic(file: string, data: string | Buffer, tmpDir = path.dirname(file), mode = 0o644): void {
  const tmp = path.join(tmpDir, `.${path.basename(file)}.${process.pid}.${randomHex(4)}`);
  fs.writeFileSync(tmp, data, { mode });
  fs.renameSync(tmp, file);
}

export function openStore(dir: string): Store { return new Store(dir).init(); }
