import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliDir, REPO } from '../support/user.js';
import { fixtureCache } from '../support/images.js';

/**
 * Real restricted hosts: containers of a private Docker daemon (Debian's
 * docker.io, started by test/fixtures/restricted-hosts.sh as a test fixture,
 * never the system service) are the hosts users bring: docker's default
 * seccomp profile, no ptrace, no ptrace and no user namespaces, a read-only
 * root with a noexec /tmp and a 64 MB HOME, no capabilities. In each, as uid
 * 1000 with the built project bound read-only at /userdock and the fixture
 * layouts at /fixtures, userdock loads an image and runs a command, reports
 * its ladder (engines --json) and runs a DockerRequirement tool with cwl-run.
 * Each case asserts the rung chosen there, or the one-line exit-125 refusal,
 * and that no refused rung's fix names another rung refused on that host.
 * The table in docs/engines.md records what these cases observed.
 */

const SCRIPT = path.join(REPO, 'test', 'fixtures', 'restricted-hosts.sh');
const CASES = path.join(REPO, 'test', 'fixtures', 'restricted-hosts');
const SOCK = process.env.USERDOCK_HOSTS_SOCK || '/run/userdock-test-docker.sock';
const DOCKER = '/usr/bin/docker';
const UID = 1000;

let started = false;
let image = '';
let fixtures = '';
let cli = '';
let hostsTar = '';
const scratch: string[] = [];

function script(cmd: string): string {
  return execFileSync('bash', [SCRIPT, cmd], { encoding: 'utf8', timeout: 600_000, stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

before(async () => {
  fixtures = await fixtureCache({ timeoutMs: 600_000 });
  cli = cliDir();
  started = script('start') === 'started';
  image = script('image');
}, { timeout: 900_000 });

after(() => {
  for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
  if (started) script('stop');
});

interface HostRun {
  rc: number | null;
  /** Files the case script wrote to /out, by name. */
  out: Record<string, string>;
  log: string;
}

/**
 * Run `bash -c SCRIPT` in a fresh container of the host image with the
 * given docker options, as uid 1000, with no network. /out is a writable
 * directory the case script leaves its results in; /cases holds the CWL tools.
 */
function inHost(dockerOpts: string[], body: string, opts: { binds?: string[]; timeoutMs?: number } = {}): Promise<HostRun> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-host-'));
  scratch.push(out);
  fs.cpSync(CASES, path.join(out, 'cases'), { recursive: true });
  execFileSync('chown', ['-R', `${UID}:${UID}`, out]);
  const args = ['-H', `unix://${SOCK}`, 'run', '--rm', '--network', 'none', '-u', `${UID}:${UID}`, '-e', 'HOME=/home/u', '-w', '/home/u',
    '-v', `${cli}:/userdock:ro`, '-v', `${fixtures}:/fixtures:ro`, '-v', `${out}:/out`,
    ...(opts.binds ?? []).flatMap((b) => ['-v', b]), ...dockerOpts, image,
    'bash', '-c', `ud() { node /userdock/dist/bundle/userdock.cjs "$@"; }\ncwlrun() { node /userdock/dist/bundle/cwl-run.cjs "$@"; }\n${body}`];
  return new Promise((resolve) => {
    execFile(DOCKER, args, { timeout: opts.timeoutMs ?? 180_000, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const files: Record<string, string> = {};
      for (const f of fs.readdirSync(out)) {
        const p = path.join(out, f);
        if (fs.statSync(p).isFile()) files[f] = fs.readFileSync(p, 'utf8');
      }
      const rc = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ rc, out: files, log: `${stdout}${stderr}` });
    });
  });
}

/**
 * The case script every host runs: load IMAGE, `run IMAGE cmd` (with -D,
 * for the chosen rung), `engines --json`, and cwl-run of the tool that
 * pulls IMAGE. Each step's status, stdout and stderr land in /out.
 */
function caseScript(img: 'deb2' | 'busybox', cmd = 'cat /etc/passwd'): string {
  return `
ud load -i /fixtures/${img} >/out/load.out 2>/out/load.err; echo $? >/out/load.rc
ud -D run ${img}:latest ${cmd} >/out/run.out 2>/out/run.err; echo $? >/out/run.rc
ud engines --json >/out/engines.json 2>/out/engines.err
mkdir -p /home/u/cwl && cd /home/u/cwl
cwlrun --quiet /out/cases/hello-${img}.cwl >/out/cwl.json 2>/out/cwl.err; echo $? >/out/cwl.rc
cp out.txt /out/cwl.txt 2>/dev/null || true
`;
}

interface Rung { id: string; usable: boolean; why?: string; fix?: string }

function rungs(h: HostRun): Rung[] {
  assert.ok(h.out['engines.json'], `engines --json wrote nothing: ${h.out['engines.err']}\n${h.log}`);
  return (JSON.parse(h.out['engines.json']) as { rungs: Rung[] }).rungs;
}

/** The rung `run -D` chose ("debug: +N ms engine P1 selected"). */
function chosen(h: HostRun): string | undefined {
  return /engine (\w\d) selected/.exec(h.out['run.err'] ?? '')?.[1];
}

/** stderr without warnings and debug lines: what a failing command said. */
function errorLines(s: string | undefined): string[] {
  return (s ?? '').split('\n').filter((l) => l && !l.startsWith('userdock: warning:') && !l.startsWith('debug:'));
}

/** No refused rung's fix names a rung that is refused on the same host. */
function assertFixesNameWorkingRungs(rs: Rung[], where: string): void {
  for (const r of rs.filter((x) => !x.usable)) {
    for (const m of (r.fix ?? '').matchAll(/--engine=(\w+)/g)) {
      assert.equal(rs.find((x) => x.id === m[1])?.usable, true, `${where}: ${r.id}'s fix "${r.fix}" names ${m[1]}, refused here`);
    }
  }
}

function usable(rs: Rung[]): string[] { return rs.filter((r) => r.usable).map((r) => r.id); }

/** The run worked on the expected rung; the ladder is as expected; the fixes are sound. */
function assertRan(h: HostRun, rung: string, ladder: string[], where: string): Rung[] {
  assert.equal(h.out['load.rc']?.trim(), '0', `${where}: load: ${h.out['load.err']}\n${h.log}`);
  assert.equal(h.out['run.rc']?.trim(), '0', `${where}: run: ${errorLines(h.out['run.err']).join('\n')}\n${h.log}`);
  assert.match(h.out['run.out'] ?? '', /^root:x:0:0:/, where);
  assert.equal(chosen(h), rung, `${where}: chosen rung`);
  const rs = rungs(h);
  assert.deepEqual(usable(rs), ladder, `${where}: usable rungs: ${JSON.stringify(rs.map((r) => [r.id, r.why]))}`);
  assertFixesNameWorkingRungs(rs, where);
  return rs;
}

/** cwl-run of the DockerRequirement tool: its output, or a one-line exit-125 refusal naming F1's limit. */
function assertCwl(h: HostRun, expect: 'ok' | 'F1-refused', where: string): void {
  const rc = h.out['cwl.rc']?.trim();
  if (expect === 'ok') {
    assert.equal(rc, '0', `${where}: cwl-run: ${h.out['cwl.err']}`);
    assert.match(h.out['cwl.txt'] ?? '', /^root:x:0:0:/, where);
    assert.equal(JSON.parse(h.out['cwl.json']).out.basename, 'out.txt');
  } else {
    assert.equal(rc, '125', `${where}: cwl-run: ${h.out['cwl.err']}`);
    const lines = errorLines(h.out['cwl.err']);
    assert.equal(lines.length, 1, `${where}: one line: ${h.out['cwl.err']}`);
    assert.match(lines[0], /engine F1 \(fakechroot\) cannot bind .* at a different path \/var\/spool\/cwl \(bind at the same path/);
    assert.doesNotMatch(lines[0], /--engine=(P1|P2|U1)/, `${where}: names a refused rung`);
  }
}

const NO_PTRACE_NO_USERNS = ['--security-opt', `seccomp=${path.join(CASES, 'no-ptrace-no-userns.json')}`];
const NO_PTRACE = ['--security-opt', `seccomp=${path.join(CASES, 'no-ptrace.json')}`];

test('a. docker default seccomp profile (no user namespaces): P1 runs; U1 refused, its fix names P1', async () => {
  const h = await inHost([], caseScript('deb2'));
  const rs = assertRan(h, 'P1', ['P1', 'P2', 'F1'], 'default seccomp');
  const u1 = rs.find((r) => r.id === 'U1')!;
  assert.match(u1.why!, /user namespaces are unavailable.*seccomp/);
  assert.match(u1.fix!, /--engine=P1$/);
  assertCwl(h, 'ok', 'default seccomp');
});

test('b. seccomp denies ptrace and user namespaces: P1, P2, U1 refused, F1 runs; no fix names a refused rung', async () => {
  const h = await inHost(NO_PTRACE_NO_USERNS, `${caseScript('deb2')}
ud run --engine=P1 deb2:latest true 2>/out/p1.err; echo $? >/out/p1.rc`);
  const rs = assertRan(h, 'F1', ['F1'], 'no ptrace, no userns');
  for (const id of ['P1', 'P2']) {
    assert.match(rs.find((r) => r.id === id)!.why!, /ptrace is denied/, id);
    assert.match(rs.find((r) => r.id === id)!.fix!, /allow ptrace.*, or use --engine=F1$/, id);
  }
  assert.match(rs.find((r) => r.id === 'U1')!.fix!, /--engine=F1$/);
  // Asked for a refused rung: exit 125, one line, its fix names the rung that works (not U1).
  assert.equal(h.out['p1.rc']?.trim(), '125');
  const p1 = errorLines(h.out['p1.err']);
  assert.equal(p1.length, 1, h.out['p1.err']);
  assert.match(p1[0], /^userdock run: engine P1 \(proot \(seccomp\)\) does not work on this host: ptrace is denied.*, or use --engine=F1\)$/);
  assertCwl(h, 'F1-refused', 'no ptrace, no userns');
});

test('c. --read-only, noexec /tmp, 64 MB HOME: P1 runs (PRoot loader from the store scratch)', async () => {
  const h = await inHost(['--read-only', '--tmpfs', '/tmp:rw,noexec,nosuid', '--tmpfs', `/home/u:rw,exec,size=64m,uid=${UID},gid=${UID},mode=700`],
    caseScript('busybox'));
  assertRan(h, 'P1', ['P1', 'P2', 'F1'], 'read-only');
  assertCwl(h, 'ok', 'read-only');
});

test('c2. the 64 MB HOME cannot hold deb2: exit 125, one line naming the full disk and the fix', async () => {
  const h = await inHost(['--read-only', '--tmpfs', '/tmp:rw,noexec,nosuid', '--tmpfs', `/home/u:rw,exec,size=64m,uid=${UID},gid=${UID},mode=700`],
    'ud load -i /fixtures/deb2 >/dev/null 2>&1; ud run deb2 true 2>/out/run.err; echo $? >/out/run.rc');
  assert.equal(h.out['run.rc']?.trim(), '125', h.log);
  const lines = errorLines(h.out['run.err']);
  assert.equal(lines.length, 1, h.out['run.err']);
  assert.match(lines[0], /no space left.*USERDOCK_DIR=DIR/);
});

test('d. --cap-drop ALL, no-new-privileges, --pids-limit 64: P1 runs', async () => {
  const h = await inHost(['--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--pids-limit', '64'], caseScript('deb2'));
  assertRan(h, 'P1', ['P1', 'P2', 'F1'], 'cap-drop');
  assertCwl(h, 'ok', 'cap-drop');
});

test('e. ptrace denied, user namespaces allowed, /proc unmasked (systempaths=unconfined): U1 runs; P1 and P2 fixes name U1', async () => {
  const h = await inHost([...NO_PTRACE, '--security-opt', 'systempaths=unconfined'], caseScript('deb2'));
  const rs = assertRan(h, 'U1', ['U1', 'F1'], 'no ptrace, userns');
  for (const id of ['P1', 'P2']) assert.match(rs.find((r) => r.id === id)!.fix!, /--engine=U1$/, id);
  assertCwl(h, 'ok', 'no ptrace, userns');
});

test("e2. ptrace denied, user namespaces allowed, docker's masked /proc: U1 refused naming systempaths=unconfined, F1 runs", async () => {
  const h = await inHost(NO_PTRACE, caseScript('deb2'));
  const rs = assertRan(h, 'F1', ['F1'], 'no ptrace, masked proc');
  const u1 = rs.find((r) => r.id === 'U1')!;
  assert.match(u1.why!, /fresh \/proc cannot be mounted/);
  assert.match(u1.fix!, /systempaths=unconfined.*, or use --engine=F1$/);
  assertCwl(h, 'F1-refused', 'no ptrace, masked proc');
});

test('f. a static-only image where only F1 works: exit 125, one line naming the static binary and a fix that names no refused rung', async () => {
  const h = await inHost(NO_PTRACE_NO_USERNS, `${caseScript('busybox', 'echo hi')}
ud run --engine=U1 busybox:latest echo hi >/dev/null 2>/out/u1.err; echo $? >/out/u1.rc`);
  assert.equal(h.out['run.rc']?.trim(), '125', h.out['run.err']);
  const lines = errorLines(h.out['run.err']);
  assert.equal(lines.length, 1, h.out['run.err']);
  assert.match(lines[0], /^userdock run: engine F1 \(fakechroot\) cannot run the static binary \/bin\/busybox \(echo\) \(use an image whose programs are dynamically linked; no other engine works on this host: ask the admins to allow ptrace or unprivileged user namespaces\)$/);
  assert.deepEqual(usable(rungs(h)), ['F1']);
  assertFixesNameWorkingRungs(rungs(h), 'static');
  // --engine=U1 there: 125, one line, the fix names F1 (the rung that works), not P1.
  assert.equal(h.out['u1.rc']?.trim(), '125');
  const u1 = errorLines(h.out['u1.err']);
  assert.equal(u1.length, 1, h.out['u1.err']);
  assert.match(u1[0], /engine U1 .* does not work on this host: unprivileged user namespaces are unavailable.*\(ask the admins to enable user namespaces, or use --engine=F1\)$/);
  // cwl-run of the busybox tool there: F1's bind limit comes first, one line, 125.
  assertCwl(h, 'F1-refused', 'static');
});

test('g. nested: userdock inside a userdock P1 container (docker default profile): F and P within P run, with the store and TMPDIR at the same path or another', async () => {
  hostsTar = script('save');
  const inner = `
ud load -i /fixtures/deb2 >/dev/null 2>&1; echo $? >/out/inner-load-$1.rc
ud -D run deb2:latest cat /etc/debian_version >/out/inner-$1.out 2>/out/inner-$1.err; echo $? >/out/inner-$1.rc
ud run --engine=F1 deb2:latest cat /etc/debian_version >/out/inner-f1-$1.out 2>/out/inner-f1-$1.err; echo $? >/out/inner-f1-$1.rc
ud run --engine=P1 deb2:latest cat /etc/debian_version >/out/inner-p1-$1.out 2>/out/inner-p1-$1.err; echo $? >/out/inner-p1-$1.rc
mkdir -p "$HOME/cwl" "$HOME/tmp" && cd "$HOME/cwl"
TMPDIR=$HOME/tmp node /userdock/dist/bundle/cwl-run.cjs --quiet /out/cases/hello-deb2.cwl >/out/inner-cwl-$1.json 2>/out/inner-cwl-$1.err
echo $? >/out/inner-cwl-$1.rc; cp out.txt /out/inner-cwl-$1.txt 2>/dev/null || true
node /userdock/dist/bundle/cwl-run.cjs --quiet /out/cases/hello-deb2.cwl >/dev/null 2>/out/inner-cwl-tmp-$1.err; echo $? >/out/inner-cwl-tmp-$1.rc
`;
  const h = await inHost([], `
cat >/home/u/inner.sh <<'EOF'
ud() { node /userdock/dist/bundle/userdock.cjs "$@"; }
${inner}
EOF
ud load -i /hosts.tar >/out/outer-load.out 2>/out/outer-load.err || exit 1
mkdir -p /home/u/same /home/u/other
ref=$(cat /out/outer-load.out)
common="-v /userdock:/userdock:ro -v /fixtures:/fixtures:ro -v /out:/out -v /home/u/inner.sh:/inner.sh:ro"
ud -D run $common -v /home/u/same:/home/u/same -e HOME=/home/u/same "$ref" bash /inner.sh same 2>/out/outer-same.err
ud run $common -v /home/u/other:/home/u -e HOME=/home/u "$ref" bash /inner.sh other 2>/out/outer-other.err
`, { binds: [`${hostsTar}:/hosts.tar:ro`], timeoutMs: 300_000 });
  assert.equal(h.rc, 0, `${h.log}\n${h.out['outer-load.err']}`);
  assert.match(h.out['outer-same.err'] ?? '', /engine P1 selected/, 'outer rung');
  assert.equal(h.out['inner-same.rc']?.trim(), '0', h.out['inner-same.err']);
  assert.match(h.out['inner-same.out'] ?? '', /^12\./);
  assert.match(h.out['inner-same.err'] ?? '', /engine P1 selected/, 'inner default rung: P within P');
  assert.equal(h.out['inner-f1-same.rc']?.trim(), '0', h.out['inner-f1-same.err']);
  assert.match(h.out['inner-f1-same.out'] ?? '', /^12\./);
  assert.equal(h.out['inner-p1-same.rc']?.trim(), '0', h.out['inner-p1-same.err']);
  assert.equal(h.out['inner-cwl-same.rc']?.trim(), '0', h.out['inner-cwl-same.err']);
  assert.match(h.out['inner-cwl-same.txt'] ?? '', /^root:x:0:0:/);
  // cwl-run's default TMPDIR there is the outer run's /tmp, bound from elsewhere; and the store bound at
  // another path inside than outside: both work, since the outer PRoot runs under the guard (statx fails
  // with ENOSYS, node falls back to calls PRoot translates; src/engines/guard.ts). Without the guard
  // src/engines/nested.ts refuses these up front (its check compares stat by path with fstat).
  assert.equal(h.out['inner-cwl-tmp-same.rc']?.trim(), '0', h.out['inner-cwl-tmp-same.err']);
  assert.equal(h.out['inner-load-other.rc']?.trim(), '0');
  for (const f of ['inner-other', 'inner-f1-other', 'inner-p1-other']) {
    assert.equal(h.out[`${f}.rc`]?.trim(), '0', `${f}: ${h.out[`${f}.err`]}`);
    assert.match(h.out[`${f}.out`] ?? '', /^12\./, f);
  }
  assert.equal(h.out['inner-cwl-other.rc']?.trim(), '0', h.out['inner-cwl-other.err']);
  assert.match(h.out['inner-cwl-other.txt'] ?? '', /^root:x:0:0:/);
});
