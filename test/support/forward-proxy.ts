import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A forward HTTP proxy on 127.0.0.1, like a site's squid: CONNECT tunnels
 * (for https) and absolute-URI requests (for plain http). Names in `hosts`
 * resolve only here (registry.test -> 127.0.0.1), the way a client on an
 * air-gapped node reaches a registry only through the proxy. With `creds`,
 * clients must send Proxy-Authorization: Basic (else 407).
 */
export interface ForwardProxy {
  /** 'http://127.0.0.1:PORT' */
  url: string;
  /** 'host:port' of each CONNECT tunnel opened. */
  tunnels: string[];
  /** Absolute URIs of plain http requests forwarded. */
  requests: string[];
  /** Proxy-Authorization headers seen (decoded 'user:pass'), and 407s sent. */
  auth: string[];
  refused: number;
  stop(): Promise<void>;
}

export async function startForwardProxy(opts: { hosts: Record<string, string>; creds?: string }): Promise<ForwardProxy> {
  const p: Omit<ForwardProxy, 'url' | 'stop'> = { tunnels: [], requests: [], auth: [], refused: 0 };
  const resolve = (host: string) => opts.hosts[host] ?? host;
  const allowed = (h: http.IncomingHttpHeaders): boolean => {
    const v = h['proxy-authorization'];
    if (v) p.auth.push(Buffer.from(String(v).replace(/^Basic /, ''), 'base64').toString());
    if (!opts.creds) return true;
    if (v === `Basic ${Buffer.from(opts.creds).toString('base64')}`) return true;
    p.refused++;
    return false;
  };
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    if (!allowed(req.headers)) { res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test proxy"' }); res.end(); return; }
    const target = new URL(req.url ?? '');
    p.requests.push(req.url ?? '');
    const headers = { ...req.headers };
    delete headers['proxy-authorization']; delete headers['proxy-connection'];
    const up = http.request({ host: resolve(target.hostname), port: target.port || 80, path: target.pathname + target.search, method: req.method, headers },
      (r) => { res.writeHead(r.statusCode ?? 502, r.headers); r.pipe(res); });
    up.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client); client.once('close', () => sockets.delete(client));
    if (!allowed(req.headers)) { client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test proxy"\r\n\r\n'); return; }
    const [host, port] = (req.url ?? '').split(':');
    p.tunnels.push(req.url ?? '');
    const up = net.connect(Number(port), resolve(host), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(client); client.pipe(up);
    });
    sockets.add(up); up.once('close', () => sockets.delete(up));
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(p, {
    url,
    stop: async () => { for (const s of sockets) s.destroy(); await new Promise((r) => server.close(r)); },
  });
}
