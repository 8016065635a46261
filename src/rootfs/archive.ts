import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import { Parser, create as tarCreate, type ReadEntry } from 'tar';
import { diskFull, UserError } from '../errors.js';
import { openStore, type Descriptor, type Image, type ImageConfig, type Manifest, type Store } from '../image/store.js';
import { parseReference, familiarStoredName, splitStoredName } from '../image/reference.js';
import { hostPlatform, selectPlatform } from '../image/platform.js';
import type { Context } from '../cli/context.js';
import { decompressStream, sniffCompression } from './decompress.js';
import { removeTree, type Container } from './index.js';

/**
 * Archives in and out of the store:
 *  - load:   `docker save` tarballs, OCI archives (tar of an OCI layout), OCI layout dirs;
 *  - import: flat rootfs tarballs (`docker export`) as a one-layer image;
 *  - save:   a tarball `docker load` accepts (manifest.json, repositories, config, layer tars);
 *  - export: a container tree as a tar (or, with --clone, its userdock directory).
 */

const MT_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const MT_DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const MT_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MT_LAYER = 'application/vnd.oci.image.layer.v1.tar';

/** Small files of an archive kept in memory (manifests, configs, indexes). */
const SMALL = 4 << 20;

interface Source {
  label: string;
  /** Text of a named (non-blob) file in the archive, e.g. manifest.json. */
  text(name: string): string | undefined;
  /** Store the blob at an archive path; returns its verified descriptor. */
  blobAt(p: string): Promise<{ digest: string; size: number }>;
  /** Ensure the blob with this digest is in the store (verified). */
  blob(digest: string): Promise<void>;
}

function norm(p: string): string { return p.replace(/^(\.\/)+/, '').replace(/^\/+/, ''); }

/** Read a whole tar stream once: small files into memory, every file into the store. */
async function tarSource(store: Store, input: Readable, label: string): Promise<Source> {
  const texts = new Map<string, Buffer>();
  const files = new Map<string, { digest: string; size: number }>();
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (e: unknown) => {
      if (failed) return; failed = true; input.destroy();
      reject(e instanceof UserError ? e : new UserError(`cannot read ${label}: ${(e as Error).message}`, 1, 'the archive is corrupt or truncated; make it again'));
    };
    const parser = new Parser({
      strict: false,
      onwarn: (code: string, m: string | Error) => {
        if (code === 'TAR_BAD_ARCHIVE' || code === 'TAR_ABORT') fail(new UserError(`${label} is not a valid tar archive: ${typeof m === 'string' ? m : m.message}`, 1, 'pass a docker save tarball, an OCI archive or an OCI layout directory'));
      },
    });
    parser.on('entry', (e: ReadEntry) => {
      if (failed || (e.type !== 'File' && e.type !== 'OldFile')) { e.resume(); return; }
      const p = norm(e.path);
      const tmp = store.tempPath('load');
      const hash = crypto.createHash('sha256');
      const small: Buffer[] | undefined = e.size <= SMALL ? [] : undefined;
      let fd: number;
      try { fd = fs.openSync(tmp, 'wx', 0o644); } catch (err) { e.resume(); fail(err); return; }
      e.on('data', (c: Buffer) => {
        if (failed) return;
        hash.update(c); small?.push(c);
        try { let o = 0; while (o < c.length) o += fs.writeSync(fd, c, o, c.length - o); } catch (err) { fail(err); }
      });
      e.on('end', () => {
        fs.closeSync(fd);
        if (failed) { fs.rmSync(tmp, { force: true }); return; }
        const digest = `sha256:${hash.digest('hex')}`;
        const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p);
        if (m && m[1] !== digest.slice(7)) {
          fs.rmSync(tmp, { force: true });
          fail(new UserError(`${label}: ${p} does not match its digest (content is ${digest})`, 1, 'the archive is corrupt; make it again'));
          return;
        }
        if (small) texts.set(p, Buffer.concat(small));
        store.commitTemp(tmp, digest);
        files.set(p, { digest, size: e.size });
      });
    });
    parser.on('error', fail);
    parser.on('end', () => { if (!failed) resolve(); });
    input.on('error', fail);
    input.on('data', (c: Buffer) => { if (!failed && !parser.write(c)) { input.pause(); parser.once('drain', () => input.resume()); } });
    input.on('end', () => { if (!failed) parser.end(); });
  });
  return {
    label,
    text: (n) => texts.get(n)?.toString('utf8'),
    async blobAt(p) {
      const f = files.get(norm(p));
      if (!f) throw new UserError(`${label} lacks ${p}`, 1, 'the archive is incomplete; make it again');
      return f;
    },
    async blob(digest) {
      if (!store.hasBlob(digest)) throw new UserError(`${label} lacks blob ${digest}`, 1, 'the archive is incomplete; make it again');
    },
  };
}

function dirSource(store: Store, dir: string): Source {
  const label = dir;
  return {
    label,
    text: (n) => { try { return fs.readFileSync(path.join(dir, n), 'utf8'); } catch { return undefined; } },
    async blobAt(p) {
      const file = path.join(dir, norm(p));
      const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(norm(p));
      try { return await store.putBlob(fs.createReadStream(file), m ? `sha256:${m[1]}` : undefined); } catch (e) {
        if (e instanceof UserError) throw new UserError(`${label}: ${p}: ${e.message}`, 1, 'the layout is corrupt');
        throw new UserError(`${label}: cannot read ${p}: ${(e as Error).message}`, 1, 'the layout is incomplete');
      }
    },
    async blob(digest) { await this.blobAt(`blobs/sha256/${digest.slice(7)}`); },
  };
}

/** sha256 of the decompressed blob (a layer's diff_id). */
async function diffIdOf(store: Store, digest: string, label: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  const s = decompressStream(fs.createReadStream(store.blobPath(digest), { highWaterMark: 1 << 20 }), undefined, label);
  for await (const c of s) hash.update(c as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function layerMediaType(store: Store, digest: string): string {
  const fd = fs.openSync(store.blobPath(digest), 'r');
  const head = Buffer.alloc(512);
  const n = fs.readSync(fd, head, 0, 512, 0);
  fs.closeSync(fd);
  const kind = sniffCompression(head.subarray(0, n));
  if (kind === 'gzip') return `${MT_LAYER}+gzip`;
  if (kind === 'zstd') return `${MT_LAYER}+zstd`;
  if (kind === 'none') return MT_LAYER;
  throw new UserError(`layer ${digest} is neither gzip, zstd nor a plain tar (${kind.unknown})`, 1, 'recompress the layer with gzip or zstd');
}

function storeName(name: string): string { return parseReference(name).storeName; }

async function writeImage(store: Store, names: string[], manifest: Manifest, config: ImageConfig): Promise<string[]> {
  const { digest } = await store.putBlob(JSON.stringify(manifest));
  const platform = config.os && config.architecture ? { os: config.os, architecture: config.architecture } : undefined;
  const out: string[] = [];
  for (const n of names) {
    store.setRef({ name: n, digest, platform, updated: new Date().toISOString() });
    out.push(n);
  }
  return out;
}

function untaggedName(label: string, digest: string): string {
  const base = path.basename(label).replace(/\.(tar|tgz|tar\.gz|oci|tar\.zst)$/i, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '') || 'loaded';
  return `localhost/${base}:${digest.slice(7, 19)}`;
}

async function loadDockerSave(store: Store, src: Source, manifestJson: string): Promise<string[]> {
  let entries: Array<{ Config: string; RepoTags?: string[] | null; Layers: string[] }>;
  try { entries = JSON.parse(manifestJson); } catch { throw new UserError(`${src.label}: manifest.json is not valid JSON`, 1, 'make the archive again with docker save'); }
  const loaded: string[] = [];
  for (const e of entries) {
    const cfgDesc = await src.blobAt(e.Config);
    const config = store.readJSONBlob<ImageConfig>(cfgDesc.digest);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== e.Layers.length) throw new UserError(`${src.label}: ${e.Config} lists ${diffIds.length} layers but manifest.json has ${e.Layers.length}`, 1, 'the archive is corrupt');
    const layers: Descriptor[] = [];
    for (const [i, lp] of e.Layers.entries()) {
      const d = await src.blobAt(lp);
      let mediaType = MT_LAYER;
      if (d.digest !== diffIds[i]) {
        mediaType = layerMediaType(store, d.digest);
        const diff = mediaType === MT_LAYER ? d.digest : await diffIdOf(store, d.digest, `${src.label}: ${lp}`);
        if (diff !== diffIds[i]) throw new UserError(`${src.label}: layer ${lp} has diff_id ${diff}, the config says ${diffIds[i]}`, 1, 'the archive is corrupt; make it again');
      }
      layers.push({ mediaType, digest: d.digest, size: d.size });
    }
    const manifest: Manifest = { schemaVersion: 2, mediaType: MT_OCI_MANIFEST, config: { mediaType: MT_OCI_CONFIG, digest: cfgDesc.digest, size: cfgDesc.size }, layers };
    const names = (e.RepoTags ?? []).map(storeName);
    if (!names.length) names.push(untaggedName(src.label, cfgDesc.digest));
    loaded.push(...await writeImage(store, names, manifest, config));
  }
  return loaded;
}

async function loadOci(store: Store, src: Source, indexJson: string): Promise<string[]> {
  const index = JSON.parse(indexJson) as { manifests?: Descriptor[] };
  const loaded: string[] = [];
  for (const top of index.manifests ?? []) {
    let desc = top;
    await src.blob(desc.digest);
    if (desc.mediaType === MT_OCI_INDEX || desc.mediaType === MT_DOCKER_LIST) {
      const sub = store.readJSONBlob<{ manifests: Descriptor[] }>(desc.digest);
      desc = selectPlatform(sub.manifests, hostPlatform(), src.label);
      await src.blob(desc.digest);
    }
    const manifest = store.readJSONBlob<Manifest>(desc.digest);
    await src.blob(manifest.config.digest);
    for (const l of manifest.layers) await src.blob(l.digest);
    const config = store.readJSONBlob<ImageConfig>(manifest.config.digest);
    const ann = top.annotations ?? {};
    let name: string;
    const full = ann['io.containerd.image.name'];
    const refName = ann['org.opencontainers.image.ref.name'];
    if (full) name = storeName(full);
    else if (refName && /[/:@]/.test(refName)) name = storeName(refName);
    else if (refName) {
      const base = untaggedName(src.label, 'sha256:x').replace(/^localhost\//, '').replace(/:.*$/, '');
      name = storeName(`${base}:${refName}`);
    } else name = untaggedName(src.label, desc.digest);
    const platform = config.os && config.architecture ? { os: config.os, architecture: config.architecture } : undefined;
    store.setRef({ name, digest: desc.digest, sourceDigest: top.digest !== desc.digest ? top.digest : undefined, platform, updated: new Date().toISOString() });
    loaded.push(name);
  }
  return loaded;
}

/** `load`: a docker save tarball, an OCI archive, or an OCI layout directory. Returns stored names. */
export async function loadArchive(ctx: Context, input: Readable | string, label: string): Promise<string[]> {
  const store = openStore(ctx.storeDir);
  let src: Source;
  if (typeof input === 'string') {
    if (!fs.existsSync(path.join(input, 'index.json'))) throw new UserError(`${input} is a directory but not an OCI image layout (no index.json)`, 1, 'pass an OCI layout directory or a tar file');
    src = dirSource(store, input);
  } else {
    src = await tarSource(store, input, label);
  }
  const dm = src.text('manifest.json');
  if (dm) return loadDockerSave(store, src, dm);
  const oi = src.text('index.json');
  if (oi) return loadOci(store, src, oi);
  throw new UserError(`${label} is neither a docker save tarball (manifest.json) nor an OCI archive (index.json)`, 1, "for a flat rootfs tarball from 'docker export' use 'userdock import'");
}

/** `import`: a flat rootfs tarball as a one-layer image named `name`. */
export async function importTarball(ctx: Context, input: Readable, label: string, name: string): Promise<Image> {
  const store = openStore(ctx.storeDir);
  const ref = parseReference(name);
  const layer = await store.putBlob(input);
  const mediaType = layerMediaType(store, layer.digest);
  const diffId = mediaType === MT_LAYER ? layer.digest : await diffIdOf(store, layer.digest, label);
  const plat = hostPlatform();
  const created = new Date().toISOString();
  const config: ImageConfig = {
    architecture: plat.architecture, os: 'linux', created,
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created, created_by: `userdock import ${label}` }],
  };
  const cfg = await store.putBlob(JSON.stringify(config));
  const manifest: Manifest = { schemaVersion: 2, mediaType: MT_OCI_MANIFEST, config: { mediaType: MT_OCI_CONFIG, digest: cfg.digest, size: cfg.size }, layers: [{ mediaType, digest: layer.digest, size: layer.size }] };
  await writeImage(store, [ref.storeName], manifest, config);
  return store.loadImage(store.getRef(ref.storeName)!);
}

/** Write a tar of `entries` under cwd to a file (atomically) or to a stream. */
async function writeTar(cwd: string, entries: string[], out: string | Writable): Promise<void> {
  const pack = tarCreate({ cwd, portable: true, follow: false, noDirRecurse: false }, entries);
  if (typeof out !== 'string') { await pipeline(pack as unknown as Readable, out, { end: out !== process.stdout }); return; }
  const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.partial.${process.pid}`);
  try {
    await pipeline(pack as unknown as Readable, fs.createWriteStream(tmp, { mode: 0o644 }));
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw diskFull(e, path.dirname(path.resolve(out)), 'write the archive elsewhere; nothing half-written was kept')
      ?? new UserError(`cannot write ${out}: ${(e as Error).message}`, 1, 'check the path, free space and permissions');
  }
}

/** `save`: images as a tarball `docker load` accepts. */
export async function saveImages(ctx: Context, images: Image[], out: string | Writable): Promise<void> {
  const store = openStore(ctx.storeDir);
  const stage = store.tempPath('save');
  fs.mkdirSync(stage, { recursive: true });
  try {
    const manifest: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
    const repositories: Record<string, Record<string, string>> = {};
    const entries = new Set<string>();
    for (const img of images) {
      const cfgName = `${img.id.slice(7)}.json`;
      fs.copyFileSync(store.blobPath(img.id), path.join(stage, cfgName));
      entries.add(cfgName);
      const diffIds = img.config.rootfs?.diff_ids ?? [];
      const layers: string[] = [];
      for (const [i, l] of img.manifest.layers.entries()) {
        const label = `layer ${l.digest} of ${img.ref.name}`;
        const tmp = path.join(stage, `layer-${i}.tmp`);
        const hash = crypto.createHash('sha256');
        const src = decompressStream(fs.createReadStream(store.blobPath(l.digest), { highWaterMark: 1 << 20 }), l.mediaType, label);
        src.on('data', (c: Buffer) => hash.update(c));
        await pipeline(src, fs.createWriteStream(tmp));
        const diff = hash.digest('hex');
        if (diffIds[i] && diffIds[i] !== `sha256:${diff}`) throw new UserError(`${label} decompresses to sha256:${diff}, the config says ${diffIds[i]}`, 1, 'the store is corrupt; pull the image again');
        fs.mkdirSync(path.join(stage, diff), { recursive: true });
        if (fs.existsSync(path.join(stage, diff, 'layer.tar'))) fs.rmSync(tmp); else fs.renameSync(tmp, path.join(stage, diff, 'layer.tar'));
        fs.writeFileSync(path.join(stage, diff, 'VERSION'), '1.0');
        layers.push(`${diff}/layer.tar`);
        entries.add(diff);
      }
      const tags: string[] = [];
      const { tag, digest } = splitStoredName(img.ref.name);
      if (tag && !digest) {
        const fam = familiarStoredName(img.ref.name);
        tags.push(fam);
        const repo = fam.slice(0, fam.lastIndexOf(':'));
        (repositories[repo] ??= {})[tag] = layers.length ? layers[layers.length - 1].split('/')[0] : '';
      }
      manifest.push({ Config: cfgName, RepoTags: tags, Layers: layers });
    }
    fs.writeFileSync(path.join(stage, 'manifest.json'), JSON.stringify(manifest));
    fs.writeFileSync(path.join(stage, 'repositories'), JSON.stringify(repositories));
    await writeTar(stage, ['manifest.json', 'repositories', ...entries], out);
  } finally {
    removeTree(stage);
  }
}

/** `export`: the container's tree (or, with clone, its whole userdock directory) as a tar. */
export async function exportContainer(c: Container, out: string | Writable, opts: { clone?: boolean } = {}): Promise<void> {
  if (opts.clone) { await writeTar(path.dirname(c.rootfs), ['container.json', 'ROOT'], out); return; }
  const names = fs.readdirSync(c.rootfs).sort();
  await writeTar(c.rootfs, names.length ? names : [], out);
}
