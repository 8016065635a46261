import type { Agent as HttpAgent, ClientRequest, IncomingMessage } from 'node:http';

/**
 * The HTTP transport of the registry client: node's own http/https with
 * keep-alive agents, loaded lazily (https only for https URLs).
 *
 * Why not undici: loading undici's Agent (its modules plus compiling the
 * llhttp WebAssembly parser) costs 55-140 ms of CPU per process on the
 * machines we measured, a third of a whole pull of a two-layer image from a
 * loopback registry. node:http uses the llhttp already built into the binary.
 */

export interface Body extends AsyncIterable<Buffer> {
  /** The response stream itself (for 'data' listeners: no promise per chunk). */
  readonly stream: IncomingMessage;
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
  /** Idle timeout of the socket (connect, headers, body), ms. */
  timeoutMs: number;
}

type Mod = { request: typeof import('node:http').request; Agent: typeof HttpAgent };
const mods: { http?: Mod; https?: Mod } = {};
const agents: { http?: HttpAgent; https?: HttpAgent } = {};

async function transport(protocol: string): Promise<{ mod: Mod; agent: HttpAgent }> {
  const key = protocol === 'https:' ? 'https' : 'http';
  let mod = mods[key];
  if (!mod) {
    mod = (key === 'https' ? await import('node:https') : await import('node:http')) as unknown as Mod;
    mods[key] = mod;
  }
  const agent = agents[key] ??= new mod.Agent({ keepAlive: true, maxSockets: 16 });
  return { mod, agent };
}

const DRAIN_LIMIT = 128 * 1024;

function wrapBody(res: IncomingMessage, req: ClientRequest): Body {
  return {
    stream: res,
    [Symbol.asyncIterator]: () => res[Symbol.asyncIterator]() as AsyncIterator<Buffer>,
    destroy: (err?: Error) => { res.destroy(err); req.destroy(); },
    dump: () => new Promise<void>((resolve) => {
      if (res.complete || res.destroyed) { resolve(); return; }
      const len = Number(res.headers['content-length']);
      if (!Number.isFinite(len) || len > DRAIN_LIMIT) { res.destroy(); req.destroy(); resolve(); return; }
      res.once('end', resolve);
      res.once('close', resolve);
      res.once('error', () => resolve());
      res.resume();
    }),
    json: async () => {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    },
  };
}

function timeoutError(ms: number): Error {
  return Object.assign(new Error(`no data for ${ms / 1000} s`), { code: 'ETIMEDOUT' });
}

/** One request; resolves when the response headers arrive. */
export async function httpRequest(url: string | URL, opts: HttpRequest): Promise<HttpResponse> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const { mod, agent } = await transport(u.protocol);
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = mod.request(u, { method: opts.method, headers: opts.headers, agent });
    req.setTimeout(opts.timeoutMs, () => req.destroy(timeoutError(opts.timeoutMs)));
    req.once('error', reject);
    req.once('response', (res) => {
      // Errors while the body is read surface through the body stream.
      req.off('error', reject);
      req.on('error', () => undefined);
      resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: wrapBody(res, req) });
    });
    req.end();
  });
}

/** Close idle connections so the process can exit promptly. */
export function closeConnections(): void {
  for (const k of ['http', 'https'] as const) {
    agents[k]?.destroy();
    agents[k] = undefined;
  }
}
