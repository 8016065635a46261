import { createRequire } from 'node:module';
import v8 from 'node:v8';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { requireBundled } from '../lazy.js';

/**
 * The HTTP transport of the registry client (registry v2 / OCI distribution
 * API): undici, one keep-alive Agent per process (up to 16 connections per
 * origin), loaded lazily on the first request, so commands that need no
 * network (run, or a pull answered by the store) never load it.
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
  request(agent: Agent, url: URL, opts: RequestOptions): Promise<Dispatcher.ResponseData>;
}

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
  const bundled = requireBundled<{ Agent: typeof Agent; request: (this: Agent, o: object) => Promise<Dispatcher.ResponseData> }>('undici');
  if (bundled) {
    undici = {
      Agent: bundled.Agent,
      request: (agent, u, o) => bundled.request.call(agent, { origin: u.origin, path: u.pathname + u.search, ...o }),
    };
    undiciLoad = 'bundle';
    return undici;
  }
  const req = createRequire(import.meta.url);
  try {
    const AgentC = req('undici/lib/dispatcher/agent.js') as typeof Agent;
    const apiRequest = req('undici/lib/api/api-request.js') as (this: Agent, o: object) => Promise<Dispatcher.ResponseData>;
    if (typeof AgentC !== 'function' || typeof apiRequest !== 'function') throw new Error('unexpected undici layout');
    undici = {
      Agent: AgentC,
      request: (agent, u, o) => apiRequest.call(agent, { origin: u.origin, path: u.pathname + u.search, ...o }),
    };
    undiciLoad = 'deep';
  } catch {
    const m = req('undici') as typeof import('undici');
    undici = { Agent: m.Agent, request: (agent, u, o) => m.request(u, { ...o, dispatcher: agent }) };
    undiciLoad = 'entry';
  }
  return undici;
}

let agent: Agent | undefined;

async function getAgent(timeoutMs: number): Promise<{ u: Undici; agent: Agent }> {
  const u = await loadUndici();
  agent ??= new u.Agent({ connections: 16, connectTimeout: Math.min(timeoutMs, 30_000), keepAliveTimeout: 10_000 });
  return { u, agent };
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
  const fresh = !agent;
  const { u: und, agent: a } = await getAgent(opts.timeoutMs);
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
  const a = agent; agent = undefined;
  if (a) await a.destroy().catch(() => undefined);
}
