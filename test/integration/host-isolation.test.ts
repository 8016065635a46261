import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { userdock, userTempDir, testUser, userEnv, userdockBin, runAsUser, cwlRunBin } from '../support/user.js';
import { fixtureCache } from '../support/images.js';
import { giveToUser, writeAsUser } from '../support/cwl-fixtures.js';

/**
 * What the PRoot rungs used to leak or leave behind (issue 17 §4), as the
 * test user: the caller's environment through /proc/PID/environ, host file
 * metadata through statx, and processes that outlive a killed userdock.
 */
let work = '';
let env: Record<string, string> = {};

before(async () => {
  const cache = await fixtureCache({ timeoutMs: 1_500_000 });
  work = userTempDir('ud-hostiso');
  env = { USERDOCK_DIR: path.join(work, 'store'), USERDOCK_MIRRORS: 'docker.io=http://127.0.0.1:9' };
  const r = await userdock(['load', '-i', path.join(cache, 'deb2')], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
}, { timeout: 1_800_000 });

// Every pid near our own, thread ids included (they are not listed in /proc but can be opened).
const SCAN = 'n=0; for t in $(seq $(($$-400)) $(($$+400))); do if tr "\\0" "\\n" < /proc/$t/environ 2>/dev/null | grep -q s3cr3t; then echo "leak in $t"; fi; done; echo scanned';

test('P1/P2: the caller\'s environment is not readable through /proc/PID/environ (userdock and cwl-run)', { timeout: 300_000 }, async () => {
  for (const e of ['P1', 'P2']) {
    const r = await userdock(['run', `--engine=${e}`, 'deb2', '/bin/sh', '-c', SCAN], { env: { ...env, AWS_SECRET_ACCESS_KEY: 's3cr3t-value', USERDOCK_SECRETISH: 'x' }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'scanned\n', `${e}: ${r.stdout}`);
  }
  const dir = path.join(work, 'cwl'); fs.mkdirSync(dir, { recursive: true }); giveToUser(dir);
  const tool = writeAsUser(dir, 'scan.cwl', `cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: { dockerPull: "deb2" }
  ShellCommandRequirement: {}
inputs: []
arguments: [{ valueFrom: ${JSON.stringify(SCAN.replaceAll('$(', '\\$('))}, shellQuote: false }]
stdout: out.txt
outputs: { out: { type: stdout } }
`);
  const r = await runAsUser(process.execPath, [cwlRunBin(), '--engine', 'P1', '--outdir', path.join(dir, 'out'), tool], { env: { ...env, AWS_SECRET_ACCESS_KEY: 's3cr3t-value' }, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(dir, 'out', 'out.txt'), 'utf8'), 'scanned\n');
});

test('P1/P2: stat sees the image\'s files, not the host\'s; host paths outside the profile do not exist', { timeout: 300_000 }, async () => {
  const u = testUser();
  const imagePasswd = spawnSync('sh', ['-c', `cat ${path.join(env.USERDOCK_DIR, 'rootfs')}/*/rootfs/etc/passwd | wc -c`], { encoding: 'utf8' }).stdout.trim();
  assert.notEqual(imagePasswd, String(fs.statSync('/etc/passwd').size), 'the test needs image and host passwd of different sizes');
  for (const e of ['P1', 'P2']) {
    const r = await userdock(['run', `--engine=${e}`, 'deb2', '/bin/sh', '-c',
      `stat -c %s /etc/passwd; ls -l /etc/passwd | awk '{print $5}'; python3 -c 'import os; print(os.stat("/etc/passwd").st_size)'; ` +
      `for p in ${u.home} ${env.USERDOCK_DIR} ${work}; do test -e $p && echo "$p visible"; stat $p >/dev/null 2>&1 && echo "$p stat-able"; done; echo end`],
    { env, timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${imagePasswd}\n${imagePasswd}\n${imagePasswd}\nend\n`, `${e}: ${r.stdout}`);
  }
});

function userProcs(): string[] {
  const out = spawnSync('ps', ['-u', String(testUser().uid), '-o', 'pid=,stat=,args='], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((l) => /^\s*\d+\s+[^Z\s]\S*\s+sleep 3\d\d7$/.test(l));
}

async function startRun(args: string[]): Promise<ReturnType<typeof spawn>> {
  const u = testUser();
  spawnSync('pkill', ['-KILL', '-u', String(u.uid), '-f', '^sleep 3[0-9][0-9]7']);
  const child = spawn(process.execPath, [userdockBin(), ...args], { uid: u.uid, gid: u.gid, env: userEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  for (let i = 0; i < 100 && userProcs().length < 3; i++) await sleep(100);
  assert.equal(userProcs().length, 3, 'the container processes started');
  return child;
}

const TREE = 'sleep 3017 & setsid sleep 3027 & sleep 3037';

test('P1/P2: kill -9 of userdock ends every container process, setsid ones too', { timeout: 120_000 }, async () => {
  for (const e of ['P1', 'P2']) {
    const child = await startRun(['run', `--engine=${e}`, 'deb2', '/bin/sh', '-c', TREE]);
    child.kill('SIGKILL');
    for (let i = 0; i < 50 && userProcs().length; i++) await sleep(100);
    assert.deepEqual(userProcs(), [], `${e}: processes left after kill -9 of userdock`);
  }
});

test('P1: SIGTERM ends the run with 143, setsid children within the grace period', { timeout: 120_000 }, async () => {
  const child = await startRun(['run', '--engine=P1', 'deb2', '/bin/sh', '-c', TREE]);
  const done = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  child.kill('SIGTERM');
  assert.equal(await done, 143);
  for (let i = 0; i < 20 && userProcs().length; i++) await sleep(100);
  assert.deepEqual(userProcs(), [], 'processes left after SIGTERM');
});

test('P1 under a terminal (-i -t): SIGTERM to userdock reaches the command', { timeout: 120_000 }, async () => {
  const u = testUser();
  spawnSync('pkill', ['-KILL', '-u', String(u.uid), '-f', '^sleep 3047']);
  const cmd = `${process.execPath} ${userdockBin()} run -i -t --engine=P1 deb2 sh -c 'trap \"echo got-TERM; exit 3\" TERM; sleep 3047 & wait'; echo "rc=$?"`;
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { uid: u.uid, gid: u.gid, env: userEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  const pid = async () => {
    for (let i = 0; i < 100; i++) {
      const p = spawnSync('pgrep', ['-u', String(u.uid), '-f', `^${process.execPath} ${userdockBin()} run -i -t`], { encoding: 'utf8' }).stdout.trim();
      if (p && spawnSync('pgrep', ['-u', String(u.uid), '-f', '^sleep 3047$']).status === 0) return Number(p.split('\n')[0]);
      await sleep(100);
    }
    throw new Error('the run did not start');
  };
  process.kill(await pid(), 'SIGTERM');
  await new Promise((resolve) => child.on('exit', resolve));
  // The command itself got the TERM (its trap ran and chose its exit code), not only the engine.
  assert.match(out, /got-TERM/);
  assert.match(out, /rc=3\b/);
  assert.equal(spawnSync('pgrep', ['-u', String(u.uid), '-f', '^sleep 3047$']).status, 1, 'the command was left running');
});
