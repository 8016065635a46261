import type { Context } from '../cli/context.js';
import { hostPlatform, parsePlatform, samePlatform } from './platform.js';
import { parseReference } from './reference.js';
import { openStore, type Image, type ImageRef, type Manifest, type Platform, type Store } from './store.js';

/**
 * `userdock pull` of an image already present, without the registry client.
 *
 * cwltool calls `userdock pull IMAGE` before every step, so in a 100-way
 * scatter the same tag is confirmed 100 times within seconds. A ref records
 * when a registry last confirmed its tag (`checked`); while that is younger
 * than USERDOCK_PULL_TTL seconds (default 300; 0 = always ask), a pull of the
 * tag is answered by the store alone: no request, and no registry code
 * loaded (this module needs only the store). Pulls by digest never need the
 * registry once the image is complete.
 */

export const DEFAULT_PULL_TTL_S = 300;

/** USERDOCK_PULL_TTL in ms (unset, empty or invalid: the default; 0: always check). */
export function pullTtlMs(env: NodeJS.ProcessEnv): number {
  const v = env.USERDOCK_PULL_TTL?.trim();
  if (!v) return DEFAULT_PULL_TTL_S * 1000;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n * 1000 : DEFAULT_PULL_TTL_S * 1000;
}

/** Whether a registry confirmed the ref less than ttlMs ago (a time in the future does not count). */
export function recentlyChecked(ref: ImageRef, ttlMs: number, now = Date.now()): boolean {
  if (!(ttlMs > 0) || !ref.checked) return false;
  const t = Date.parse(ref.checked);
  return Number.isFinite(t) && now >= t && now - t < ttlMs;
}

/**
 * A stored image fits when it is for the wanted platform, or (without an
 * explicit --platform) when it came from a single-platform manifest.
 */
export function platformFits(r: ImageRef | undefined, want: Platform, explicit: boolean): boolean {
  return !!r && (samePlatform(r.platform, want) || !r.platform
    || (!explicit && (!r.sourceDigest || r.sourceDigest === r.digest)));
}

/** Whether the manifest and every blob it names are in the store. */
export function imageComplete(store: Store, manifestDigest: string): boolean {
  if (!store.hasBlob(manifestDigest)) return false;
  try {
    const m = store.readJSONBlob<Manifest>(manifestDigest);
    return store.hasBlob(m.config.digest, m.config.size) && m.layers.every((l) => store.hasBlob(l.digest, l.size));
  } catch { return false; }
}

/**
 * The stored image for a pull of `refStr` by tag, when its ref was confirmed
 * within the TTL, fits the platform and is complete; else undefined (the
 * caller pulls). Throws only for a malformed reference or platform.
 */
export function freshStoredImage(ctx: Context, refStr: string, opts: { platform?: string; ttlMs?: number } = {}): Image | undefined {
  const ttl = opts.ttlMs ?? pullTtlMs(ctx.env);
  if (!(ttl > 0)) return undefined;
  const ref = parseReference(refStr);
  if (ref.digest) return undefined;
  const want = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
  const store = openStore(ctx.storeDir);
  const existing = store.getRef(ref.storeName);
  if (!existing || !recentlyChecked(existing, ttl) || !platformFits(existing, want, !!opts.platform)) return undefined;
  if (!imageComplete(store, existing.digest)) return undefined;
  try { return store.loadImage(existing); } catch { return undefined; }
}
