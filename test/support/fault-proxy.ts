import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback HTTP proxy in front of a registry that injects faults. Everything
 * not hit by a fault passes through unchanged (status, headers including
 * WWW-Authenticate, body); Location headers pointing at the upstream are
 * rewritten to point at the proxy.
 *
 * "Blob GET" means GET of /v2/<name>/blobs/sha256:<hex> (blobPattern).
 * Faults are applied in this order: errors, dropBlobGets, corruptBlobGets.
 */
export interface FaultPlan {
  /** First N blob GETs: send the headers and part of the body, then destroy the connection. */
  dropBlobGets?: number;
  /** Body bytes sent before a drop. Default: half the body (at least 1 byte less than all of it). */
  dropAfterBytes?: number;
  /** Answer `status` (no upstream request) for the first `count` requests whose path (with query) matches. */
  errors?: Array<{ pattern: RegExp | string; status: number; count: number; method?: string; retryAfter?: number }>;
  /** First N blob GETs: flip bits in the body (length unchanged). */
  corruptBlobGets?: number;
  /** Strip Range / If-Range from requests, so upstream answers 200 with the whole body. */
  ignoreRange?: boolean;
  /** Delay every response by this many ms. */
  delayMs?: number;
  /** What counts as a blob GET. Default /\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}$/ on the path. */
  blobPattern?: RegExp;
}

export interface ProxyHit { method: string; path: string; status: number; fault?: 'error' | 'drop' | 'corrupt'; range?: string }

export interface FaultHits {
  requests: number;
  blobGets: number;
  dropped: number;
  corrupted: number;
  errored: number;
  /** Requests that carried a Range header (counted before ignoreRange strips it). */
  rangeRequests: number;
  log: ProxyHit[];
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT */
  host: string;
  /** Live counters. */
  hits: FaultHits;
  stop(): Promise<void>;
}

const DEFAULT_BLOB = /\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}$/;

/** upstream: 'http://127.0.0.1:PORT' or '127.0.0.1:PORT'. */
export async function startFaultProxy(upstream: string, plan: FaultPlan = {}): Promise<FaultProxy> {
  const up = new URL(upstream.includes('://') ? upstream : `http://${upstream}`);
  const blobPattern = plan.blobPattern ?? DEFAULT_BLOB;
  const errorsLeft = (plan.errors ?? []).map((e) => ({ ...e, left: e.count }));
  let dropsLeft = plan.dropBlobGets ?? 0;
  let corruptLeft = plan.corruptBlobGets ?? 0;
  const hits: FaultHits = { requests: 0, blobGets: 0, dropped: 0, corrupted: 0, errored: 0, rangeRequests: 0, log: [] };
  let self = '';

  const server = http.createServer(async (req, res) => {
    const pathQ = req.url ?? '/';
    const pathname = pathQ.split('?')[0];
    const method = req.method ?? 'GET';
    hits.requests++;
    const hit: ProxyHit = { method, path: pathQ, status: 0 };
    hits.log.push(hit);
    if (req.headers.range) { hits.rangeRequests++; hit.range = String(req.headers.range); }
    if (plan.delayMs) await new Promise((r) => setTimeout(r, plan.delayMs));

    const err = errorsLeft.find((e) => e.left > 0 && (!e.method || e.method === method)
      && (typeof e.pattern === 'string' ? pathQ.includes(e.pattern) : e.pattern.test(pathQ)));
    if (err) {
      err.left--; hits.errored++; hit.status = err.status; hit.fault = 'error';
      req.resume();
      const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${err.status} by fault proxy`, detail: null }] });
      const h: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
      if (err.retryAfter !== undefined) h['retry-after'] = String(err.retryAfter);
      res.writeHead(err.status, h);
      res.end(method === 'HEAD' ? undefined : body);
      return;
    }

    const isBlobGet = method === 'GET' && blobPattern.test(pathname);
    if (isBlobGet) hits.blobGets++;
    let fault: 'drop' | 'corrupt' | undefined;
    if (isBlobGet && dropsLeft > 0) { dropsLeft--; fault = 'drop'; } else if (isBlobGet && corruptLeft > 0) { corruptLeft--; fault = 'corrupt'; }

    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: up.host };
    if (plan.ignoreRange) { delete headers.range; delete headers['if-range']; }
    const preq = http.request({ host: up.hostname, port: up.port, method, path: pathQ, headers }, (pres) => {
      const outHeaders = { ...pres.headers };
      const loc = outHeaders.location;
      if (typeof loc === 'string') {
        try {
          const l = new URL(loc, up);
          if (l.host === up.host) outHeaders.location = loc.startsWith('/') ? loc : `${self}${l.pathname}${l.search}`;
        } catch { /* leave it */ }
      }
      const status = pres.statusCode ?? 502;
      hit.status = status;
      const bodyOk = status >= 200 && status < 300 && method === 'GET';
      if (fault === 'drop' && bodyOk) {
        hit.fault = 'drop'; hits.dropped++;
        const total = Number(pres.headers['content-length'] ?? NaN);
        let limit = plan.dropAfterBytes ?? (Number.isFinite(total) ? Math.floor(total / 2) : 1024);
        if (Number.isFinite(total)) limit = Math.min(limit, Math.max(0, total - 1));
        res.writeHead(status, outHeaders);
        res.flushHeaders();
        let sent = 0;
        const cut = () => { pres.destroy(); res.socket?.destroy(); };
        if (limit <= 0) { setTimeout(cut, 20); return; }
        pres.on('data', (c: Buffer) => {
          if (sent >= limit) return;
          const part = c.subarray(0, limit - sent);
          sent += part.length;
          res.write(part);
          if (sent >= limit) setTimeout(cut, 20);
        });
        pres.on('end', () => setTimeout(cut, 20));
        return;
      }
      if (fault === 'corrupt' && bodyOk) {
        hit.fault = 'corrupt'; hits.corrupted++;
        res.writeHead(status, outHeaders);
        let offset = 0; let flipped = false;
        const total = Number(pres.headers['content-length'] ?? NaN);
        const target = Number.isFinite(total) ? Math.floor(total / 2) : 0;
        pres.on('data', (c: Buffer) => {
          if (!flipped && offset + c.length > target) {
            const b = Buffer.from(c);
            b[target - offset] ^= 0xff;
            if (target - offset + 1 < b.length) b[target - offset + 1] ^= 0x55;
            flipped = true;
            res.write(b);
          } else res.write(c);
          offset += c.length;
        });
        pres.on('end', () => res.end());
        pres.on('error', () => res.destroy());
        return;
      }
      res.writeHead(status, outHeaders);
      pres.pipe(res);
      pres.on('error', () => res.destroy());
    });
    preq.on('error', (e) => {
      hit.status = 502;
      if (!res.headersSent) { res.writeHead(502, { 'content-type': 'text/plain' }); res.end(`fault proxy: upstream error: ${e.message}`); } else res.destroy();
    });
    req.pipe(preq);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => resolve()); });
  const port = (server.address() as AddressInfo).port;
  const host = `127.0.0.1:${port}`;
  self = `http://${host}`;
  return {
    url: self, host, hits,
    stop: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
