import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { writeFileAtomic } from './store.js';

/**
 * Registry authentication: the WWW-Authenticate challenge parser and the
 * credentials file.
 *
 * Credentials live in `<configDir>/auth.json`, mode 0600, docker's shape:
 *   { "auths": { "<registry host[:port]>": { "auth": base64("user:pass") } } }
 * They are only ever sent in Authorization headers: never in argv, logs or
 * error messages.
 */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parse a WWW-Authenticate header value (RFC 7235), possibly with several
 * challenges: `Bearer realm="https://x/token",service="reg",scope="repository:a/b:pull"`.
 */
export function parseWWWAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => { while (i < n && /[\s]/.test(header[i])) i++; };
  const token = () => { const st = i; while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(header[i])) i++; return header.slice(st, i); };
  let cur: Challenge | undefined;
  while (i < n) {
    skipWs();
    if (header[i] === ',') { i++; continue; }
    const t = token();
    if (!t) { i++; continue; }
    skipWs();
    if (header[i] === '=') {
      // auth-param (or token68 padding when no challenge yet)
      i++; skipWs();
      let v = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          v += header[i++];
        }
        i++;
      } else {
        const st = i; while (i < n && header[i] !== ',' && !/\s/.test(header[i])) i++; v = header.slice(st, i);
      }
      if (cur) cur.params[t.toLowerCase()] = v;
      continue;
    }
    // A new challenge: t is its scheme.
    cur = { scheme: t.toLowerCase(), params: {} };
    out.push(cur);
  }
  return out;
}

export interface Credentials { username: string; password: string }

interface AuthFile { auths: Record<string, { auth?: string; username?: string; password?: string }> }

export function authFilePath(configDir: string): string { return path.join(configDir, 'auth.json'); }

/** docker's aliases for Docker Hub. */
export function credentialKey(registry: string): string {
  const r = registry.toLowerCase().replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  if (r === 'index.docker.io' || r === 'registry-1.docker.io' || r === 'docker.io') return 'docker.io';
  return r;
}

function readAuthFile(configDir: string): AuthFile {
  const file = authFilePath(configDir);
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return { auths: {} }; }
  try {
    const j = JSON.parse(text) as Partial<AuthFile>;
    return { auths: j.auths && typeof j.auths === 'object' ? j.auths : {} };
  } catch {
    throw new UserError(`cannot parse the credentials file ${file}`, 1, `remove it and run 'userdock login' again`);
  }
}

function writeAuthFile(configDir: string, data: AuthFile): void {
  fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const file = authFilePath(configDir);
  writeFileAtomic(file, JSON.stringify(data, null, 2) + '\n', configDir, 0o600);
  fs.chmodSync(file, 0o600);
}

export function getCredentials(configDir: string, registry: string): Credentials | undefined {
  const e = readAuthFile(configDir).auths[credentialKey(registry)];
  if (!e) return undefined;
  if (e.auth) {
    const dec = Buffer.from(e.auth, 'base64').toString('utf8');
    const c = dec.indexOf(':');
    if (c < 0) return undefined;
    return { username: dec.slice(0, c), password: dec.slice(c + 1) };
  }
  if (e.username !== undefined && e.password !== undefined) return { username: e.username, password: e.password };
  return undefined;
}

export function saveCredentials(configDir: string, registry: string, creds: Credentials): void {
  const data = readAuthFile(configDir);
  data.auths[credentialKey(registry)] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') };
  writeAuthFile(configDir, data);
}

export function removeCredentials(configDir: string, registry: string): boolean {
  const data = readAuthFile(configDir);
  const key = credentialKey(registry);
  if (!(key in data.auths)) return false;
  delete data.auths[key];
  writeAuthFile(configDir, data);
  return true;
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
