import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { diskFull, UserError } from '../errors.js';
import { crypto, minorGc } from '../lazy.js';
import { acquireLock } from '../lock.js';
import type { Context } from '../cli/context.js';
import { endpointsFor, loadRegistryConfig, type Endpoint } from './config.js';
import { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, samePlatform, selectPlatform } from './platform.js';
import { makeProgress, silentProgress, type ProgressSink } from './progress.js';
import { parseReference, type Reference } from './reference.js';
import type { Body } from './http.js';
import { backoffMs, closeAgent, header, isNetworkError, MANIFEST_TYPES, RegistryClient, RegistryError } from './registry.js';
import { imageComplete, platformFits, pullTtlMs, recentlyChecked } from './fresh.js';
import { openStore, sha256Hex, type Descriptor, type Image, type ImageConfig, type ImageRef, type Manifest, type Platform, type Store } from './store.js';

export interface PullOptions {
  /** os/arch[/variant]; default: the host's. */
  platform?: string;
  /** Progress sink; default: bars on a TTY stderr unless ctx.quiet. */
  progress?: ProgressSink;
  /** Parallel layer downloads (default 4). */
  concurrency?: number;
  /**
   * Skip the registry for a tag it confirmed less than this long ago (ms);
   * default USERDOCK_PULL_TTL (300 s); 0: always ask (run --pull=always).
   */
  ttlMs?: number;
}

export interface PullResult {
  image: Image;
  /** true when nothing had to be downloaded. */
  upToDate: boolean;
  /** true when the registry was unreachable and the stored image was used. */
  offline: boolean;
}

const LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

const CONFIG_TYPES = new Set([
  'application/vnd.docker.container.image.v1+json',
  'application/vnd.oci.image.config.v1+json',
]);

const INDEX_TYPES = new Set<string>([MANIFEST_TYPES.dockerList, MANIFEST_TYPES.ociIndex]);
const IMAGE_TYPES = new Set<string>([MANIFEST_TYPES.dockerV2, MANIFEST_TYPES.ociManifest]);

interface Index { schemaVersion: number; mediaType?: string; manifests: Descriptor[] }
type AnyManifest = (Manifest | Index) & { mediaType?: string; schemaVersion: number; manifests?: Descriptor[]; config?: Descriptor };

function warn(msg: string): void { process.stderr.write(`warning: ${msg}\n`); }

/** Classify a manifest document; throws for schema1 and unknown types. */
export function manifestKind(doc: AnyManifest, contentType: string | undefined, what: string): 'index' | 'image' {
  const mt = doc.mediaType ?? contentType;
  if (doc.schemaVersion === 1 || mt === MANIFEST_TYPES.dockerV1 || mt === MANIFEST_TYPES.dockerV1Signed) {
    throw new UserError(`${what} uses the Docker image manifest schema 1, which is unsupported`, 1,
      'ask the publisher to push it again with a current docker or skopeo (schema 2 or OCI)');
  }
  if ((mt && INDEX_TYPES.has(mt)) || (!mt && Array.isArray(doc.manifests))) return 'index';
  if ((mt && IMAGE_TYPES.has(mt)) || (!mt && doc.config && Array.isArray((doc as Manifest).layers))) return 'image';
  if (Array.isArray(doc.manifests)) return 'index';
  if (doc.config && Array.isArray((doc as Manifest).layers)) return 'image';
  throw new UserError(`${what} has an unsupported manifest type ${mt ?? '(none)'}`, 1, 'is this a container image?');
}

/** Reject layer types (compression) and config types we cannot handle. */
export function checkImageManifest(m: Manifest, what: string): void {
  if (!m.config || !Array.isArray(m.layers)) throw new UserError(`${what}: malformed image manifest`, 1, 'is this a container image?');
  if (m.config.mediaType && !CONFIG_TYPES.has(m.config.mediaType)) {
    throw new UserError(`${what} is not a container image (config type ${m.config.mediaType})`, 1, 'it may be an artifact such as a Helm chart; pull a container image');
  }
  for (const l of m.layers) {
    if (!LAYER_TYPES.has(l.mediaType)) {
      throw new UserError(`${what}: layer ${l.digest} has unsupported compression or type ${l.mediaType}`, 1,
        'only tar, tar+gzip and tar+zstd layers are supported');
    }
    if (!/^sha256:[a-f0-9]{64}$/.test(l.digest)) throw new UserError(`${what}: layer digest ${l.digest} is not sha256`, 1, 'only sha256 digests are supported');
  }
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0; let failed: unknown; let hasFailed = false;
  const worker = async () => {
    while (next < items.length && !hasFailed) {
      const t = items[next++];
      try { await fn(t); } catch (e) { if (!hasFailed) { hasFailed = true; failed = e; } }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (hasFailed) throw failed;
}

/**
 * Remove temp files left by killed processes: files named `*.<pid>.<hex>`
 * whose pid is gone and which are older than 5 minutes, and anything older
 * than a week. Partial blobs (`partial-<hex>`) are kept for resumption.
 */
export function cleanTmp(store: Store): void {
  let names: string[];
  try { names = fs.readdirSync(store.tmpDir); } catch { return; }
  const now = Date.now();
  for (const n of names) {
    const p = path.join(store.tmpDir, n);
    let st: fs.Stats;
    try { st = fs.lstatSync(p); } catch { continue; }
    if (!st.isFile()) continue;
    const age = now - st.mtimeMs;
    const m = /\.(\d+)\.[0-9a-f]+$/.exec(n);
    let dead = false;
    if (m) { try { process.kill(Number(m[1]), 0); } catch (e) { dead = (e as NodeJS.ErrnoException).code === 'ESRCH'; } }
    if ((dead && age > 5 * 60_000) || age > 7 * 24 * 3600_000) {
      try { fs.unlinkSync(p); } catch { /* raced */ }
    }
  }
}

export { imageComplete };

/**
 * Resolve a digest (index or image manifest) to a platform manifest using
 * only the store. undefined when something needed is missing.
 */
function resolveLocal(store: Store, digest: string, want: Platform, what: string): { manifest: string; platform?: Platform } | undefined {
  if (!store.hasBlob(digest)) return undefined;
  let doc: AnyManifest;
  try { doc = store.readJSONBlob<AnyManifest>(digest); } catch { return undefined; }
  if (manifestKind(doc, undefined, what) === 'index') {
    const d = selectPlatform((doc as Index).manifests, want, what);
    return store.hasBlob(d.digest) ? { manifest: d.digest, platform: d.platform } : undefined;
  }
  return { manifest: digest };
}

class Puller {
  readonly store: Store;
  readonly client: RegistryClient;
  readonly progress: ProgressSink;
  /** Endpoint order for blobs: the manifest's endpoint first. */
  private blobEndpoints: Endpoint[];
  /** USERDOCK_FSYNC=1: fsync each blob before it is renamed into place. */
  private readonly fsync: boolean;

  constructor(readonly ctx: Context, readonly ref: Reference, readonly want: Platform, readonly explicitPlatform: boolean, opts: PullOptions) {
    this.store = openStore(ctx.storeDir);
    const cfg = loadRegistryConfig(ctx.configDir, ctx.env);
    const endpoints = endpointsFor(ref.registry, cfg);
    this.client = new RegistryClient({
      registry: ref.registry, repository: ref.repository, endpoints, config: cfg, configDir: ctx.configDir, env: ctx.env,
      debug: ctx.debug ? (m) => process.stderr.write(`debug: ${m}\n`) : undefined,
    });
    this.blobEndpoints = endpoints;
    this.fsync = ctx.env.USERDOCK_FSYNC === '1';
    this.progress = opts.progress ?? makeProgress(ctx.quiet);
  }

  /** Under -D: milliseconds since the process started, with a label. */
  mark(label: string): void {
    if (this.ctx.debug) process.stderr.write(`debug: +${performance.now().toFixed(1)} ms ${label}\n`);
  }

  /**
   * Ask each endpoint in turn. The first success wins; failures of later
   * endpoints never matter once one answered.
   */
  async manifest(reference: string, method: 'GET' | 'HEAD'): Promise<{ ep: Endpoint; digest?: string; mediaType?: string; body?: Buffer }> {
    const failures: string[] = [];
    let allUnreachable = true; let allNotFound = true; let lastAuth: RegistryError | undefined; let hint: string | undefined;
    for (const ep of this.client.endpoints) {
      const where = `${new URL(ep.url).host}${ep.mirror ? ' (mirror)' : ''}`;
      try {
        const r = await this.client.manifest(ep, reference, method);
        if (r.status === 200) {
          this.blobEndpoints = [ep, ...this.client.endpoints.filter((e) => e !== ep)];
          return { ep, digest: r.digest, mediaType: r.mediaType, body: r.body };
        }
        allUnreachable = false;
        if (r.status !== 404) allNotFound = false;
        failures.push(`${where}: HTTP ${r.status}`);
      } catch (e) {
        if (!(e instanceof RegistryError)) throw e;
        if (!e.unreachable) allUnreachable = false;
        allNotFound = false;
        if (e.kind === 'auth') lastAuth = e;
        hint = e.hint ?? hint;
        failures.push(this.client.endpoints.length === 1 ? e.message : `${where}: ${e.message}`);
      }
    }
    const what = this.ref.familiar;
    if (lastAuth && this.client.endpoints.length === 1) throw lastAuth;
    if (allNotFound) {
      throw new RegistryError(`manifest for ${what} not found (${failures.join('; ')})`, 'notfound',
        'check the image name and tag', 404);
    }
    throw new RegistryError(`cannot get the manifest for ${what}: ${failures.join('; ')}`, allUnreachable ? 'network' : 'other',
      lastAuth?.hint ?? hint ?? (allUnreachable ? 'check the network, or configure a mirror (USERDOCK_MIRRORS)' : 'check the image name'));
  }

  /** Fetch a blob into the store (once, under a per-blob lock), verified. */
  async blob(d: Descriptor): Promise<void> {
    const store = this.store;
    if (store.hasBlob(d.digest, d.size)) { this.progress.finish(d.digest, 'Already exists'); return; }
    const hex = d.digest.slice('sha256:'.length);
    const lock = await acquireLock(path.join(store.locksDir, `blob-${hex}`), { timeoutMs: 6 * 3600_000 });
    try {
      if (store.hasBlob(d.digest, d.size)) { this.progress.finish(d.digest, 'Already exists'); return; }
      await this.download(d, path.join(store.tmpDir, `partial-${hex}`));
      this.progress.finish(d.digest, 'Pull complete');
      this.mark(`stored ${d.digest.slice(7, 19)} (${d.size} bytes)`);
    } finally {
      lock.release();
    }
  }

  private async download(d: Descriptor, partial: string): Promise<void> {
    const what = `blob ${d.digest} of ${this.ref.familiar}`;
    this.progress.start(d.digest, d.size);
    const st: DownloadState = { hash: crypto().createHash('sha256'), have: 0, hashed: false };
    let attempt = 0;
    let epIndex = 0;
    let restarted = false;
    for (;;) {
      // Bring the running hash in line with what is on disk (after a kill or a failed write).
      let onDisk = 0;
      try { onDisk = fs.statSync(partial).size; } catch { /* none */ }
      if (onDisk > d.size) { fs.rmSync(partial, { force: true }); onDisk = 0; }
      if (!st.hashed || onDisk !== st.have) {
        st.hash = crypto().createHash('sha256'); st.have = 0;
        if (onDisk > 0) {
          for await (const c of fs.createReadStream(partial)) { st.hash.update(c as Buffer); st.have += (c as Buffer).length; }
        }
        st.hashed = true;
      }
      const ep = this.blobEndpoints[epIndex % this.blobEndpoints.length];
      try {
        if (st.have < d.size) await this.fetchRange(ep, d, partial, st);
      } catch (e) {
        if (e instanceof RegistryError && (e.kind === 'notfound' || e.kind === 'auth') && epIndex + 1 < this.blobEndpoints.length) {
          epIndex++; continue;
        }
        const retryable = isNetworkError(e) || (e instanceof RegistryError && e.unreachable) || e instanceof ShortRead;
        if (retryable && attempt < this.client.retries) {
          const wait = backoffMs(attempt++);
          if (this.ctx.debug) process.stderr.write(`debug: ${what}: ${(e as Error).message}; resuming at byte ${st.have} in ${Math.round(wait)} ms\n`);
          await sleep(wait);
          continue;
        }
        if (retryable && epIndex + 1 < this.blobEndpoints.length) { epIndex++; attempt = 0; continue; }
        if (e instanceof UserError) throw e;
        // A full disk: the partial file would keep it full; the next pull starts over.
        const full = diskFull(e, this.store.dir);
        if (full) { fs.rmSync(partial, { force: true }); throw full; }
        throw new RegistryError(`downloading ${what} failed: ${(e as Error).message}`, isNetworkError(e) ? 'network' : 'other',
          'try the pull again; it resumes where it stopped');
      }
      // Complete: verify size and digest before it becomes visible.
      let onDiskNow = 0;
      try { onDiskNow = fs.statSync(partial).size; } catch { /* none */ }
      const got = `sha256:${st.hash.copy().digest('hex')}`;
      if (onDiskNow !== d.size || st.have !== d.size || got !== d.digest) {
        fs.rmSync(partial, { force: true });
        st.hashed = false; st.have = 0;
        if (!restarted) { restarted = true; continue; }
        throw new UserError(`${what}: digest mismatch (expected ${d.digest}, got ${got}); the data was discarded`, 1,
          'the registry or a proxy on the way corrupts data; try again, or use another mirror');
      }
      // No fsync by default, like skopeo and docker's pull (it cost ~20-25 ms
      // per layer here). A blob cut short by a power loss fails the size
      // check in hasBlob and is fetched again; USERDOCK_FSYNC=1 syncs anyway.
      if (this.fsync) {
        const fd = fs.openSync(partial, 'r+');
        try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
      }
      this.store.commitTemp(partial, d.digest, d.size);
      return;
    }
  }

  /** GET the blob from st.have on, appending to the partial file and the hash. */
  private async fetchRange(ep: Endpoint, d: Descriptor, partial: string, st: DownloadState): Promise<void> {
    const offset = st.have;
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await this.client.request(ep, `${this.ref.repository}/blobs/${d.digest}`, { headers });
    if (res.status === 404) {
      await res.body.dump();
      throw new RegistryError(`blob ${d.digest} not found on ${new URL(ep.url).host}`, 'notfound', undefined, 404);
    }
    if (res.status === 416 && offset > 0) {
      await res.body.dump();
      fs.rmSync(partial, { force: true }); st.hashed = false;
      throw new ShortRead('range not satisfiable; restarting');
    }
    let start = offset;
    if (offset > 0) {
      const cr = header(res.headers, 'content-range');
      if (res.status === 206 && cr && cr.startsWith(`bytes ${offset}-`)) {
        // resume
      } else if (res.status === 200) {
        start = 0; st.hash = crypto().createHash('sha256'); st.have = 0; // range ignored: start over
      } else {
        await res.body.dump();
        throw new RegistryError(`unexpected HTTP ${res.status} for a range request of ${d.digest}`, 'other');
      }
    } else if (res.status !== 200) {
      await res.body.dump();
      throw new RegistryError(`${new URL(ep.url).host} answered HTTP ${res.status} for blob ${d.digest}`, res.status >= 500 ? 'server' : 'other');
    }
    await this.stream(res.body, d, partial, st, start);
  }

  private async stream(body: Body, d: Descriptor, partial: string, st: DownloadState, start: number): Promise<void> {
    // Chunks arrive as 'data' events (no promise per 64 KiB chunk) and are
    // written synchronously in ~1 MiB batches (one writev, no copying): a page
    // cache write of 1 MiB takes well under a millisecond, cheaper than a
    // round trip through the libuv thread pool on a busy machine. Batches are
    // hashed after they are written, so st.have/st.hash always describe
    // exactly the bytes on disk.
    const fd = fs.openSync(partial, start > 0 ? 'a' : 'w', 0o644);
    let buf: Buffer[] = []; let bufLen = 0; let sinceGc = 0;
    const flush = () => {
      if (!bufLen) return;
      const b = buf; const n = bufLen;
      buf = []; bufLen = 0;
      let done = fs.writevSync(fd, b);
      if (done < n) {
        const all = Buffer.concat(b, n);
        while (done < n) done += fs.writeSync(fd, all, done, n - done);
      }
      for (const c of b) st.hash.update(c);
      st.have += n;
      this.progress.update(d.digest, st.have);
      if ((sinceGc += n) >= 4 << 20) { sinceGc = 0; minorGc(); }
    };
    const res = body.stream;
    try {
      await new Promise<void>((resolve, reject) => {
        const fail = (e: unknown) => { res.off('data', onData); reject(e); };
        const onData = (chunk: Buffer) => {
          try {
            if (st.have + bufLen + chunk.length > d.size) {
              body.destroy();
              throw new UserError(`blob ${d.digest} of ${this.ref.familiar} is larger than the ${d.size} bytes its manifest says; the data was discarded`, 1,
                'the registry serves a different blob than it lists');
            }
            buf.push(chunk); bufLen += chunk.length;
            if (bufLen >= 1 << 20) flush();
          } catch (e) { fail(e); }
        };
        res.on('data', onData);
        res.once('error', fail);
        res.once('end', () => { try { flush(); resolve(); } catch (e) { reject(e); } });
        // A close without 'end' is a truncated body (the error, if any, came first).
        res.once('close', () => { if (!res.readableEnded) fail(Object.assign(new Error('connection closed'), { code: 'ECONNRESET' })); });
      });
    } catch (e) {
      if (!(e instanceof UserError)) { try { flush(); } catch { /* the disk error is reported below */ } }
      else { fs.rmSync(partial, { force: true }); st.hashed = false; }
      throw e;
    } finally {
      fs.closeSync(fd);
    }
    if (st.have < d.size) throw new ShortRead(`connection closed after ${st.have} of ${d.size} bytes`);
  }
}

interface DownloadState { hash: import('node:crypto').Hash; have: number; hashed: boolean }

class ShortRead extends Error {}

/** Pull an image into ctx.storeDir and return it. */
export async function pull(ctx: Context, refStr: string, opts: PullOptions = {}): Promise<PullResult> {
  const ref = parseReference(refStr);
  const want = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
  const p = new Puller(ctx, ref, want, !!opts.platform, opts);
  p.mark(`pull ${ref.familiar}`);
  try {
    return await pullWith(p, opts);
  } finally {
    p.progress.close();
    await closeAgent();
  }
}

async function pullWith(p: Puller, opts: PullOptions): Promise<PullResult> {
  const { store, ref, want } = p;
  cleanTmp(store);
  const what = ref.familiar;
  const existing = store.getRef(ref.storeName);
  const platformOk = (r: ImageRef | undefined) => platformFits(r, want, p.explicitPlatform);

  /** Point the ref at the image; `confirmed`: a registry just answered for the tag. */
  const finish = (manifestDigest: string, sourceDigest: string, platform: Platform | undefined, confirmed = false): Image => {
    const prev = store.getRef(ref.storeName);
    const now = new Date().toISOString();
    const checked = confirmed && !ref.digest ? now : undefined;
    if (!prev || prev.digest !== manifestDigest || prev.sourceDigest !== sourceDigest || !samePlatform(prev.platform, platform)) {
      store.setRef({ name: ref.storeName, digest: manifestDigest, sourceDigest, platform, updated: now, checked });
    } else if (checked) {
      store.setRef({ ...prev, checked });
    }
    return store.loadImage(store.getRef(ref.storeName)!);
  };

  // By digest: the store may already answer without any request.
  if (ref.digest) {
    const local = resolveLocal(store, ref.digest, want, what);
    if (local && imageComplete(store, local.manifest)) {
      const plat = existing?.digest === local.manifest ? existing.platform : platformOf(store, local.manifest, local.platform);
      return { image: finish(local.manifest, ref.digest, plat), upToDate: true, offline: false };
    }
  } else if (existing && platformOk(existing) && imageComplete(store, existing.digest)) {
    // By tag, present and confirmed by the registry within the TTL: no request.
    if (recentlyChecked(existing, opts.ttlMs ?? pullTtlMs(p.ctx.env))) {
      p.mark('confirmed within USERDOCK_PULL_TTL: no request');
      return { image: store.loadImage(existing), upToDate: true, offline: false };
    }
    // Else one HEAD request decides.
    let head: Awaited<ReturnType<Puller['manifest']>> | undefined;
    try {
      head = await p.manifest(ref.tag!, 'HEAD');
    } catch (e) {
      if (e instanceof RegistryError && e.kind !== 'notfound') {
        warn(`cannot check ${what} with its registry (${e.message}); using the stored image`);
        return { image: store.loadImage(existing), upToDate: true, offline: true };
      }
      throw e;
    }
    if (head.digest && head.digest === existing.sourceDigest) {
      const cur = store.getRef(ref.storeName) ?? existing;
      if (cur.digest === existing.digest) store.setRef({ ...cur, checked: new Date().toISOString() });
      return { image: store.loadImage(existing), upToDate: true, offline: false };
    }
    if (head.digest) {
      const local = resolveLocal(store, head.digest, want, what);
      if (local && imageComplete(store, local.manifest)) {
        return { image: finish(local.manifest, head.digest, platformOf(store, local.manifest, local.platform), true), upToDate: true, offline: false };
      }
    }
  }

  // Full pull. node:crypto (~4 ms to load; the manifest and every blob are
  // hashed) loads while the manifest request is out.
  let got: Awaited<ReturnType<Puller['manifest']>>;
  try {
    const asked = p.manifest(ref.digest ?? ref.tag!, 'GET');
    setImmediate(crypto);
    got = await asked;
  } catch (e) {
    if (e instanceof RegistryError && e.unreachable && existing && platformOk(existing) && imageComplete(store, existing.digest)) {
      warn(`cannot reach the registry for ${what} (${e.message}); using the stored image`);
      return { image: store.loadImage(existing), upToDate: true, offline: true };
    }
    throw e;
  }
  p.mark('manifest');
  const top = verifyManifestBody(got.body!, got.digest, ref.digest, what);
  let doc = parseJSON<AnyManifest>(got.body!, what);
  let manifestDigest = top;
  let manifestBody = got.body!;
  let descPlatform: Platform | undefined;
  if (manifestKind(doc, got.mediaType, what) === 'index') {
    const d = selectPlatform((doc as Index).manifests, want, what);
    descPlatform = d.platform;
    await store.putBlob(got.body!, top);
    const child = store.hasBlob(d.digest) ? { body: store.readBlob(d.digest), digest: d.digest, mediaType: d.mediaType }
      : await p.manifest(d.digest, 'GET');
    manifestDigest = verifyManifestBody(child.body!, child.digest, d.digest, `${what} (${formatPlatform(normalizePlatform(d.platform!))})`);
    manifestBody = child.body!;
    doc = parseJSON<AnyManifest>(manifestBody, what);
    if (manifestKind(doc, child.mediaType ?? d.mediaType, what) !== 'image') {
      throw new UserError(`${what}: nested image indexes are unsupported`, 1, 'pull the platform manifest by digest');
    }
  }
  const manifest = doc as Manifest;
  checkImageManifest(manifest, what);

  // The config and the layers download together (the config, first in the
  // queue, is checked as soon as it is in; a mismatch stops new downloads).
  const checkConfig = () => {
    const config = store.readJSONBlob<ImageConfig>(manifest.config.digest);
    if (!descPlatform && config.os && config.architecture) {
      const cp = normalizePlatform({ os: config.os, architecture: config.architecture, variant: (config as { variant?: string }).variant });
      if (cp.os !== want.os || cp.architecture !== want.architecture) {
        if (p.explicitPlatform) {
          throw new UserError(`${what} is for ${formatPlatform(cp)}, not the requested ${formatPlatform(want)}`, 1, 'drop --platform or choose an image built for it');
        }
        warn(`${what} is for ${formatPlatform(cp)}, not this host's ${formatPlatform(want)}`);
      }
    }
  };
  const concurrency = opts.concurrency ?? (Number(p.ctx.env.USERDOCK_PULL_CONCURRENCY) || 4);
  let configChecked = false;
  // Biggest first: the longest download starts first, on the connection the
  // manifest came on (the others open new ones meanwhile).
  const blobs = [manifest.config, ...manifest.layers].sort((a, b) => b.size - a.size);
  // Redo blobs that vanish before the ref is written (a concurrent rmi).
  for (let round = 0; ; round++) {
    await mapLimit(blobs, concurrency, async (d) => {
      await p.blob(d);
      if (d === manifest.config && !configChecked) { checkConfig(); configChecked = true; }
    });
    p.mark('blobs stored');
    await store.putBlob(manifestBody, manifestDigest);
    const img = finish(manifestDigest, top, platformOf(store, manifestDigest, descPlatform), true);
    p.mark('ref written');
    if (imageComplete(store, manifestDigest) || round >= 3) return { image: img, upToDate: false, offline: false };
  }
}

function platformOf(store: Store, manifestDigest: string, fromIndex?: Platform): Platform | undefined {
  if (fromIndex) return normalizePlatform(fromIndex);
  try {
    const m = store.readJSONBlob<Manifest>(manifestDigest);
    const c = store.readJSONBlob<ImageConfig & { variant?: string }>(m.config.digest);
    if (c.os && c.architecture) return normalizePlatform({ os: c.os, architecture: c.architecture, variant: c.variant });
  } catch { /* unknown */ }
  return undefined;
}

function parseJSON<T>(b: Buffer, what: string): T {
  try { return JSON.parse(b.toString('utf8')) as T; } catch {
    throw new UserError(`the registry sent an unreadable manifest for ${what}`, 1, 'try again, or check the registry');
  }
}

/** The manifest's digest, checked against the header and the requested digest. */
function verifyManifestBody(body: Buffer, headerDigest: string | undefined, wanted: string | undefined, what: string): string {
  const d = `sha256:${sha256Hex(body)}`;
  if (wanted && d !== wanted) {
    throw new UserError(`the manifest for ${what} has digest ${d}, not the requested ${wanted}; nothing was stored`, 1, 'the registry or a proxy corrupts data; try again');
  }
  if (headerDigest && headerDigest.startsWith('sha256:') && headerDigest !== d) {
    throw new UserError(`the manifest for ${what} has digest ${d}, but the registry says ${headerDigest}; nothing was stored`, 1, 'the registry or a proxy corrupts data; try again');
  }
  return d;
}

export { silentProgress };
