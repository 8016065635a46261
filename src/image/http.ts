import { createRequire } from 'node:module';
import v8 from 'node:v8';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher, EnvHttpProxyAgent } from 'undici';
import { requireBundled } from '../lazy.js';
import { isLoopback } from './config.js';

/**
 * The HTTP transport of the registry client (registry v2 / OCI distribution
 * API): undici, one keep-alive Agent per process (up to 16 connections per
 * origin; with a proxy configured, a proxy agent beside it for the
 * registries it serves), loaded lazily on the first request, so commands
 * that need no network (run, or a pull answered by the store) never load it.
 *
 * Load cost: undici's package entry pulls in fetch, websocket, cache, mocks
 * and more (~80 ms CPU here). Only the Agent and the request API are loaded:
 * from the CLI bundle's dist/bundle/undici.cjs (those two and what they
 * require, one file compiled with a V8 code cache: ~15 ms, src/build/bundle.ts),
 * else from their files in node_modules (~35 ms: ~60 files resolved and
 * compiled), else, if undici's file layout ever changes, from the package
 * entry point. The llhttp WebAssembly parser is compiled on the first
 * connection either way.
 */

export interface Body extends AsyncIterable<Buffer> {
  /** The response stream itself (for 'data' listeners: no promise per chunk). */
  readonly stream: Readable;
  /** Discard the rest (small bodies are drained so the connection is reused). */
  dump(): Promise<void>;
  json(): Promise<unknown>;
  destroy(err?: Error): void;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Body;
}

export interface HttpRequest {
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  /** Idle timeout (connect, headers, between body chunks), ms. */
  timeoutMs: number;
}

type RequestOptions = {
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  headersTimeout: number;
  bodyTimeout: number;
};
interface Undici {
  Agent: typeof Agent;
  /** Loaded on first use (only when a proxy is configured). */
  readonly EnvHttpProxyAgent: typeof EnvHttpProxyAgent;
  request(agent: Dispatcher, url: URL, opts: RequestOptions): Promise<Dispatcher.ResponseData>;
}
type BundledUndici = {
  Agent: typeof Agent;
  readonly EnvHttpProxyAgent: typeof EnvHttpProxyAgent;
  request: (this: Dispatcher, o: object) => Promise<Dispatcher.ResponseData>;
};

let undici: Undici | undefined;

/** How undici was loaded (for tests and benchmarks). */
export let undiciLoad: 'bundle' | 'deep' | 'entry' | undefined;

async function loadUndici(): Promise<Undici> {
  if (undici) return undici;
  // undici parses HTTP with llhttp compiled to WebAssembly. V8 compiles it
  // with Liftoff, then re-compiles the hot functions with TurboFan: that
  // tier-up cost ~85 ms of CPU per pull (measured on deb2) and buys nothing
  // here, since the body bytes are handed on as spans, not parsed. Liftoff
  // only, for this process (no other WebAssembly runs in it).
  if (process.env.USERDOCK_WASM_TIERUP !== '1') {
    try { v8.setFlagsFromString('--liftoff-only'); } catch { /* an unknown flag: keep the default */ }
  }
  const parts = (b: BundledUndici): Undici => ({
    Agent: b.Agent,
    get EnvHttpProxyAgent() { return b.EnvHttpProxyAgent; },
    request: (agent, u, o) => b.request.call(agent, { origin: u.origin, path: u.pathname + u.search, ...o }),
  });
  const bundled = requireBundled<BundledUndici>('undici');
  if (bundled) {
    undiciLoad = 'bundle';
    return (undici = parts(bundled));
  }
  const req = createRequire(import.meta.url);
  try {
    const AgentC = req('undici/lib/dispatcher/agent.js') as typeof Agent;
    const apiRequest = req('undici/lib/api/api-request.js') as BundledUndici['request'];
    if (typeof AgentC !== 'function' || typeof apiRequest !== 'function') throw new Error('unexpected undici layout');
    undici = parts({
      Agent: AgentC, request: apiRequest,
      // The package entry (slow to load; only with a proxy, outside the CLI bundle) adds Dispatcher#connect for tunnels.
      get EnvHttpProxyAgent() { return (req('undici') as typeof import('undici')).EnvHttpProxyAgent; },
    });
    undiciLoad = 'deep';
  } catch {
    const m = req('undici') as typeof import('undici');
    undici = { Agent: m.Agent, EnvHttpProxyAgent: m.EnvHttpProxyAgent, request: (agent, u, o) => m.request(u, { ...o, dispatcher: agent }) };
    undiciLoad = 'entry';
  }
  return undici;
}

/**
 * HTTP(S) proxies, as curl and Go read them: https_proxy / HTTPS_PROXY for
 * https registries (a CONNECT tunnel), http_proxy / HTTP_PROXY for plain
 * http ones, no_proxy / NO_PROXY for hosts to reach directly (names match
 * their subdomains; `*`: no host is proxied). Loopback registries are always reached
 * directly. Proxy credentials (http://user:pass@proxy:3128) are sent as
 * Proxy-Authorization and never printed.
 */
export interface ProxySettings { httpProxy: string; httpsProxy: string; noProxy: string }

/** The proxy variables, read once here (lower case first, as curl does; '' = none). */
export function proxySettings(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const httpProxy = env.http_proxy || env.HTTP_PROXY || '';
  return {
    httpProxy,
    httpsProxy: env.https_proxy || env.HTTPS_PROXY || httpProxy,
    noProxy: env.no_proxy || env.NO_PROXY || '',
  };
}

/** The proxy a request to `url` would go through (host:port, no credentials), if any is configured for its scheme. */
export function proxyHostFor(url: URL, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (isLoopback(url.host)) return undefined;
  const s = proxySettings(env);
  const p = url.protocol === 'https:' ? s.httpsProxy : s.httpProxy;
  if (!p) return undefined;
  try { return new URL(p).host; } catch { return p.replace(/^.*@/, ''); }
}

let direct: Agent | undefined;
let proxied: Dispatcher | undefined;

/** The dispatcher for `url` (direct, or through the configured proxy); `fresh` when it was just made. */
async function getAgent(url: URL, timeoutMs: number): Promise<{ u: Undici; agent: Dispatcher; fresh: boolean }> {
  const u = await loadUndici();
  const opts = { connections: 16, connectTimeout: Math.min(timeoutMs, 30_000), keepAliveTimeout: 10_000 };
  const proxy = proxySettings();
  if (!isLoopback(url.host) && proxy.httpsProxy) {
    const fresh = !proxied;
    // Plain http goes to the proxy as absolute-URI requests, as curl sends
    // them (site proxies allow CONNECT to port 443 only, as a rule).
    proxied ??= new u.EnvHttpProxyAgent({ ...opts, ...proxy, proxyTunnel: false });
    return { u, agent: proxied, fresh };
  }
  const fresh = !direct;
  direct ??= new u.Agent(opts);
  return { u, agent: direct, fresh };
}

/** Drain at most this much of an unwanted body (so the connection is reused); destroy bigger ones. */
const DRAIN_LIMIT = 128 * 1024;

type UndiciBody = Dispatcher.ResponseData['body'] & Readable;

function wrapBody(b: UndiciBody): Body {
  return {
    stream: b,
    [Symbol.asyncIterator]: () => b[Symbol.asyncIterator]() as AsyncIterator<Buffer>,
    destroy: (err?: Error) => { b.destroy(err); },
    dump: async () => {
      if (b.readableEnded || b.destroyed) return;
      await b.dump({ limit: DRAIN_LIMIT }).catch(() => undefined);
    },
    json: () => b.json(),
  };
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT']);

/** undici's timeouts as ETIMEDOUT, like the rest of node (messages name the limit). */
function mapError(e: unknown, ms: number): unknown {
  const code = (e as { code?: string } | null)?.code;
  if (code && TIMEOUT_CODES.has(code)) {
    return Object.assign(new Error(`no data for ${ms / 1000} s`, { cause: e }), { code: 'ETIMEDOUT' });
  }
  return e;
}

/** One request; resolves when the response headers arrive. */
export async function httpRequest(url: string | URL, opts: HttpRequest): Promise<HttpResponse> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const { u: und, agent: a, fresh } = await getAgent(u, opts.timeoutMs);
  // undici frees a connection for the next request a turn of the event loop
  // after the previous body ended: without this, a request that follows a
  // dump() or a read body at once opens a new connection (a TLS handshake).
  // A new agent has no connection to wait for.
  if (!fresh) await new Promise(setImmediate);
  try {
    const res = await und.request(a, u, {
      method: opts.method, headers: opts.headers, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs,
    });
    return { statusCode: res.statusCode, headers: res.headers, body: wrapBody(res.body as UndiciBody) };
  } catch (e) {
    throw mapError(e, opts.timeoutMs);
  }
}

/** Close idle connections so the process can exit promptly. */
export async function closeConnections(): Promise<void> {
  const all = [direct, proxied]; direct = undefined; proxied = undefined;
  await Promise.all(all.map((a) => a?.destroy().catch(() => undefined)));
}
