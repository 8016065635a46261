/**
 * Build step: make dist/bundle/NAME.code.cache for each command (see
 * src/cli/bin.ts) by running it once with USERDOCK_CODE_CACHE=write, on the
 * path its users start most often, in a throw-away store:
 *  - userdock: `run --rootfs=EMPTY /bin/true` (arguments, store, host facts,
 *    profile, validation, command lookup; it stops at "not found");
 *  - cwl-run: a one-line CommandLineTool with --no-container;
 *  - the Slurm node script: its usage error.
 * Nothing here is needed for correctness: without a cache each start compiles.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bundle = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bundle');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'userdock-code-cache-'));
try {
  const env = { ...process.env, USERDOCK_CODE_CACHE: 'write', USERDOCK_DIR: path.join(tmp, 'store'), HOME: tmp, XDG_CONFIG_HOME: path.join(tmp, 'config') };
  fs.mkdirSync(path.join(tmp, 'empty'));
  fs.writeFileSync(path.join(tmp, 'echo.cwl'), [
    'cwlVersion: v1.2', 'class: CommandLineTool', 'baseCommand: echo',
    'inputs: { word: { type: string, inputBinding: { position: 1 } } }',
    'outputs: { out: { type: stdout } }', 'stdout: out.txt', '',
  ].join('\n'));
  const runs: Array<[string, string[]]> = [
    ['userdock', ['run', `--rootfs=${path.join(tmp, 'empty')}`, '/bin/true']],
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
