import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildRunProfile } from '../../src/isolation/profile.js';
import { ENGINES } from '../../src/engines/ladder.js';
import { sampleFacts } from '../../src/engines/facts.js';
import { tinyTrue } from '../../src/engines/index.js';
import { isStaticElf } from '../../src/engines/others.js';
import { guardPath } from '../../src/engines/guard.js';
import { spawnSync } from 'node:child_process';
import type { EngineContext } from '../../src/engines/types.js';

function setup() {
  const r = fs.mkdtempSync(path.join(os.tmpdir(), 'eng-'));
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'dev', 'sys', 'data']) fs.mkdirSync(path.join(r, d));
  fs.writeFileSync(path.join(r, 'bin/sh'), tinyTrue(), { mode: 0o755 });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'engs-'));
  const facts = sampleFacts('modern');
  facts.binaries.apptainer = '/opt/apptainer/bin/apptainer';
  const ec: EngineContext = { facts, scratch, bins: { ...facts.binaries }, binEnv: {} };
  const host = fs.mkdtempSync(path.join(os.tmpdir(), 'h:'));
  const p = buildRunProfile({ rootfs: r, cmd: ['/bin/sh', '-c', 'x'], env: [['A', '1']], callerEnv: { SECRET: 's' },
    binds: [{ type: 'bind', source: host, target: '/data', readonly: true }], workdir: '/data', hostname: 'box', network: 'none' });
  return { r, ec, p, host };
}

test('P1/P2 argv: -r, -0, binds (colon via symlink), -w, seccomp switch; env has no caller variables', () => {
  const { r, ec, p, host } = setup();
  const inv0 = ENGINES.P1.build(p, ec);
  // PRoot starts through the guard (src/engines/guard.ts), which execs it.
  assert.match(inv0.cmd, /\/proot-guard-[0-9a-f]{8}$/);
  assert.equal(inv0.args[0], '/usr/bin/proot');
  assert.equal(inv0.killAll, 'SIGQUIT');
  const inv = { ...inv0, args: inv0.args.slice(1) };
  assert.deepEqual(inv.args.slice(0, 3), ['-r', r, '-0']);
  const bind = inv.args.find((a) => a.endsWith(':/data'))!;
  assert.ok(!bind.slice(0, -6).includes(':'), 'host path without colon');
  assert.equal(fs.realpathSync(bind.slice(0, -6)), fs.realpathSync(host));
  // The image has /bin/sh: the command runs under the exit-status wrapper (PRoot 5.1 misreports killed commands).
  const w = inv.args.indexOf('-w');
  assert.deepEqual(inv.args.slice(w, w + 4), ['-w', '/data', '/bin/sh', '-c']);
  assert.match(inv.args[w + 4], /\(exec "\$@" 2>&9 9>&-\); exit \$\?$/);
  assert.deepEqual(inv.args.slice(w + 5), ['sh', '/bin/sh', '-c', 'x']);
  // PRoot's own info/warning lines stay out of the container's stderr, except for probes and -D.
  assert.deepEqual(inv.args.slice(w - 2, w), ['-v', '-1']);
  assert.ok(!ENGINES.P1.build(p, { ...ec, engineNotes: true }).args.includes('-v'));
  assert.equal(inv.env.SECRET, undefined);
  assert.equal(inv.env.A, '1');
  assert.equal(inv.env.PROOT_NO_SECCOMP, undefined);
  assert.ok(inv.warnings.some((w) => /read-only/.test(w)) && inv.warnings.some((w) => /network/.test(w)));
  assert.equal(ENGINES.P2.build(p, ec).env.PROOT_NO_SECCOMP, '1');
  assert.ok(ENGINES.P1.build(p, { ...ec, fakeKernel: '3.2.0' }).args.includes('-k'));
});

test('P1 on a sealed tree: no root emulation (PRoot -0 writes through permissions); a non-root user keeps -i', () => {
  const { r, ec, p } = setup();
  fs.chmodSync(r, 0o555);
  try {
    const args = ENGINES.P1.build(p, ec).args;
    assert.ok(!args.includes('-0'), 'no -0 on a sealed tree');
    assert.ok(!args.includes('-i'), 'the caller\'s own uid');
    const asBio = ENGINES.P1.build({ ...p, user: { uid: 1234, gid: 99, rootEmulation: false } }, ec).args;
    assert.deepEqual(asBio.slice(asBio.indexOf('-i'), asBio.indexOf('-i') + 2), ['-i', '1234:99']);
  } finally { fs.chmodSync(r, 0o755); }
});

test('the PRoot guard: execs its argv with the environment, sets a seccomp filter and PDEATHSIG; 127 when the program is missing', { skip: os.arch() !== 'x64' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guard-'));
  const g = guardPath(dir)!;
  assert.equal(guardPath(dir), g, 'written once');
  const r = spawnSync(g, ['/bin/sh', '-c', 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; echo "$X"; exit 7'], { env: { X: 'y' }, encoding: 'utf8' });
  assert.equal(r.status, 7);
  assert.equal(r.stdout, 'NoNewPrivs:\t1\nSeccomp:\t2\ny\n');
  // statx itself fails with ENOSYS; coreutils' stat falls back to newfstatat (which PRoot translates) and still works.
  const probe = 'import ctypes; l = ctypes.CDLL(None, use_errno=True); r = l.syscall(332, -100, b"/etc/passwd", 0, 0x7ff, ctypes.create_string_buffer(256)); print(r, ctypes.get_errno())';
  assert.equal(spawnSync(g, ['/usr/bin/python3', '-c', probe], { encoding: 'utf8' }).stdout, '-1 38\n');
  assert.equal(spawnSync('/usr/bin/python3', ['-c', probe], { encoding: 'utf8' }).stdout, '0 0\n', 'without the guard statx works');
  const st = spawnSync(g, ['/usr/bin/stat', '-c', '%s', '/etc/passwd'], { encoding: 'utf8' });
  assert.equal(st.stdout.trim(), String(fs.statSync('/etc/passwd').size));
  const pdeath = 'import ctypes; l = ctypes.CDLL(None); s = ctypes.c_int(0); l.prctl(2, ctypes.byref(s)); print(s.value)';
  assert.equal(spawnSync(g, ['/usr/bin/python3', '-c', pdeath], { encoding: 'utf8' }).stdout, '3\n', 'PR_SET_PDEATHSIG=SIGQUIT');
  assert.equal(spawnSync(g, ['/nonexistent/prog']).status, 127);
});

test('U1 argv (bwrap): read-only binds, namespaces, uid map to root, die-with-parent', () => {
  const { ec, p, host } = setup();
  const a = ENGINES.U1.build(p, ec).args;
  for (const f of ['--die-with-parent', '--unshare-user', '--unshare-pid', '--unshare-net', '--unshare-uts']) assert.ok(a.includes(f), f);
  const i = a.indexOf(host);
  assert.equal(a[i - 1], '--ro-bind');
  assert.equal(a[i + 1], '/data');
  assert.deepEqual(a.slice(a.indexOf('--uid'), a.indexOf('--uid') + 4), ['--uid', '0', '--gid', '0']);
});

test('U1 without bwrap: util-linux unshare script', () => {
  const { ec, p } = setup();
  const inv = ENGINES.U1.build(p, { ...ec, bins: { ...ec.bins, bwrap: undefined } });
  assert.equal(inv.cmd, '/usr/bin/unshare');
  assert.ok(inv.args.includes('--map-root-user'));
  const script = fs.readFileSync(inv.args[inv.args.length - 1], 'utf8');
  assert.match(script, /mount -o remount,bind,ro/);
  assert.match(script, /--root="\$R" --wd='\/data'/);
});

test('R1: OCI config without cgroups, read-only root, user mapping', () => {
  const { ec, p } = setup();
  const inv = ENGINES.R1.build(p, ec);
  assert.equal(inv.cmd, '/usr/bin/runc');
  const cfg = JSON.parse(fs.readFileSync(path.join(ec.scratch, 'bundle', 'config.json'), 'utf8'));
  assert.equal(cfg.linux.cgroupsPath, undefined);
  assert.equal(cfg.linux.resources, undefined);
  assert.equal(cfg.root.readonly, true);
  assert.equal(cfg.process.cwd, '/data');
  assert.ok(cfg.mounts.some((m: { destination: string; options?: string[] }) => m.destination === '/data' && m.options?.includes('ro')));
  assert.ok(cfg.linux.namespaces.some((n: { type: string }) => n.type === 'network'));
  assert.equal(cfg.linux.uidMappings[0].containerID, 0);
});

test('F1: fakechroot refuses remapped binds and static binaries, states its limits', () => {
  const { ec, p } = setup();
  assert.throws(() => ENGINES.F1.build(p, ec), /different path/);
  const same = { ...p, ops: [{ type: 'bind' as const, source: '/etc', target: '/etc', readonly: false }] };
  assert.throws(() => ENGINES.F1.build(same, ec), /static binary/);
  assert.ok(ENGINES.F1.limits.some((l) => /static/.test(l)));
  assert.equal(ENGINES.F1.enforces.staticBinaries, false);
});

test('S1: apptainer exec argv and env prefix', () => {
  const { r, ec, p, host } = setup();
  const inv = ENGINES.S1.build(p, ec);
  assert.equal(inv.cmd, '/opt/apptainer/bin/apptainer');
  assert.deepEqual(inv.args.slice(0, 3), ['exec', '--contain', '--cleanenv']);
  assert.ok(inv.args.includes(`${host}:/data:ro`));
  assert.ok(inv.args.includes('--fakeroot'));
  assert.deepEqual(inv.args.slice(-4), [r, '/bin/sh', '-c', 'x']);
  assert.equal(inv.env.APPTAINERENV_A, '1');
});

test('tiny probe binary is a static ELF', () => {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'elf-')), 'true');
  fs.writeFileSync(f, tinyTrue(), { mode: 0o755 });
  assert.equal(isStaticElf(f), true);
  assert.equal(isStaticElf('/bin/sh'), false);
});
