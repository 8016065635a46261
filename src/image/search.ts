import type { Context } from '../cli/context.js';
import { UserError } from '../errors.js';
import { loadRegistryConfig, originEndpoint } from './config.js';
import { closeAgent, RegistryClient, RegistryError } from './registry.js';

export interface SearchHit { name: string; description?: string; stars?: number; official?: boolean }

/**
 * Search a registry. Docker Hub has its own search API; other registries are
 * asked for their v2 catalog (`/v2/_catalog`), filtered by the term. Many
 * registries do not offer the catalog: that gives a clear error.
 */
export async function searchRegistry(ctx: Context, registry: string, term: string, limit = 25): Promise<SearchHit[]> {
  const cfg = loadRegistryConfig(ctx.configDir, ctx.env);
  const ep = { url: originEndpoint(registry, cfg), mirror: false };
  const client = new RegistryClient({
    registry, repository: '', endpoints: [ep], config: cfg, configDir: ctx.configDir, env: ctx.env,
    debug: ctx.debug ? (m) => process.stderr.write(`debug: ${m}\n`) : undefined,
  });
  try {
    if (registry === 'docker.io') {
      const r = await fetch(`https://index.docker.io/v1/search?q=${encodeURIComponent(term)}&n=${limit}`);
      if (!r.ok) throw new RegistryError(`Docker Hub search answered HTTP ${r.status}`, 'other', 'try again later');
      const j = (await r.json()) as { results?: Array<{ name: string; description?: string; star_count?: number; is_official?: boolean }> };
      return (j.results ?? []).map((x) => ({ name: x.name, description: x.description, stars: x.star_count, official: x.is_official }));
    }
    const names: string[] = [];
    let path = `_catalog?n=1000`;
    for (let page = 0; page < 50 && path; page++) {
      const res = await client.request(ep, path, { scope: 'registry:catalog:*' });
      if (res.status === 404 || res.status === 405 || res.status === 400) {
        await res.body.dump();
        throw new UserError(`registry ${registry} does not support search (no /v2/_catalog)`, 1, 'browse the registry\'s web page instead');
      }
      if (res.status !== 200) {
        await res.body.dump();
        throw new UserError(`registry ${registry} answered HTTP ${res.status} for its catalog`, 1, 'it may not support search');
      }
      const j = (await res.body.json()) as { repositories?: string[] };
      names.push(...(j.repositories ?? []));
      const link = res.headers.link;
      const m = typeof link === 'string' ? /<([^>]+)>;\s*rel="?next"?/.exec(link) : undefined;
      path = m ? m[1].replace(/^\/v2\//, '') : '';
    }
    const t = term.toLowerCase();
    return names.filter((n) => n.toLowerCase().includes(t)).slice(0, limit).map((n) => ({ name: `${registry}/${n}` }));
  } finally {
    await closeAgent();
  }
}
