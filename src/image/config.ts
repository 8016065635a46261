import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';

/**
 * Registry configuration: mirrors and insecure (plain http) registries.
 *
 * File `<configDir>/registries.json` (optional):
 *
 *   {
 *     "mirrors": {
 *       "docker.io": ["http://127.0.0.1:5000", "https://mirror.example.org"],
 *       "quay.io":   { "endpoints": ["https://m1.example.org"], "origin": false }
 *     },
 *     "insecure": ["registry.lan:5000"]
 *   }
 *
 * Env (takes precedence over the file, per registry):
 *
 *   USERDOCK_MIRRORS='docker.io=http://127.0.0.1:5000;quay.io=https://m1,https://m2'
 *   USERDOCK_INSECURE_REGISTRIES='registry.lan:5000,10.0.0.7:5000'
 *
 * Mirrors are tried in order, then the origin registry. A mirror list that
 * ends with the word `noorigin` (env) or has `"origin": false` (file) ends the
 * chain at the last mirror: the origin is never contacted (air-gapped sites).
 * Whichever endpoint answers the manifest first is used; a later endpoint
 * failing never spoils an answer already got. Image names keep their own
 * registry (docker.io/library/debian:12) whichever endpoint served them.
 *
 * A mirror URL may carry a path prefix (`https://host/prefix`): requests go to
 * `<prefix>/v2/...`. Its scheme is used as written. Origins use https, except
 * loopback registries (127.0.0.0/8, localhost, ::1) and insecure ones.
 */
export interface MirrorEntry { endpoints: string[]; origin: boolean }

export interface RegistryConfig {
  mirrors: Record<string, MirrorEntry>;
  insecure: string[];
}

export const CONFIG_FILE = 'registries.json';

function normalizeEndpoint(u: string, where: string): string {
  let url: URL;
  try { url = new URL(u.includes('://') ? u : `https://${u}`); } catch {
    throw new UserError(`invalid mirror URL "${u}" in ${where}`, 1, 'write it as http(s)://host[:port][/prefix]');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UserError(`invalid mirror URL "${u}" in ${where}: only http and https`, 1, 'write it as http(s)://host[:port][/prefix]');
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

function normRegistry(r: string): string {
  const x = r.trim().toLowerCase();
  return x === 'index.docker.io' || x === 'registry-1.docker.io' ? 'docker.io' : x;
}

/** Parse the USERDOCK_MIRRORS syntax. */
export function parseMirrorsEnv(value: string, where = 'USERDOCK_MIRRORS'): Record<string, MirrorEntry> {
  const out: Record<string, MirrorEntry> = {};
  for (const part of value.split(';')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq <= 0) {
      throw new UserError(`invalid entry "${p}" in ${where}`, 1, 'use REGISTRY=URL[,URL...][,noorigin] separated by ";"');
    }
    const reg = normRegistry(p.slice(0, eq));
    const items = p.slice(eq + 1).split(',').map((x) => x.trim()).filter(Boolean);
    let origin = true;
    const endpoints: string[] = [];
    for (const it of items) {
      if (it === 'noorigin' || it === '!origin') origin = false;
      else endpoints.push(normalizeEndpoint(it, where));
    }
    out[reg] = { endpoints, origin };
  }
  return out;
}

export function parseConfigFile(text: string, where: string): RegistryConfig {
  let j: unknown;
  try { j = JSON.parse(text); } catch (e) {
    throw new UserError(`cannot parse ${where}: ${(e as Error).message}`, 1, 'fix the JSON or remove the file');
  }
  const cfg: RegistryConfig = { mirrors: {}, insecure: [] };
  if (!j || typeof j !== 'object') return cfg;
  const o = j as { mirrors?: unknown; insecure?: unknown };
  if (o.mirrors && typeof o.mirrors === 'object') {
    for (const [reg, v] of Object.entries(o.mirrors as Record<string, unknown>)) {
      let endpoints: unknown = v; let origin = true;
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        endpoints = (v as { endpoints?: unknown }).endpoints;
        origin = (v as { origin?: unknown }).origin !== false;
      }
      if (typeof endpoints === 'string') endpoints = [endpoints];
      if (!Array.isArray(endpoints) || !endpoints.every((e) => typeof e === 'string')) {
        throw new UserError(`invalid mirrors for "${reg}" in ${where}`, 1, 'give a list of URLs or {"endpoints": [...], "origin": false}');
      }
      cfg.mirrors[normRegistry(reg)] = { endpoints: (endpoints as string[]).map((e) => normalizeEndpoint(e, where)), origin };
    }
  }
  if (Array.isArray(o.insecure)) cfg.insecure = o.insecure.filter((x): x is string => typeof x === 'string').map(normRegistry);
  return cfg;
}

export function loadRegistryConfig(configDir: string, env: NodeJS.ProcessEnv): RegistryConfig {
  const file = path.join(configDir, CONFIG_FILE);
  let cfg: RegistryConfig = { mirrors: {}, insecure: [] };
  let text: string | undefined;
  try { text = fs.readFileSync(file, 'utf8'); } catch { /* no file */ }
  if (text !== undefined) cfg = parseConfigFile(text, file);
  if (env.USERDOCK_MIRRORS) Object.assign(cfg.mirrors, parseMirrorsEnv(env.USERDOCK_MIRRORS));
  if (env.USERDOCK_INSECURE_REGISTRIES) {
    cfg.insecure.push(...env.USERDOCK_INSECURE_REGISTRIES.split(',').map((x) => normRegistry(x)).filter(Boolean));
  }
  return cfg;
}

/** Whether a host (with or without port) is a loopback address. */
export function isLoopback(hostport: string): boolean {
  let host = hostport;
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']'));
  else if (host.split(':').length === 2) host = host.split(':')[0];
  host = host.toLowerCase();
  if (host === 'localhost' || host === '::1' || host.endsWith('.localhost')) return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function isInsecure(registry: string, cfg: RegistryConfig): boolean {
  if (isLoopback(registry)) return true;
  const host = registry.replace(/:\d+$/, '');
  return cfg.insecure.includes(registry) || cfg.insecure.includes(host);
}

/** The origin endpoint URL of a registry. */
export function originEndpoint(registry: string, cfg: RegistryConfig): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io';
  return `${isInsecure(registry, cfg) ? 'http' : 'https'}://${registry}`;
}

export interface Endpoint { url: string; mirror: boolean }

/** Endpoints to try for a registry, in order. */
export function endpointsFor(registry: string, cfg: RegistryConfig): Endpoint[] {
  const m = cfg.mirrors[registry];
  const out: Endpoint[] = (m?.endpoints ?? []).map((url) => ({ url, mirror: true }));
  if (!m || m.origin || out.length === 0) out.push({ url: originEndpoint(registry, cfg), mirror: false });
  return out;
}
