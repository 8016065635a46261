/**
 * Stands in for node-fetch inside the bundled cwl-ts-auto (dist/bundle/cwl-ts-auto.cjs,
 * esbuild --alias): cwl-ts-auto fetches only http(s) documents with it, yet
 * loading node-fetch (http, https, tls, zlib) costs ~17 ms of every cwl-run
 * start. The real one is loaded on the first fetch.
 */
import { createRequire } from 'node:module';

type Fetch = (url: URL | string, init?: unknown) => Promise<unknown>;

let real: Fetch | undefined;

export default function fetch(url: URL | string, init?: unknown): Promise<unknown> {
  real ??= createRequire(import.meta.url)('node-fetch') as Fetch;
  return real(url, init);
}
