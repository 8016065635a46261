/**
 * The full CWL conformance run for cwl-run, as the unprivileged test user,
 * offline: a loopback registry with the suite's images, a private store,
 * a copy of the suite (test/support/conformance-env.ts).
 *
 *   node dist/test/bench/cwl-conformance.js [--cwltest] [--out DIR] [HARNESS-OR-CWLTEST-ARGS...] [-- RUNNER-ARGS...]
 *
 * Without --cwltest it runs our harness (dist/conformance/harness.js) with the
 * given selection (e.g. --exclude-tags workflow -j2); with --cwltest it runs
 * the CWL project's cwltest, unchanged, with --tool pointing at a cwl-run
 * launcher script. Reports (summary.md, results.json, junit.xml) land in --out
 * (default ./conformance-results). Must start as root.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startConformanceEnv, runGroup, runCwltest, parseCwltest } from '../support/conformance-env.js';
import { cliDir, cwlRunBin, testUser } from '../support/user.js';

export function writeCwlRunLauncher(binDir: string, extraArgs: string[] = []): string {
  const p = path.join(binDir, 'cwl-run');
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  fs.writeFileSync(p, `#!/bin/sh\nexec ${q(process.execPath)} -- ${q(cwlRunBin())} ${extraArgs.map(q).join(' ')} "$@"\n`, { mode: 0o755 });
  return p;
}

/**
 * The `networkaccess` tests reach for a host on the internet: never run them
 * here (no route, and no traffic may leave loopback). Adds the tag to any
 * --exclude-tags given (both our harness and cwltest take that flag).
 */
export function excludeNetworkaccess(args: string[]): string[] {
  const i = args.indexOf('--exclude-tags');
  if (i < 0) return [...args, '--exclude-tags', 'networkaccess'];
  return args.map((a, j) => (j === i + 1 ? `${a},networkaccess` : a));
}

async function main(argv: string[]): Promise<number> {
  let useCwltest = false;
  let out = path.resolve('conformance-results');
  const args: string[] = [];
  let runnerArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--cwltest') useCwltest = true;
    else if (argv[i] === '--out') out = path.resolve(argv[++i]);
    else if (argv[i] === '--') { runnerArgs = argv.slice(i + 1); break; }
    else args.push(argv[i]);
  }
  args.splice(0, args.length, ...excludeNetworkaccess(args));
  cliDir();
  const ce = await startConformanceEnv();
  try {
    const u = testUser();
    const launcher = writeCwlRunLauncher(ce.binDir, runnerArgs);
    const resDir = path.join(ce.workDir, 'results');
    fs.mkdirSync(resDir, { recursive: true });
    fs.chownSync(resDir, u.uid, u.gid);
    let code: number;
    if (useCwltest) {
      const r = await runCwltest(ce, launcher, [...args, '--timeout=300'], 4 * 3600_000, path.join(resDir, 'junit.xml'));
      process.stdout.write(r.stdout.slice(-2000));
      process.stderr.write(r.stderr.split('\n').filter((l) => /passed|failures|unsupported|failed/.test(l)).slice(-60).join('\n') + '\n');
      const s = parseCwltest(r.stdout + r.stderr);
      process.stdout.write(`cwltest: ${s.passed} passed, ${s.failures} failures, ${s.unsupported} unsupported\n`);
      code = r.code ?? 1;
    } else {
      const harness = path.join(cliDir(), 'dist', 'conformance', 'harness.js');
      const r = await runGroup(process.execPath, [harness, '--tool', `${launcher}`, '--out', resDir, ...args], {
        env: { ...ce.env, CWL_CONFORMANCE_DIR: ce.suiteDir }, cwd: ce.workDir, timeoutMs: 4 * 3600_000,
      });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      code = r.code ?? 1;
    }
    fs.mkdirSync(out, { recursive: true });
    for (const f of fs.readdirSync(resDir)) fs.copyFileSync(path.join(resDir, f), path.join(out, f));
    return code;
  } finally {
    await ce.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]).endsWith(path.join('bench', 'cwl-conformance.js'))) {
  main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exitCode = 2; });
}
