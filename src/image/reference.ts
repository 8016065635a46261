import { UsageError } from '../errors.js';

/**
 * Image references, parsed the way docker (distribution/reference) parses
 * them:
 *
 *   debian                       -> docker.io/library/debian:latest
 *   debian:12                    -> docker.io/library/debian:12
 *   docker.io/library/debian     -> docker.io/library/debian:latest
 *   index.docker.io/x/y          -> docker.io/x/y:latest
 *   quay.io/org/img@sha256:…     -> quay.io/org/img@sha256:…
 *   127.0.0.1:5000/x:y           -> 127.0.0.1:5000/x:y
 *   localhost/x                  -> localhost/x:latest
 *
 * The first path component is a registry when it contains '.' or ':', is
 * 'localhost', or has an uppercase letter; otherwise the registry is docker.io.
 */
export interface Reference {
  /** Registry host[:port], e.g. docker.io, quay.io, 127.0.0.1:5000. */
  registry: string;
  /** Repository path on the registry, e.g. library/debian. */
  repository: string;
  /** Tag; 'latest' when neither tag nor digest was given. */
  tag?: string;
  /** sha256:… when given. */
  digest?: string;
  /** registry/repository, e.g. docker.io/library/debian. */
  name: string;
  /** Full name, e.g. docker.io/library/debian:latest, quay.io/x/y@sha256:…, r/x:t@sha256:… */
  canonical: string;
  /** Short name docker shows, e.g. debian:latest, quay.io/x/y@sha256:… */
  familiar: string;
  /** The name the store keeps the image under: name@digest when pulled by digest, else name:tag. */
  storeName: string;
}

export const DEFAULT_REGISTRY = 'docker.io';
const MAX_NAME = 255;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6 = /^\[[a-fA-F0-9:.]+\]$/;

function bad(s: string, why: string): UsageError {
  return new UsageError(`invalid image reference "${s}": ${why}`,
    'use NAME[:TAG] or NAME@sha256:DIGEST, e.g. debian:12 or quay.io/org/img:1.0');
}

function validDomain(d: string): boolean {
  let host = d; let port: string | undefined;
  if (d.startsWith('[')) {
    const close = d.indexOf(']');
    if (close < 0) return false;
    host = d.slice(0, close + 1);
    const rest = d.slice(close + 1);
    if (rest) { if (!rest.startsWith(':')) return false; port = rest.slice(1); }
    if (!IPV6.test(host)) return false;
  } else {
    const c = d.lastIndexOf(':');
    if (c >= 0) { host = d.slice(0, c); port = d.slice(c + 1); }
    if (!host || !host.split('.').every((p) => DOMAIN_COMPONENT.test(p))) return false;
  }
  if (port !== undefined && !/^[0-9]+$/.test(port)) return false;
  return true;
}

/** Whether a first path component names a registry rather than a namespace. */
function isDomain(first: string): boolean {
  return /[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first || first.startsWith('[');
}

export function parseReference(input: string): Reference {
  const s = input.trim();
  if (!s) throw bad(input, 'empty name');
  if (/\s/.test(s)) throw bad(input, 'contains whitespace');
  if (/^[a-f0-9]{64}$/.test(s)) throw bad(input, 'cannot specify 64-byte hexadecimal strings as a name');

  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(input, `invalid digest "${digest}"`);
    const [alg, hex] = digest.split(':');
    if (alg === 'sha256' && !/^[a-f0-9]{64}$/.test(hex)) throw bad(input, 'a sha256 digest must be 64 lowercase hex characters');
    if (alg !== 'sha256') throw bad(input, `unsupported digest algorithm "${alg}"`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(input, `invalid tag "${tag}"`);
  }
  if (!rest) throw bad(input, 'empty repository name');

  let registry = DEFAULT_REGISTRY;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0 && isDomain(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!validDomain(registry)) throw bad(input, `invalid registry "${registry}"`);
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DEFAULT_REGISTRY;
  if (!repository) throw bad(input, 'empty repository name');
  if (repository.toLowerCase() !== repository) throw bad(input, 'repository name must be lowercase');
  const comps = repository.split('/');
  for (const c of comps) {
    if (!COMPONENT.test(c)) throw bad(input, `invalid repository path component "${c}"`);
  }
  if (registry === DEFAULT_REGISTRY && comps.length === 1) repository = `library/${repository}`;
  const name = `${registry}/${repository}`;
  if (name.length > MAX_NAME) throw bad(input, `repository name longer than ${MAX_NAME} characters`);
  if (!tag && !digest) tag = 'latest';

  const suffix = (tag ? `:${tag}` : '') + (digest ? `@${digest}` : '');
  const canonical = name + suffix;
  const familiarName = familiarizeName(name);
  return {
    registry, repository, tag, digest, name, canonical,
    familiar: familiarName + suffix,
    storeName: digest ? `${name}@${digest}` : `${name}:${tag}`,
  };
}

/** docker.io/library/debian -> debian; docker.io/x/y -> x/y; others unchanged. */
export function familiarizeName(name: string): string {
  if (name.startsWith(`${DEFAULT_REGISTRY}/`)) {
    const r = name.slice(DEFAULT_REGISTRY.length + 1);
    return r.startsWith('library/') && r.split('/').length === 2 ? r.slice('library/'.length) : r;
  }
  return name;
}

/**
 * Split a stored name (name:tag or name@digest) into repository name and
 * tag/digest, for listing.
 */
export function splitStoredName(stored: string): { name: string; tag?: string; digest?: string } {
  const at = stored.indexOf('@');
  if (at >= 0) return { name: stored.slice(0, at), digest: stored.slice(at + 1) };
  const colon = stored.lastIndexOf(':');
  if (colon > stored.lastIndexOf('/')) return { name: stored.slice(0, colon), tag: stored.slice(colon + 1) };
  return { name: stored };
}

/** A reference string for a registry name, for user-facing output. */
export function familiarStoredName(stored: string): string {
  const { name, tag, digest } = splitStoredName(stored);
  return familiarizeName(name) + (tag ? `:${tag}` : '') + (digest ? `@${digest}` : '');
}
