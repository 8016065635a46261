import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildRunProfile, validateProfile, parseEnvAssignment, parseEnvFile, parseSize, resolveUser, buildToolProfile } from '../../src/isolation/profile.js';
import { canonicalizeTargets, checkCommand, abiTag, compareVersions } from '../../src/isolation/resolve.js';
import { planMounts } from '../../src/isolation/plan.js';
import { UserError } from '../../src/errors.js';
import { schemaPath } from '../../src/isolation/profile.js';
import { validatorSource, generatedPath } from '../../src/isolation/gen-validator.js';

function tree(): string {
  const r = fs.mkdtempSync(path.join(os.tmpdir(), 'prof-'));
  for (const d of ['bin', 'etc', 'usr/bin', 'var', 'tmp', 'proc', 'dev', 'sys']) fs.mkdirSync(path.join(r, d), { recursive: true });
  fs.writeFileSync(path.join(r, 'bin/sh'), '', { mode: 0o755 });
  fs.writeFileSync(path.join(r, 'usr/bin/noexec'), '', { mode: 0o644 });
  fs.writeFileSync(path.join(r, 'usr/bin/script'), '#!/nonexistent/python\n', { mode: 0o755 });
  fs.symlinkSync('/tmp', path.join(r, 'var/spool'));
  fs.writeFileSync(path.join(r, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nbio:x:1234:99:bio:/home/bio:/bin/sh\n');
  fs.writeFileSync(path.join(r, 'etc/group'), 'root:x:0:\nusers:x:100:\n');
  return r;
}

test('run profile: image metadata, env precedence, entrypoint, validation', () => {
  const r = tree();
  const p = buildRunProfile({
    rootfs: r, cmd: [], config: { Env: ['PATH=/usr/bin:/bin', 'A=image'], Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo hi'], WorkingDir: '/var' },
    env: [['A', 'flag'], ['B', 'x y=z']], callerEnv: { SECRET: 's' },
  });
  validateProfile(p);
  assert.deepEqual(p.argv, ['/bin/sh', '-c', 'echo hi']);
  assert.equal(p.env.A, 'flag');
  assert.equal(p.env.B, 'x y=z');
  assert.equal(p.env.SECRET, undefined);
  assert.equal(p.workdir, '/var');
  assert.equal(p.user.rootEmulation, true);
  assert.deepEqual(p.ops[0], { type: 'tmpfs', target: '/tmp' });
  const q = buildRunProfile({ rootfs: r, cmd: ['x'], entrypoint: '', config: { Entrypoint: ['/e'], Cmd: ['c'] }, hostenv: true, callerEnv: { SECRET: 's' } });
  assert.deepEqual(q.argv, ['x']);
  assert.equal(q.env.SECRET, 's');
  const n = buildRunProfile({ rootfs: r, cmd: ['/bin/sh'], nometa: true, config: { Env: ['A=1'], User: 'bio' } });
  assert.equal(n.env.A, undefined);
  assert.equal(n.user.uid, 0);
});

test('validateProfile rejects bad profiles with a 125 error', () => {
  assert.throws(() => validateProfile({ version: 1 }), (e: unknown) => e instanceof UserError && e.exitCode === 125 && /invalid isolation profile/.test(e.message));
  const p = buildRunProfile({ rootfs: tree(), cmd: ['/bin/sh'] });
  assert.throws(() => validateProfile({ ...p, ops: [{ type: 'bind', source: 'rel', target: '/x', readonly: true }] }), /invalid isolation profile/);
  validateProfile(buildToolProfile({ rootfs: tree(), argv: ['/bin/sh'], env: {}, outdir: { host: '/o', container: '/out' }, tmpdir: { host: '/t' }, inputs: [{ host: '/i', container: '/in' }] }));
});

test('users: names, uid:gid, groups, unknown user', () => {
  const r = tree();
  assert.deepEqual(resolveUser('bio', r), { uid: 1234, gid: 99, name: 'bio', rootEmulation: false, home: '/home/bio' });
  assert.equal(resolveUser('1234:users', r).gid, 100);
  assert.equal(resolveUser('5000:5000', r).uid, 5000);
  assert.equal(resolveUser('', r).rootEmulation, true);
  assert.throws(() => resolveUser('nobody2', r), (e: unknown) => e instanceof UserError && /not found in the image/.test(e.message));
});

test('env parsing: first =, NAME alone copies, env files', () => {
  assert.deepEqual(parseEnvAssignment('A=b=c d', {}), ['A', 'b=c d']);
  assert.deepEqual(parseEnvAssignment('HOME', { HOME: '/h' }), ['HOME', '/h']);
  assert.equal(parseEnvAssignment('UNSET', {}), undefined);
  assert.deepEqual(parseEnvFile('# c\n\nA=1\nB=two words\nC\n', { C: 'c' }), [['A', '1'], ['B', 'two words'], ['C', 'c']]);
  assert.equal(parseSize('64m'), 64 * 1024 * 1024);
  assert.throws(() => parseSize('lots'));
  for (const bad of ['', '=x']) assert.throws(() => parseEnvAssignment(bad, {}), (e: unknown) => e instanceof UserError && e.exitCode === 2 && /empty variable name/.test(e.message));
});

test('-t: TERM is the caller\'s, else xterm; the image or --env wins; no TERM without -t', () => {
  const r = tree();
  const term = (spec: Partial<Parameters<typeof buildRunProfile>[0]>) => buildRunProfile({ rootfs: r, cmd: ['/bin/sh'], callerEnv: {}, ...spec }).env.TERM;
  assert.equal(term({ tty: true, callerEnv: { TERM: 'screen-256color' } }), 'screen-256color');
  assert.equal(term({ tty: true }), 'xterm');
  assert.equal(term({ tty: true, callerEnv: { TERM: '' } }), 'xterm');
  assert.equal(term({ tty: true, callerEnv: { TERM: 'screen' }, config: { Env: ['TERM=vt100'] } }), 'vt100');
  assert.equal(term({ tty: true, env: [['TERM', 'dumb']] }), 'dumb');
  assert.equal(term({ callerEnv: { TERM: 'screen' } }), undefined);
});

test('bind targets across image symlinks are resolved inside the rootfs (/var/spool -> /tmp)', () => {
  const r = tree();
  const p = canonicalizeTargets(buildRunProfile({ rootfs: r, cmd: ['/bin/sh'], binds: [{ type: 'bind', source: '/etc', target: '/var/spool/cwl', readonly: true }] }));
  assert.equal(p.ops[1].target, '/tmp/cwl');
});

test('command checks: 127 not found, 126 not executable, missing interpreter', () => {
  const r = tree();
  const mk = (cmd: string) => buildRunProfile({ rootfs: r, cmd: [cmd] });
  assert.equal(checkCommand(mk('sh')).ok, true);
  assert.equal(checkCommand(mk('/bin/sh')).ok, true);
  assert.equal(checkCommand(mk('nope')).code, 127);
  assert.equal(checkCommand(mk('/usr/bin/noexec')).code, 126);
  assert.equal(checkCommand(mk('/bin')).code, 126);
  assert.equal(checkCommand(mk('script')).code, 127);
});

test('mount plan: nothing missing uses the rootfs; missing mount points explode a skeleton, rootfs untouched', () => {
  const r = tree();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'scr-'));
  const before = fs.readdirSync(r).sort();
  const simple = planMounts(buildRunProfile({ rootfs: r, cmd: ['/bin/sh'] }), scratch);
  assert.equal(simple.root, r);
  const p = buildRunProfile({ rootfs: r, cmd: ['/bin/sh'], workdir: '/work', binds: [{ type: 'bind', source: '/etc/hostname', target: '/var/lib/x/f', readonly: true }] });
  const plan = planMounts(p, scratch);
  assert.notEqual(plan.root, r);
  assert.ok(fs.statSync(path.join(plan.root, 'var/lib/x/f')).isFile());
  assert.ok(fs.statSync(path.join(plan.root, 'work')).isDirectory());
  assert.equal(fs.readlinkSync(path.join(plan.root, 'var/spool')), '/tmp');
  assert.ok(plan.mounts.some((m) => m.kind === 'bind' && m.target === '/bin' && m.source === path.join(r, 'bin') && m.readonly));
  assert.ok(!plan.mounts.some((m) => m.kind === 'bind' && m.target === '/proc'), 'covered entries are not bound');
  assert.deepEqual(fs.readdirSync(r).sort(), before);
  assert.ok(!fs.existsSync(path.join(r, 'var/lib')));
});

test('glibc ABI tag and version compare', () => {
  const note = Buffer.from([4, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0x47, 0x4e, 0x55, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(abiTag(Buffer.concat([Buffer.alloc(100), note])), '3.2.0');
  assert.ok(compareVersions('2.6.32-754.el6', '3.2.0') < 0);
  assert.ok(compareVersions('6.1.0', '3.2') > 0);
});

test('the ahead-of-time validator (profile-validator.gen.ts) is current with schemas/profile.schema.json', () => {
  const repo = path.resolve(path.dirname(schemaPath()), '..');
  const want = validatorSource(fs.readFileSync(schemaPath(), 'utf8'));
  assert.ok(fs.readFileSync(generatedPath(repo), 'utf8') === want, 'stale: run `npx tsc -p . && node dist/src/isolation/gen-validator.js`');
});
