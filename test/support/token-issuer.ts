import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * A loopback token server doing the Docker Hub style registry token flow
 * (distribution's "token" auth): the registry answers 401 with
 * `WWW-Authenticate: Bearer realm=..,service=..,scope=..`, the client asks
 * the realm (GET ?service=..&scope=..[&account=..], optionally with Basic
 * auth, or POST grant_type=password) and gets a RS256 JWT whose header carries
 * `x5c` (the self-signed cert the registry trusts via rootcertbundle) and
 * `kid` (libtrust key id).
 *
 * Policy: anonymous clients get `pull` only (unless anonymousPull is false);
 * users with a correct password get every action they ask for. A wrong
 * password, or an unknown user, gets 401.
 */
export interface TokenIssuerOptions {
  /** user -> password. Default { testuser: 'testpass' }. */
  users?: Record<string, string>;
  /** Default 'userdock-test-registry'. */
  service?: string;
  /** Default 'userdock-test-issuer'. */
  issuer?: string;
  /** Anonymous clients may pull. Default true. */
  anonymousPull?: boolean;
  /** Token lifetime. Default 300 s. */
  expiresIn?: number;
}

export interface Access { type: string; name: string; actions: string[] }

export interface TokenRequestRecord {
  method: string;
  account?: string;
  /** Basic credentials were sent (or a password grant). */
  authenticated: boolean;
  scopes: string[];
  granted: Access[];
  status: number;
}

export interface TokenIssuer {
  /** http://127.0.0.1:PORT */
  url: string;
  /** The token endpoint: URL + '/token'. Use as the registry's auth.token.realm. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate to use as auth.token.rootcertbundle. */
  certPath: string;
  dir: string;
  users: Record<string, string>;
  /** Every token request seen, in order. */
  requests: TokenRequestRecord[];
  stop(): Promise<void>;
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function base32(buf: Buffer): string {
  let bits = 0; let value = 0; let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte; bits += 8;
    while (bits >= 5) { out += B32[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** libtrust key id: base32(sha256(DER SPKI)[:30]) in ':'-separated groups of 4. */
export function libtrustKeyId(publicKey: crypto.KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const s = base32(crypto.createHash('sha256').update(der).digest().subarray(0, 30));
  return s.match(/.{1,4}/g)!.join(':');
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** Parse `repository:library/busybox:pull,push` (the name may contain ':' only for a port-less path, so split at the ends). */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':'); const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

export async function startTokenIssuer(opts: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const users = opts.users ?? { testuser: 'testpass' };
  const service = opts.service ?? 'userdock-test-registry';
  const issuer = opts.issuer ?? 'userdock-test-issuer';
  const anonymousPull = opts.anonymousPull ?? true;
  const expiresIn = opts.expiresIn ?? 300;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-token-'));
  const keyPath = path.join(dir, 'key.pem');
  const certPath = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '30',
    '-subj', '/CN=userdock-test-token-issuer', '-keyout', keyPath, '-out', certPath], { stdio: 'pipe', timeout: 60_000 });
  fs.chmodSync(dir, 0o755); fs.chmodSync(certPath, 0o644);
  const privateKey = crypto.createPrivateKey(fs.readFileSync(keyPath));
  const cert = new crypto.X509Certificate(fs.readFileSync(certPath));
  const kid = libtrustKeyId(cert.publicKey);
  const x5c = [cert.raw.toString('base64')];
  const requests: TokenRequestRecord[] = [];

  function sign(sub: string, access: Access[]): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', kid, x5c };
    const claims = { iss: issuer, sub, aud: service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = crypto.sign('sha256', Buffer.from(input), privateKey);
    return `${input}.${b64url(sig)}`;
  }

  function grant(user: string | undefined, scopes: string[]): Access[] {
    const out: Access[] = [];
    for (const s of scopes) {
      const a = parseScope(s);
      if (!a) continue;
      let actions: string[];
      if (user) actions = a.actions.includes('*') ? ['*'] : a.actions;
      else actions = anonymousPull && a.type === 'repository' ? a.actions.filter((x) => x === 'pull') : [];
      if (actions.length) out.push({ ...a, actions });
    }
    return out;
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1');
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      if (u.pathname !== '/token') return send(404, { errors: [{ code: 'NOT_FOUND', message: 'no such endpoint' }] });
      let scopes = u.searchParams.getAll('scope');
      let user: string | undefined; let pass: string | undefined; let authenticated = false;
      const authz = req.headers.authorization;
      if (authz?.toLowerCase().startsWith('basic ')) {
        const dec = Buffer.from(authz.slice(6).trim(), 'base64').toString('utf8');
        const i = dec.indexOf(':');
        user = i < 0 ? dec : dec.slice(0, i); pass = i < 0 ? '' : dec.slice(i + 1);
        authenticated = true;
      }
      if (req.method === 'POST') {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        if (form.get('grant_type') === 'password') {
          user = form.get('username') ?? ''; pass = form.get('password') ?? ''; authenticated = true;
        } else if (form.get('grant_type')) {
          return send(400, { error: 'unsupported_grant_type' });
        }
        scopes = [...scopes, ...form.getAll('scope').flatMap((s) => s.split(' '))];
      } else if (req.method !== 'GET') {
        return send(405, { errors: [{ code: 'UNSUPPORTED', message: 'method not allowed' }] });
      }
      scopes = scopes.flatMap((s) => s.split(' ')).filter(Boolean);
      const record: TokenRequestRecord = { method: req.method ?? 'GET', account: user ?? u.searchParams.get('account') ?? undefined, authenticated, scopes, granted: [], status: 200 };
      requests.push(record);
      if (authenticated && (user === undefined || !(user in users) || users[user] !== pass)) {
        record.status = 401;
        return send(401, { errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }], details: 'incorrect username or password' },
          { 'www-authenticate': 'Basic realm="userdock-test-token-issuer"' });
      }
      const granted = grant(authenticated ? user : undefined, scopes);
      record.granted = granted;
      const token = sign(authenticated ? user! : '', granted);
      send(200, { token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() });
    });
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => resolve()); });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url, realm: `${url}/token`, service, issuer, certPath, dir, users, requests,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => { fs.rmSync(dir, { recursive: true, force: true }); resolve(); });
    }),
  };
}
