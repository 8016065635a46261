import { UsageError, UserError } from '../errors.js';
import type { Descriptor, Platform } from './store.js';

/** Platforms as OCI names them: os/architecture[/variant]. */

const ARCH: Record<string, string> = {
  x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x',
  riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle',
};

/** Normalize the common aliases: x86_64 -> amd64, aarch64 -> arm64, armhf -> arm/v7. */
export function normalizePlatform(p: Platform): Platform {
  let os = p.os.toLowerCase();
  let arch = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  if (os === 'macos') os = 'darwin';
  if (arch === 'x86_64' || arch === 'x86-64') arch = 'amd64';
  else if (arch === 'aarch64') { arch = 'arm64'; }
  else if (arch === 'armhf') { arch = 'arm'; variant = variant ?? 'v7'; }
  else if (arch === 'armel') { arch = 'arm'; variant = variant ?? 'v6'; }
  else if (arch === 'i386' || arch === 'i686') arch = '386';
  if (arch === 'arm64' && variant === 'v8') variant = undefined;
  if (arch === 'amd64' && variant === 'v1') variant = undefined;
  return variant ? { os, architecture: arch, variant } : { os, architecture: arch };
}

export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !p || !/^[a-zA-Z0-9_.-]+$/.test(p))) {
    throw new UsageError(`invalid platform "${s}"`, 'use os/arch[/variant], e.g. linux/amd64 or linux/arm/v7');
  }
  return normalizePlatform({ os: parts[0], architecture: parts[1], variant: parts[2] });
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

export function hostPlatform(): Platform {
  const arch = ARCH[process.arch] ?? process.arch;
  if (arch === 'arm') {
    const v = (process.config.variables as unknown as Record<string, unknown>).arm_version;
    return { os: 'linux', architecture: 'arm', variant: `v${v ?? 7}` };
  }
  return { os: 'linux', architecture: arch };
}

function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest'
    || d.platform?.os === 'unknown' || d.platform?.architecture === 'unknown';
}

/**
 * Pick the manifest for `want` from an index / manifest list. An unspecified
 * variant matches any (preferring an exact or variant-less entry); a given
 * variant must match (arm64 with no variant counts as v8).
 */
export function selectPlatform(manifests: Descriptor[], want: Platform, what = 'image'): Descriptor {
  const w = normalizePlatform(want);
  const candidates = manifests.filter((d) => d.platform && !isAttestation(d)).map((d) => ({ d, p: normalizePlatform(d.platform!) }))
    .filter(({ p }) => p.os === w.os && p.architecture === w.architecture);
  const exact = candidates.find(({ p }) => p.variant === w.variant);
  if (exact) return exact.d;
  if (!w.variant && candidates.length) {
    // Highest variant first (v8 > v7 > v6) when the host did not say.
    return candidates.sort((a, b) => (b.p.variant ?? '').localeCompare(a.p.variant ?? ''))[0].d;
  }
  const have = manifests.filter((d) => d.platform && !isAttestation(d)).map((d) => formatPlatform(normalizePlatform(d.platform!)));
  throw new UserError(`${what} has no variant for platform ${formatPlatform(w)} (available: ${have.join(', ') || 'none'})`, 1,
    'choose one of the available platforms with --platform=os/arch[/variant]');
}

export function samePlatform(a: Platform | undefined, b: Platform | undefined): boolean {
  if (!a || !b) return false;
  const x = normalizePlatform(a); const y = normalizePlatform(b);
  return x.os === y.os && x.architecture === y.architecture && (x.variant ?? '') === (y.variant ?? '');
}
