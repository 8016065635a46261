import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors.js';
import { basicHeader, credentialKey, getCredentials, parseWWWAuthenticate, type Credentials } from './auth.js';
import { isInsecure, isLoopback, type Endpoint, type RegistryConfig } from './config.js';
import { closeConnections, httpRequest, proxyHostFor, undiciLoad, type Body, type HttpResponse } from './http.js';

/** Whether -D output has named how undici was loaded (once per process). */
let transportNamed = false;

/**
 * A client for the registry v2 / OCI distribution API of one repository,
 * over one or more endpoints (mirrors, then the origin). Handles the
 * anonymous and authenticated bearer-token flow, basic auth, redirects, and
 * retries with backoff on connection errors, 429 and 5xx.
 */

export const MANIFEST_TYPES = {
  dockerV2: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerV1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerV1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export const ACCEPT = [
  MANIFEST_TYPES.ociIndex, MANIFEST_TYPES.dockerList, MANIFEST_TYPES.ociManifest, MANIFEST_TYPES.dockerV2,
].join(', ');

const MAX_MANIFEST = 8 * 1024 * 1024;

export type FailureKind = 'network' | 'server' | 'auth' | 'notfound' | 'other';

/** A registry failure; `kind` says whether the registry was unreachable. */
export class RegistryError extends UserError {
  constructor(message: string, readonly kind: FailureKind, hint?: string, readonly status?: number) {
    super(message, 1, hint);
    this.name = 'RegistryError';
  }
  get unreachable(): boolean { return this.kind === 'network' || this.kind === 'server'; }
}

export interface ClientOptions {
  registry: string;
  repository: string;
  endpoints: Endpoint[];
  config: RegistryConfig;
  configDir: string;
  env: NodeJS.ProcessEnv;
  debug?: (msg: string) => void;
  /** Use these instead of the stored credentials (login). */
  credentials?: Credentials;
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Body;
  url: string;
}

function timeoutMs(env: NodeJS.ProcessEnv): number {
  return Number(env.USERDOCK_HTTP_TIMEOUT) > 0 ? Number(env.USERDOCK_HTTP_TIMEOUT) * 1000 : 60_000;
}

/** Close idle connections so the process can exit promptly. */
export async function closeAgent(): Promise<void> {
  await closeConnections();
}

export function header(h: Response['headers'], name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH',
  'ENETUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED', 'UND_ERR_ABORTED', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH']);

export function isNetworkError(e: unknown): boolean {
  let x: unknown = e;
  for (let i = 0; i < 4 && x; i++) {
    const code = (x as { code?: string }).code;
    if (code && NETWORK_CODES.has(code)) return true;
    x = (x as { cause?: unknown }).cause;
  }
  return e instanceof Error && /socket|ECONNRESET|terminated|other side closed/i.test(e.message);
}

/** TLS verification failures (node's codes): the registry's certificate is not trusted here. */
const CERT_CODES = /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/** The error for a request that got no answer: names the host, the cause, the proxy in the way, and the fix. */
function unreachable(u: URL, e: unknown, env: NodeJS.ProcessEnv): RegistryError {
  const code = errText(e);
  const proxy = proxyHostFor(u, env);
  const via = proxy ? ` through the proxy ${proxy}` : '';
  if (CERT_CODES.test(code)) {
    return new RegistryError(`cannot reach ${u.host}${via}: its TLS certificate is not trusted here (${code})`, 'other',
      'give node the CA that signed it: NODE_EXTRA_CA_CERTS=/path/to/ca.pem (a proxy that inspects TLS needs its own CA there too)');
  }
  return new RegistryError(`cannot reach ${u.host}${via} (${code})`, isNetworkError(e) ? 'network' : 'other',
    proxy ? 'check the proxy (https_proxy, http_proxy; no_proxy for hosts to reach directly) and the registry address'
      : 'check the network or the registry address, or configure a mirror (USERDOCK_MIRRORS) or a proxy (https_proxy)');
}

/**
 * The status of a proxy that refused us, from undici's errors: "Proxy
 * response (407) !== 200 when HTTP Tunneling" (CONNECT), "Proxy
 * Authentication Required (407)" (absolute-URI requests).
 */
function proxyRefusal(e: unknown): number | undefined {
  for (let x = e, i = 0; x && i < 4; x = (x as { cause?: unknown }).cause, i++) {
    const m = /Proxy response \((\d{3})\)|Proxy Authentication Required \((\d{3})\)/.exec((x as Error).message ?? '');
    if (m) return Number(m[1] ?? m[2]);
  }
  return undefined;
}

function proxyRefused(u: URL, status: number, env: NodeJS.ProcessEnv): RegistryError {
  const proxy = proxyHostFor(u, env) ?? 'in the way';
  return new RegistryError(`the proxy ${proxy} refused the request to ${u.host} (HTTP ${status})`, 'other',
    status === 407 ? 'the proxy wants credentials: put them in its URL, https_proxy=http://USER:PASSWORD@host:port, and check them'
      : `the proxy does not let this registry through; ask its admins, or set no_proxy=${u.hostname} if it is reachable directly`);
}

function errText(e: unknown): string {
  const c = (e as { code?: string; cause?: { code?: string } });
  return c.code ?? c.cause?.code ?? (e instanceof Error ? e.message : String(e));
}

export function retryCount(env: NodeJS.ProcessEnv): number {
  const n = Number(env.USERDOCK_RETRIES);
  return Number.isInteger(n) && n >= 0 ? n : 4;
}

export function backoffMs(attempt: number): number {
  const base = Math.min(200 * 2 ** attempt, 5_000);
  return base / 2 + Math.random() * base / 2;
}

export interface ManifestAnswer { status: number; digest?: string; mediaType?: string; body?: Buffer; size?: number }

interface AuthState { header?: string; basic?: boolean; failed?: boolean }

export class RegistryClient {
  private auth = new Map<string, AuthState>();
  readonly retries: number;

  constructor(readonly opts: ClientOptions) {
    this.retries = retryCount(opts.env);
  }

  get endpoints(): Endpoint[] { return this.opts.endpoints; }

  private credsFor(ep: Endpoint): Credentials | undefined {
    if (this.opts.credentials) return this.opts.credentials;
    const host = new URL(ep.url).host;
    const key = ep.mirror ? host : credentialKey(this.opts.registry);
    return getCredentials(this.opts.configDir, key);
  }

  /** Whether credentials may be sent to this URL (https, or loopback/insecure http). */
  private mayCarryCredentials(url: string, ep: Endpoint): boolean {
    const u = new URL(url);
    if (u.protocol === 'https:') return true;
    return isLoopback(u.host) || isInsecure(u.host, this.opts.config) || new URL(ep.url).host === u.host;
  }

  url(ep: Endpoint, path: string): string { return `${ep.url}/v2/${path}`; }

  private dbg(msg: string): void { this.opts.debug?.(msg); }

  /**
   * One request with auth, redirects and retries. Resolves with any final
   * status other than 401/429/5xx (those are retried or turned into errors).
   * The caller must consume or dump the body.
   */
  async request(ep: Endpoint, path: string, init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string>; scope?: string } = {}): Promise<Response> {
    const method = init.method ?? 'GET';
    const scope = init.scope ?? `repository:${this.opts.repository}:pull`;
    let url = this.url(ep, path);
    let authTried = false;
    let redirects = 0;
    for (let attempt = 0; ; ) {
      const sameOrigin = new URL(url).origin === new URL(ep.url).origin;
      const headers: Record<string, string> = { 'user-agent': 'userdock', ...init.headers };
      const st = this.auth.get(`${ep.url} ${scope}`);
      if (sameOrigin && st?.header) headers.authorization = st.header;
      let res: HttpResponse;
      try {
        res = await httpRequest(url, { method, headers, timeoutMs: timeoutMs(this.opts.env) });
      } catch (e) {
        const refused = proxyRefusal(e);
        if (refused) throw proxyRefused(new URL(url), refused, this.opts.env);
        if (isNetworkError(e) && attempt < this.retries) {
          const wait = backoffMs(attempt++);
          this.dbg(`${method} ${url}: ${errText(e)}; retry in ${Math.round(wait)} ms`);
          await sleep(wait);
          continue;
        }
        throw unreachable(new URL(url), e, this.opts.env);
      }
      if (!transportNamed) { transportNamed = true; this.dbg(`http transport: undici (${undiciLoad})`); }
      if (res.statusCode === 407) { await res.body.dump(); throw proxyRefused(new URL(url), 407, this.opts.env); }
      this.dbg(`${method} ${url} -> ${res.statusCode}`);
      const r: Response = { status: res.statusCode, headers: res.headers, body: res.body, url };
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location && res.statusCode !== 304) {
        await res.body.dump();
        if (++redirects > 8) throw new RegistryError(`too many redirects for ${url}`, 'other');
        url = new URL(String(res.headers.location), url).toString();
        continue;
      }
      if (res.statusCode === 401 && sameOrigin && !authTried) {
        const wa = header(res.headers, 'www-authenticate');
        await res.body.dump();
        authTried = true;
        await this.authenticate(ep, scope, wa);
        continue;
      }
      if (res.statusCode === 401 || res.statusCode === 403) {
        await res.body.dump();
        const creds = this.credsFor(ep);
        throw new RegistryError(`${new URL(url).host} refused access to ${this.opts.repository} (HTTP ${res.statusCode}${creds ? ', with the stored credentials' : ', anonymously'})`,
          'auth', creds ? `check the image name, or run 'userdock login ${new URL(ep.url).host}' again`
            : `check the image name; if the image is private, run 'userdock login ${ep.mirror ? new URL(ep.url).host : this.opts.registry}'`, res.statusCode);
      }
      if ((res.statusCode >= 500 || res.statusCode === 429) && attempt < this.retries) {
        await res.body.dump();
        const ra = Number(header(res.headers, 'retry-after'));
        const wait = Number.isFinite(ra) && ra > 0 ? Math.min(ra * 1000, 30_000) : backoffMs(attempt);
        attempt++;
        this.dbg(`${method} ${url}: HTTP ${res.statusCode}; retry in ${Math.round(wait)} ms`);
        await sleep(wait);
        continue;
      }
      if (res.statusCode >= 500 || res.statusCode === 429) {
        await res.body.dump();
        throw new RegistryError(`${new URL(url).host} answered HTTP ${res.statusCode} for ${method} ${this.opts.repository} after ${this.retries + 1} tries`,
          'server', 'the registry is failing; try again later or configure a mirror', res.statusCode);
      }
      return r;
    }
  }

  /** Answer a 401 challenge: fetch a bearer token, or use basic credentials. */
  private async authenticate(ep: Endpoint, scope: string, wwwAuth: string | undefined): Promise<void> {
    const key = `${ep.url} ${scope}`;
    const creds = this.credsFor(ep);
    const hostName = new URL(ep.url).host;
    const loginHint = `run 'userdock login ${ep.mirror ? hostName : this.opts.registry}'`;
    const challenges = wwwAuth ? parseWWWAuthenticate(wwwAuth) : [];
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer && bearer.params.realm) {
      let realm: URL;
      try { realm = new URL(bearer.params.realm); } catch {
        throw new RegistryError(`${hostName} sent an invalid token realm`, 'other');
      }
      if (bearer.params.service) realm.searchParams.set('service', bearer.params.service);
      const sc = bearer.params.scope || scope;
      if (sc) realm.searchParams.set('scope', sc);
      const headers: Record<string, string> = { 'user-agent': 'userdock' };
      if (creds && this.mayCarryCredentials(realm.toString(), ep)) headers.authorization = basicHeader(creds);
      let res: HttpResponse | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          res = await httpRequest(realm, { method: 'GET', headers, timeoutMs: timeoutMs(this.opts.env) });
          if ((res.statusCode >= 500 || res.statusCode === 429) && attempt < this.retries) {
            await res.body.dump(); await sleep(backoffMs(attempt)); continue;
          }
          break;
        } catch (e) {
          if (isNetworkError(e) && attempt < this.retries) { await sleep(backoffMs(attempt)); continue; }
          throw new RegistryError(`cannot reach the token service ${realm.host} for ${hostName} (${errText(e)})`,
            isNetworkError(e) ? 'network' : 'other', 'check the network');
        }
      }
      this.dbg(`GET ${realm.origin}${realm.pathname} (token) -> ${res.statusCode}`);
      if (res.statusCode === 401 || res.statusCode === 403) {
        await res.body.dump();
        throw new RegistryError(`the token service ${realm.host} rejected ${creds ? 'the stored credentials' : 'anonymous access'} for ${hostName}`,
          'auth', creds ? `run 'userdock login ${ep.mirror ? hostName : this.opts.registry}' again` : loginHint, res.statusCode);
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new RegistryError(`the token service ${realm.host} answered HTTP ${res.statusCode}`,
          res.statusCode >= 500 ? 'server' : 'other', 'try again later');
      }
      let tok: { token?: string; access_token?: string };
      try { tok = (await res.body.json()) as typeof tok; } catch {
        throw new RegistryError(`the token service ${realm.host} sent an unreadable answer`, 'other');
      }
      const t = tok.token ?? tok.access_token;
      if (!t) throw new RegistryError(`the token service ${realm.host} sent no token`, 'other');
      this.auth.set(key, { header: `Bearer ${t}` });
      return;
    }
    if (basic || !wwwAuth) {
      if (!creds) {
        throw new RegistryError(`${hostName} requires authentication for ${this.opts.repository}`, 'auth', loginHint, 401);
      }
      if (!this.mayCarryCredentials(ep.url, ep)) {
        throw new RegistryError(`refusing to send credentials over plain http to ${hostName}`, 'auth', 'use https');
      }
      this.auth.set(key, { header: basicHeader(creds), basic: true });
      return;
    }
    throw new RegistryError(`${hostName} asks for an unsupported authentication scheme (${challenges.map((c) => c.scheme).join(', ')})`, 'auth');
  }

  /** Check credentials: GET /v2/ and answer any challenge. */
  async ping(ep: Endpoint): Promise<void> {
    const res = await this.request(ep, '', { scope: '' });
    await res.body.dump();
    if (res.status !== 200) throw new RegistryError(`${new URL(ep.url).host} answered HTTP ${res.status} for /v2/`, 'other', 'is this a registry?');
  }

  /** GET or HEAD a manifest on one endpoint. */
  async manifest(ep: Endpoint, reference: string, method: 'GET' | 'HEAD'): Promise<ManifestAnswer> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.manifestOnce(ep, reference, method);
      } catch (e) {
        if (e instanceof RegistryError || !isNetworkError(e) || attempt >= this.retries) {
          if (e instanceof RegistryError) throw e;
          throw new RegistryError(`reading the manifest ${reference} from ${new URL(ep.url).host} failed (${errText(e)})`,
            isNetworkError(e) ? 'network' : 'other', 'check the network or try again');
        }
        await sleep(backoffMs(attempt));
      }
    }
  }

  private async manifestOnce(ep: Endpoint, reference: string, method: 'GET' | 'HEAD'): Promise<ManifestAnswer> {
    const res = await this.request(ep, `${this.opts.repository}/manifests/${reference}`, { method, headers: { accept: ACCEPT } });
    const digest = header(res.headers, 'docker-content-digest');
    const mediaType = header(res.headers, 'content-type')?.split(';')[0].trim();
    if (res.status !== 200) {
      await res.body.dump();
      return { status: res.status };
    }
    if (method === 'HEAD') {
      await res.body.dump();
      return { status: 200, digest, mediaType, size: Number(header(res.headers, 'content-length')) };
    }
    const chunks: Buffer[] = []; let n = 0;
    for await (const c of res.body) {
      n += (c as Buffer).length;
      if (n > MAX_MANIFEST) { res.body.destroy(); throw new RegistryError(`manifest for ${reference} is larger than ${MAX_MANIFEST} bytes`, 'other'); }
      chunks.push(c as Buffer);
    }
    return { status: 200, digest, mediaType, body: Buffer.concat(chunks) };
  }
}
