/**
 * The CWL conformance suite as a benchmark: cwl-run against Debian's cwltool,
 * both with containers through userdock, both -j2, in the same run, as the
 * test user on the offline conformance environment.
 *
 * USERDOCK_BENCH_SUITE=tools (default: every test not tagged workflow, the
 * issue-6 benchmark) or all (the whole suite, the issue-7 benchmark).
 * Wall time per runner and the pass counts are reported; a runner that fails
 * tests still gets timed, and the note says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startConformanceEnv, runGroup } from '../support/conformance-env.js';
import { cliDir } from '../support/user.js';
import { excludeNetworkaccess, writeCwlRunLauncher } from './cwl-conformance.js';

interface Row { name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string; goal?: string; note?: string }

async function harness(ce: Awaited<ReturnType<typeof startConformanceEnv>>, tool: string, select: string[], out: string): Promise<{ seconds: number; passed: number; total: number }> {
  const script = path.join(cliDir(), 'dist', 'conformance', 'harness.js');
  const r = await runGroup(process.execPath, [script, '--tool', tool, '-j', '2', '--timeout', '600', '--out', out, ...select], {
    env: { ...ce.env, CWL_CONFORMANCE_DIR: ce.suiteDir }, cwd: ce.workDir, timeoutMs: 3 * 3600_000,
  });
  let passed = 0; let total = 0;
  try {
    const res = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as { results: Array<{ outcome: string }> };
    total = res.results.length;
    passed = res.results.filter((t) => t.outcome === 'pass').length;
  } catch { /* no results: counted as 0 */ }
  return { seconds: r.seconds, passed, total };
}

export async function benchCwlSuite(): Promise<Row[]> {
  const which = process.env.USERDOCK_BENCH_SUITE === 'all' ? 'all' : 'tools';
  const select = excludeNetworkaccess(which === 'all' ? [] : ['--exclude-tags', 'workflow']);
  cliDir();
  const ce = await startConformanceEnv();
  try {
    const ours = writeCwlRunLauncher(ce.binDir);
    const mkOut = (n: string): string => { const d = path.join(ce.workDir, n); fs.mkdirSync(d, { recursive: true }); fs.chmodSync(d, 0o777); return d; };
    const a = await harness(ce, ours, select, mkOut('res-ours'));
    const b = await harness(ce, path.join(ce.binDir, 'cwltool-userdock'), select, mkOut('res-cwltool'));
    return [{
      name: `CWL suite (${which === 'all' ? 'all tests' : 'non-workflow tests'} but networkaccess), -j2, containers via userdock`,
      ours_s: a.seconds, anchor_s: b.seconds, ratio: a.seconds / b.seconds,
      anchor: 'cwltool (Debian) --user-space-docker-cmd=userdock',
      goal: '≤ 0.25×',
      note: `passed: cwl-run ${a.passed}/${a.total}, cwltool ${b.passed}/${b.total}`,
    }];
  } finally {
    await ce.stop();
  }
}
