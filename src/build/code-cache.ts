/**
 * Build step: make dist/bundle/NAME.code.cache for each command (see
 * src/cli/bin.ts) by running it once with USERDOCK_CODE_CACHE=write, on the
 * path its users start most often, in a throw-away store:
 *  - userdock: `run --rootfs=TINY /bin/true`, TINY holding the host's
 *    /bin/true and the libraries ldd names (arguments, store, host facts,
 *    ladder, profile, validation, engine start); where no engine works it
 *    stops earlier, and the cache holds less;
 *  - cwl-run: a one-line CommandLineTool with --no-container;
 *  - the Slurm node script: its usage error.
 * Nothing here is needed for correctness: without a cache each start compiles.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** A root holding /bin/true and the shared libraries it needs (copied from the host). */
function tinyRootfs(root: string): void {
  fs.mkdirSync(root, { recursive: true });
  const files = ['/bin/true'];
  const ldd = spawnSync('ldd', ['/bin/true'], { encoding: 'utf8' });
  for (const m of (ldd.stdout ?? '').matchAll(/(\/\S+) \(0x/g)) files.push(m[1]);
  for (const f of files) {
    try {
      fs.mkdirSync(path.join(root, path.dirname(f)), { recursive: true });
      fs.copyFileSync(fs.realpathSync(f), path.join(root, f));
      fs.chmodSync(path.join(root, f), 0o755);
    } catch { /* a missing file: the run stops earlier */ }
  }
  for (const d of ['proc', 'dev', 'sys', 'tmp']) fs.mkdirSync(path.join(root, d), { recursive: true });
}

const bundle = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bundle');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'userdock-code-cache-'));
try {
  const env = { ...process.env, USERDOCK_CODE_CACHE: 'write', USERDOCK_DIR: path.join(tmp, 'store'), HOME: tmp, XDG_CONFIG_HOME: path.join(tmp, 'config') };
  const tiny = path.join(tmp, 'tiny');
  tinyRootfs(tiny);
  fs.writeFileSync(path.join(tmp, 'echo.cwl'), [
    'cwlVersion: v1.2', 'class: CommandLineTool', 'baseCommand: echo',
    'inputs: { word: { type: string, inputBinding: { position: 1 } } }',
    'outputs: { out: { type: stdout } }', 'stdout: out.txt', '',
  ].join('\n'));
  const runs: Array<[string, string[]]> = [
    ['userdock', ['run', `--rootfs=${tiny}`, '/bin/true']],
    ['cwl-run', ['--no-container', '--quiet', '--outdir', path.join(tmp, 'out'), path.join(tmp, 'echo.cwl'), '--word', 'hello']],
    ['node', []],
  ];
  for (const [name, args] of runs) {
    const r = spawnSync(process.execPath, [path.join(bundle, `${name}.cjs`), ...args], { env, cwd: tmp, stdio: 'ignore', timeout: 60_000 });
    const made = fs.existsSync(path.join(bundle, `${name}.code.cache`));
    process.stdout.write(`code cache ${name}: ${made ? 'made' : `not made (exit ${r.status ?? r.signal})`}\n`);
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
