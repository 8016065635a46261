import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError, UserError } from '../errors.js';
import { tryLock } from '../lock.js';
import type { Context } from '../cli/context.js';
import { pull, type PullOptions } from './pull.js';
import { parseReference } from './reference.js';
import type { Image, ImageRef, Manifest, Store } from './store.js';

/** Pull an image (see pull.ts) and return it. */
export async function pullImage(ctx: Context, ref: string, opts: PullOptions = {}): Promise<Image> {
  return (await pull(ctx, ref, opts)).image;
}

function load(store: Store, ref: ImageRef): Image | undefined {
  try { return store.loadImage(ref); } catch { return undefined; }
}

/**
 * All stored refs that `nameOrId` names: a familiar or canonical name
 * (debian, docker.io/library/debian:latest, x@sha256:…), or an image id /
 * manifest digest, full or an unambiguous prefix (with or without sha256:).
 * `byName` says whether it matched as a name.
 */
export function findImages(store: Store, nameOrId: string): { refs: ImageRef[]; byName: boolean } {
  const s = nameOrId.trim();
  const refs = store.listRefs();
  let parsed: ReturnType<typeof parseReference> | undefined;
  try { parsed = parseReference(s); } catch { /* not a name */ }
  if (parsed) {
    const exact = store.getRef(parsed.storeName);
    if (exact) return { refs: [exact], byName: true };
    if (parsed.digest) {
      const m = refs.filter((r) => r.name.startsWith(`${parsed!.name}:`) || r.name.startsWith(`${parsed!.name}@`))
        .filter((r) => r.digest === parsed!.digest || r.sourceDigest === parsed!.digest);
      if (m.length) return { refs: [m[0]], byName: true };
    }
  }
  const hex = s.startsWith('sha256:') ? s.slice(7) : s;
  if (!/^[a-f0-9]{1,64}$/.test(hex)) return { refs: [], byName: false };
  const matches: Array<{ ref: ImageRef; id: string }> = [];
  for (const r of refs) {
    const img = load(store, r);
    const ids = [img?.id, r.digest].filter((x): x is string => !!x).map((x) => x.slice(7));
    if (ids.some((x) => x.startsWith(hex))) matches.push({ ref: r, id: img?.id ?? r.digest });
  }
  const distinct = new Set(matches.map((m) => m.id));
  if (distinct.size > 1) {
    throw new UserError(`image id prefix "${nameOrId}" is ambiguous: it matches ${distinct.size} images`, 1, 'give more characters of the id, or a name');
  }
  return { refs: matches.map((m) => m.ref), byName: false };
}

/** The stored image `nameOrId` names, or undefined. */
export function findImage(store: Store, nameOrId: string): Image | undefined {
  const { refs } = findImages(store, nameOrId);
  for (const r of refs) { const img = load(store, r); if (img) return img; }
  return undefined;
}

/** Bytes the image's blobs take (compressed layers + config). */
export function imageSize(img: Image): number {
  return img.manifest.config.size + img.manifest.layers.reduce((a, l) => a + l.size, 0);
}

function blobsOf(store: Store, ref: ImageRef): string[] {
  const out = [ref.digest];
  if (ref.sourceDigest) out.push(ref.sourceDigest);
  try {
    const m = store.readJSONBlob<Manifest>(ref.digest);
    out.push(m.config.digest, ...m.layers.map((l) => l.digest));
  } catch { /* manifest missing */ }
  return out;
}

export interface RemoveResult {
  untagged: string[];
  deleted: string[];
  /** Manifest digests no remaining name points to (their pristine rootfs trees can go). */
  orphaned: string[];
}

/**
 * Remove a name (or, given an id, every name of that image with force) and
 * free the blobs no remaining image uses. Blobs being downloaded right now
 * (their lock is held) are left alone.
 */
export function removeImage(store: Store, nameOrId: string, force = false): RemoveResult {
  const { refs, byName } = findImages(store, nameOrId);
  if (!refs.length) {
    throw new UserError(`no such image: ${nameOrId} in ${store.dir}`, 1, `see 'userdock images'`);
  }
  if (!byName && refs.length > 1 && !force) {
    throw new UserError(`image ${nameOrId} is referenced by ${refs.length} names (${refs.map((r) => r.name).join(', ')})`, 1,
      'remove the names one by one, or use --force');
  }
  const candidates = new Set<string>();
  const untagged: string[] = [];
  for (const r of refs) {
    for (const b of blobsOf(store, r)) candidates.add(b);
    if (store.deleteRef(r.name)) untagged.push(r.name);
  }
  const live = store.liveBlobs();
  const orphaned = [...new Set(refs.map((r) => r.digest))].filter((d) => !live.has(d));
  const deleted: string[] = [];
  for (const b of candidates) {
    if (live.has(b) || !store.hasBlob(b)) continue;
    const lock = tryLock(path.join(store.locksDir, `blob-${b.slice(7)}`));
    if (!lock) continue;
    try { fs.unlinkSync(store.blobPath(b)); deleted.push(b); } catch { /* gone */ } finally { lock.release(); }
  }
  return { untagged, deleted, orphaned };
}

/** Give an image another name. */
export function tagImage(store: Store, src: string, target: string): ImageRef {
  const img = findImage(store, src);
  if (!img) throw new UserError(`no such image: ${src} in ${store.dir}`, 1, `see 'userdock images'`);
  const t = parseReference(target);
  if (t.digest) throw new UsageError(`cannot tag with a digest: ${target}`, 'give NAME[:TAG]');
  const ref: ImageRef = { ...img.ref, name: t.storeName, updated: new Date().toISOString(), checked: undefined };
  store.setRef(ref);
  return ref;
}

export interface VerifyProblem { digest: string; what: string; problem: string }

/** Re-hash every blob of the image. Empty result: all good. */
export async function verifyImage(store: Store, img: Image, onBlob?: (digest: string, ok: boolean) => void): Promise<VerifyProblem[]> {
  const items: Array<{ digest: string; what: string; size?: number }> = [
    { digest: img.ref.digest, what: 'manifest' },
    ...(img.ref.sourceDigest && img.ref.sourceDigest !== img.ref.digest ? [{ digest: img.ref.sourceDigest, what: 'index' }] : []),
    { digest: img.manifest.config.digest, what: 'config', size: img.manifest.config.size },
    ...img.manifest.layers.map((l, i) => ({ digest: l.digest, what: `layer ${i + 1}`, size: l.size })),
  ];
  const problems: VerifyProblem[] = [];
  for (const it of items) {
    let problem: string | undefined;
    if (!store.hasBlob(it.digest)) {
      problem = it.what === 'index' ? undefined : 'missing';
    } else {
      const h = crypto.createHash('sha256'); let n = 0;
      for await (const c of fs.createReadStream(store.blobPath(it.digest))) { h.update(c as Buffer); n += (c as Buffer).length; }
      const got = `sha256:${h.digest('hex')}`;
      if (got !== it.digest) problem = `content hashes to ${got}`;
      else if (it.size !== undefined && n !== it.size) problem = `size ${n}, manifest says ${it.size}`;
    }
    onBlob?.(it.digest, !problem);
    if (problem) problems.push({ digest: it.digest, what: it.what, problem });
  }
  return problems;
}
