import { execFileSync, spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Integration tests run the CLI as an unprivileged user. The test process
 * itself runs as root (so it can create that user and start services) and
 * spawns every product command with the user's uid/gid, its own HOME and a
 * PATH without /root entries.
 */
export const TEST_USER = process.env.USERDOCK_TEST_USER || 'userdock-test';

/** Repo root (dist/test/support -> repo). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface TestUser { name: string; uid: number; gid: number; home: string }

let cached: TestUser | undefined;

export function testUser(): TestUser {
  if (cached) return cached;
  if (process.getuid?.() !== 0) throw new Error('integration tests must start as root to create and use the test user');
  let line = spawnSync('getent', ['passwd', TEST_USER], { encoding: 'utf8' }).stdout.trim();
  if (!line) {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/bash', TEST_USER]);
    line = spawnSync('getent', ['passwd', TEST_USER], { encoding: 'utf8' }).stdout.trim();
  }
  const f = line.split(':');
  cached = { name: TEST_USER, uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
  fs.mkdirSync(cached.home, { recursive: true });
  fs.chownSync(cached.home, cached.uid, cached.gid);
  return cached;
}

/** A clean environment for the test user: own HOME, a PATH with no /root entries. */
export function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const u = testUser();
  return {
    HOME: u.home,
    USER: u.name,
    LOGNAME: u.name,
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin',
    LANG: 'C.UTF-8',
    ...extra,
  };
}

let installDir: string | undefined;

/**
 * Where the test user can run the built CLI from. If the checkout is not
 * readable by the test user (a clone under /root, say), the built package is
 * copied once into a world-readable directory.
 */
export function cliDir(): string {
  if (installDir) return installDir;
  const u = testUser();
  const probe = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(path.join(REPO, 'dist', 'bundle', 'userdock.cjs'))})`], { uid: u.uid, gid: u.gid, env: userEnv() });
  if (probe.status === 0) { installDir = REPO; return installDir; }
  const dest = path.join(os.tmpdir(), `userdock-cli-${process.pid}`);
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true, mode: 0o755 });
  for (const d of ['dist', 'node_modules', 'schemas', 'package.json']) {
    if (fs.existsSync(path.join(REPO, d))) execFileSync('cp', ['-a', path.join(REPO, d), dest]);
  }
  execFileSync('chmod', ['-R', 'a+rX', dest]);
  installDir = dest;
  return dest;
}

export function userdockBin(): string { return path.join(cliDir(), 'dist', 'bundle', 'userdock.cjs'); }
export function cwlRunBin(): string { return path.join(cliDir(), 'dist', 'bundle', 'cwl-run.cjs'); }

/** A fresh directory owned by the test user. */
export function userTempDir(label = 'ud'): string {
  const u = testUser();
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  fs.chownSync(d, u.uid, u.gid);
  fs.chmodSync(d, 0o755);
  return d;
}

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; stdoutBuf: Buffer }

/** Run a command as the test user and collect its output. */
export function runAsUser(cmd: string, args: string[], opts: { env?: Record<string, string>; input?: string | Buffer; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const u = testUser();
  const so: SpawnOptions = { uid: u.uid, gid: u.gid, env: userEnv(opts.env), cwd: opts.cwd ?? u.home, stdio: ['pipe', 'pipe', 'pipe'] };
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, so);
    const out: Buffer[] = []; const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBuf = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBuf.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBuf });
    });
    // A child that exits before reading its stdin must not crash the test (EPIPE).
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
  });
}

/** Run `userdock ARGS` as the test user (`node -- BIN`: node parses none of ARGS, as in the bins' own launcher). */
export function userdock(args: string[], opts: Parameters<typeof runAsUser>[2] = {}): Promise<RunResult> {
  return runAsUser(process.execPath, ['--', userdockBin(), ...args], opts);
}
