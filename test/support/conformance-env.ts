import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pushConformanceImages, startRegistry, type Registry } from './registry.js';
import { REPO, testUser, userdockBin, userEnv, userTempDir } from './user.js';

/**
 * Everything cwltool, Toil and cwltest need to run the CWL conformance suite
 * through userdock as the unprivileged test user, offline:
 *  - a loopback registry holding the suite's images under their Docker Hub
 *    names (library/debian:stable-slim, …), reached through
 *    USERDOCK_MIRRORS=docker.io=<registry url>;
 *  - a store (USERDOCK_DIR) and a TMPDIR owned by the test user;
 *  - a copy of the conformance suite the test user can read and write;
 *  - binDir, first on PATH: `userdock` (node + the built CLI), and the
 *    launchers `cwltool-userdock` / `toil-userdock` for cwltest's --tool.
 */
export interface ConformanceEnv {
  /** Extra environment for runAsUser / runGroup (PATH, USERDOCK_*, TMPDIR). */
  env: Record<string, string>;
  /** The suite copy (conformance_tests.yaml, tests/). */
  suiteDir: string;
  binDir: string;
  storeDir: string;
  /** Root of everything this env made (owned by the test user). */
  workDir: string;
  registry: Registry;
  stop(): Promise<void>;
}

/** The conformance suite: $CWL_CONFORMANCE_DIR, else ../shared/cwl-v1.2 beside the repo. */
export function conformanceSource(): string {
  return process.env.CWL_CONFORMANCE_DIR || path.resolve(REPO, '..', 'shared', 'cwl-v1.2');
}

/** cwltest, run from the shared checkout (../shared/cwltest beside the repo) with Debian's Python. */
export const CWLTEST_SRC = process.env.CWLTEST_SRC || path.resolve(REPO, '..', 'shared', 'cwltest', 'src');
/** Debian's interpreter, never a pyenv shim. */
export const PYTHON = '/usr/bin/python3';

/** Every image the suite names (dockerPull / dockerImageId), as found in the suite. */
export function suiteImages(suiteDir: string): string[] {
  const found = new Set<string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(cwl|ya?ml|json)$/.test(e.name)) {
        const text = fs.readFileSync(p, 'utf8');
        for (const m of text.matchAll(/["']?(?:dockerPull|dockerImageId)["']?\s*:\s*["']?([^"'\s,}]+)/g)) found.add(m[1]);
      }
    }
  };
  walk(path.join(suiteDir, 'tests'));
  return [...found].sort();
}

/** `docker.io/debian:stable-slim` → `library/debian:stable-slim` (the registry path). */
export function hubPath(image: string): string {
  let s = image.replace(/^(docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '');
  if (!s.includes('/')) s = `library/${s}`;
  if (!/:[^/]+$/.test(s) && !s.includes('@')) s += ':latest';
  return s;
}

export async function startConformanceEnv(opts: { copySuite?: boolean } = {}): Promise<ConformanceEnv> {
  const u = testUser();
  const registry = await startRegistry({ auth: 'none' });
  try {
    const pushed = await pushConformanceImages(registry);
    const workDir = userTempDir('ud-conf');
    const mk = (name: string): string => {
      const d = path.join(workDir, name);
      fs.mkdirSync(d, { recursive: true });
      fs.chownSync(d, u.uid, u.gid);
      return d;
    };
    const storeDir = mk('store');
    const tmpDir = mk('tmp');
    const configDir = mk('config');
    const binDir = mk('bin');
    const suiteDir = path.join(workDir, 'cwl-v1.2');
    if (opts.copySuite !== false) {
      execFileSync('cp', ['-a', '--no-preserve=ownership', conformanceSource(), suiteDir]);
      execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, suiteDir]);
      execFileSync('chmod', ['-R', 'u+rwX', suiteDir]);
      // Every image the suite names must be one we pushed.
      const have = new Set(pushed.length ? pushed.map((p) => p.replace(/^[^/]+\//, '')) : []);
      const missing = suiteImages(suiteDir).map(hubPath).filter((p) => have.size && !have.has(p));
      if (missing.length) throw new Error(`conformance suite needs images with no stand-in: ${missing.join(', ')}`);
    }
    const launcher = (name: string, body: string): void => {
      const p = path.join(binDir, name);
      fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    };
    launcher('userdock', `exec ${sh(process.execPath)} -- ${sh(userdockBin())} "$@"`); // `--`: node parses none of the arguments (src/build/bundle.ts LAUNCHER)
    launcher('cwltool-userdock', `exec /usr/bin/cwltool --user-space-docker-cmd=userdock "$@"`);
    launcher('toil-userdock', `exec /usr/bin/toil-cwl-runner --user-space-docker-cmd=userdock "$@"`);
    const env: Record<string, string> = {
      PATH: `${binDir}:${userEnv().PATH}`,
      USERDOCK_DIR: storeDir,
      USERDOCK_CONFIG_DIR: configDir,
      USERDOCK_MIRRORS: `docker.io=${registry.url}`,
      TMPDIR: tmpDir,
      PYTHONPATH: CWLTEST_SRC,
    };
    return {
      env, suiteDir, binDir, storeDir, workDir, registry,
      async stop() {
        await registry.stop();
        if (!process.env.USERDOCK_KEEP_TMP) fs.rmSync(workDir, { recursive: true, force: true, maxRetries: 3 });
      },
    };
  } catch (e) {
    await registry.stop();
    throw e;
  }
}

function sh(s: string): string { return `'${s.replace(/'/g, `'\\''`)}'`; }

export interface GroupResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timedOut: boolean; seconds: number }

/**
 * Run a command as the test user in its own process group, with a hard
 * timeout that SIGKILLs the whole group (Debian's cwltool --parallel hangs
 * instead of failing when a step's docker command fails). The group is also
 * killed once the command exits, so no container outlives its test.
 */
export function runGroup(cmd: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs: number; input?: string }): Promise<GroupResult> {
  const u = testUser();
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { uid: u.uid, gid: u.gid, env: userEnv(opts.env), cwd: opts.cwd ?? u.home, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = []; const err: Buffer[] = [];
    let timedOut = false;
    const killGroup = (): void => { try { if (child.pid) process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } };
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => { timedOut = true; killGroup(); }, opts.timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      killGroup();
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
    child.stdin!.end(opts.input ?? '');
  });
}

export interface CwltestSummary { passed: number; failures: number; unsupported: number; failed: string[] }

/** Parse cwltest's "N tests passed, N failures, N unsupported features" and the failing test names. */
export function parseCwltest(output: string): CwltestSummary {
  const num = (re: RegExp): number => { const m = re.exec(output); return m ? Number(m[1]) : 0; };
  let passed = num(/(\d+) tests? passed/);
  // cwltest prints only "All tests passed" when nothing failed: count the "Test [i/N]" lines.
  if (/All tests passed/.test(output) && !passed) passed = num(/Test \[\d+\/(\d+)\]/);
  const failed = [...output.matchAll(/Test \d+ failed: .*|\[\d+\/\d+\] .*? failed|FAILED.*|Test failed: .*/g)].map((m) => m[0]);
  return { passed, failures: num(/(\d+) failures?/), unsupported: num(/(\d+) unsupported features?/), failed };
}

/**
 * Run cwltest as the test user on the suite copy.
 * tool: 'cwltool-userdock' | 'toil-userdock' | any runner; extra: cwltest options (--tags=docker, -n 1-10, …).
 */
export function runCwltest(ce: ConformanceEnv, tool: string, extra: string[], timeoutMs: number, junitXml?: string): Promise<GroupResult> {
  const args = ['-m', 'cwltest', '--test', 'conformance_tests.yaml', '--tool', tool, ...extra];
  if (junitXml) args.push(`--junit-xml=${junitXml}`);
  return runGroup(PYTHON, args, { env: ce.env, cwd: ce.suiteDir, timeoutMs });
}

/** Processes of the test user whose command line contains `marker`. */
export function userProcesses(marker: string): string[] {
  const r = spawnSync('pgrep', ['-a', '-u', String(testUser().uid), '-f', marker], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim() && !l.includes('pgrep'));
}

/** The failed test cases of a cwltest --junit-xml report, with the runner's output (trimmed). */
export function junitFailures(xmlPath: string, maxPerTest = 3000): string {
  let xml: string;
  try { xml = fs.readFileSync(xmlPath, 'utf8'); } catch { return ''; }
  const out: string[] = [];
  for (const m of xml.matchAll(/<testcase\b([^>]*)>([\s\S]*?)<\/testcase>/g)) {
    if (!/<failure\b/.test(m[2])) continue;
    const name = /name="([^"]*)"/.exec(m[1])?.[1] ?? '?';
    const text = m[2].replace(/<[^>]+>/g, '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#?\w+;/g, (e) => (e === '&amp;' ? '&' : e));
    out.push(`--- ${name}\n${text.slice(-maxPerTest)}`);
  }
  return out.join('\n');
}
