/**
 * Build step after tsc: the command bundles in dist/bundle/ (see
 * src/cli/bin.ts for how they start).
 *  - NAME.cjs (userdock, cwl-run, node: the Slurm node script): the loader;
 *  - NAME.code.cjs: our own code for that command, one CommonJS file;
 *    dependencies stay in node_modules and load on first use;
 *  - cwl-ts-auto.cjs: that package and its dependencies in one file
 *    (hundreds of small files otherwise), node-fetch replaced by a stand-in
 *    that loads it on the first http(s) fetch;
 *  - undici.cjs: the parts of undici the registry client uses (its Agent,
 *    request API and proxy agent, src/image/http.ts) and what they require, one file,
 *    without undici's HTTP/2 client (see noHttp2);
 * then the code caches (src/build/code-cache.ts).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.join(dist, 'bundle');
const repo = path.dirname(dist);

/**
 * esbuild turns `import fs from 'node:fs'` into __toESM(require('node:fs'), 1),
 * which copies every export of the module as a getter (~60 modules, ~2 ms
 * of each start). Node's built-in modules need no interop: a default import
 * is the module itself, so an object with the module as prototype and as
 * `default` serves both default and namespace imports.
 */
function lightBuiltins(file: string): void {
  const text = fs.readFileSync(file, 'utf8');
  const body = text.replace(/__toESM\((require\("node:[a-z0-9_/]+"\)), 1\)/g, '__ud_builtin($1)');
  // esbuild's output changed shape: say so instead of silently losing the saving.
  if (/__toESM\(require\("node:/.test(body)) throw new Error(`${file}: esbuild wraps node builtins in a form lightBuiltins does not know`);
  if (body === text) return;
  const nl = text.startsWith('#!') ? text.indexOf('\n') + 1 : 0;
  fs.writeFileSync(file, body.slice(0, nl) + 'var __ud_builtin = (m) => ({ __proto__: m, default: m });\n' + body.slice(nl));
}

/**
 * undici's HTTP/1.1 client requires its HTTP/2 client at load, which loads
 * node:http2 and node:tls (~5 ms of every pull). It is used only when TLS
 * negotiates h2, which undici offers only with `allowH2`, never set by
 * src/image/http.ts; the bundle gets a stand-in that fails that connection.
 */
const noHttp2: Plugin = {
  name: 'no-http2',
  setup(b) {
    b.onResolve({ filter: /[\\/]client-h2\.js$/ }, () => ({ path: 'client-h2', namespace: 'no-http2' }));
    b.onLoad({ filter: /.*/, namespace: 'no-http2' }, () => ({
      contents: "module.exports = function connectH2 () { throw new Error('HTTP/2 is not in userdock\\'s undici bundle') }",
      loader: 'js',
    }));
  },
};

/**
 * The first two lines of the commands users start (dist/bundle/userdock.cjs,
 * cwl-run.cjs): run by sh, they start node with `--` before the script, so
 * node parses none of our arguments. `#!/usr/bin/env node` would not do:
 * Node 20 reads `--env-file=F` (and the NODE_OPTIONS in F, e.g. `--require
 * x.js`) anywhere in its argv, even after the script, and exits 9 when F is
 * missing: `userdock run --env-file=F …` or a CWL input named env-file would
 * run F's code on the host. It stops looking at `--`. To node the second
 * line is a string and a comment.
 */
const LAUNCHER = `#!/bin/sh\n':' //; exec node -- "$0" "$@"\n`;

fs.rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: {
    userdock: 'dist/src/cli/bin.js', 'cwl-run': 'dist/src/cli/bin.js', node: 'dist/src/cli/bin.js',
    'userdock.code': 'dist/src/cli/userdock.js', 'cwl-run.code': 'dist/src/cli/cwl-run.js', 'node.code': 'dist/src/cwl/slurm/node.js',
    'cwl-ts-auto': 'node_modules/cwl-ts-auto/dist/index.js',
  },
  absWorkingDir: repo,
  bundle: true, format: 'cjs', platform: 'node', target: 'node20',
  external: ['undici', 'cwl-ts-auto', 'tar', 'js-yaml', 'fzstd', 'ajv', 'execa'],
  alias: { 'node-fetch': './dist/src/build/lazy-node-fetch.js' },
  outdir: out, outExtension: { '.js': '.cjs' }, logLevel: 'warning',
  define: { 'import.meta.url': '__ud_url' },
  banner: { js: "const __ud_url=require('url').pathToFileURL(__filename).href;" },
});
await build({
  stdin: {
    // The proxy agent is in the file but runs only when asked for (a getter);
    // it tunnels with Dispatcher#connect, which undici's package entry adds.
    contents: [
      "module.exports = { Agent: require('undici/lib/dispatcher/agent.js'), request: require('undici/lib/api/api-request.js'),",
      '  get EnvHttpProxyAgent() {',
      "    const D = require('undici/lib/dispatcher/dispatcher.js');",
      "    D.prototype.connect ??= require('undici/lib/api/api-connect.js');",
      "    return require('undici/lib/dispatcher/env-http-proxy-agent.js');",
      '  } };',
    ].join('\n'),
    resolveDir: repo, sourcefile: 'undici-parts.cjs', loader: 'js',
  },
  bundle: true, format: 'cjs', platform: 'node', target: 'node20',
  outfile: path.join(out, 'undici.cjs'), logLevel: 'warning', plugins: [noHttp2],
});
for (const name of ['userdock', 'cwl-run', 'node']) lightBuiltins(path.join(out, `${name}.code.cjs`));
for (const name of ['userdock', 'cwl-run']) {
  const file = path.join(out, `${name}.cjs`);
  fs.writeFileSync(file, LAUNCHER + fs.readFileSync(file, 'utf8'), { mode: 0o755 });
  fs.chmodSync(file, 0o755);
}
const r = spawnSync(process.execPath, [path.join(dist, 'src', 'build', 'code-cache.js')], { stdio: 'inherit' });
process.exitCode = r.status ?? 1;
