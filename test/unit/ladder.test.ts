import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sampleFacts, mergeFacts, usernsBlocker, loadHostFacts, probeHostFacts, saveHostFacts, FAILED_PROBE_TTL_MS, type HostFacts } from '../../src/engines/facts.js';
import { ladder, chooseEngine, parseEngineId, diagnose } from '../../src/engines/ladder.js';
import { UserError } from '../../src/errors.js';

const ids = (f: HostFacts) => ladder(f).filter((r) => r.usable).map((r) => r.id);

test('modern host: PRoot first, every local engine usable', () => {
  const f = sampleFacts('modern');
  assert.deepEqual(ids(f), ['P1', 'P2', 'U1', 'R1', 'F1']);
  assert.equal(chooseEngine(f).id, 'P1');
});

test('CentOS 6 (2.6.32): no seccomp filter, no userns -> P2', () => {
  const f = sampleFacts('centos6');
  const l = ladder(f);
  assert.match(l.find((r) => r.id === 'P1')!.why!, /seccomp/);
  assert.match(l.find((r) => r.id === 'U1')!.why!, /2\.6\.32.*3\.8/);
  assert.equal(chooseEngine(f).id, 'P2');
});

test('CentOS 7 (3.10, userns off): P1 then F1; U1 says why', () => {
  const f = sampleFacts('centos7');
  assert.deepEqual(ids(f), ['P1', 'P2', 'F1']);
  assert.match(ladder(f).find((r) => r.id === 'U1')!.why!, /max_user_namespaces = 0/);
});

test('no ptrace (ptrace_scope 3, docker): U1 chosen', () => {
  const f = mergeFacts(sampleFacts('modern'), { ptraceAllowed: false, ptraceScope: 3 });
  assert.equal(chooseEngine(f).id, 'U1');
  assert.throws(() => chooseEngine(f, { requested: 'P1' }), (e: unknown) => e instanceof UserError && /ptrace/.test(e.message) && !!e.hint);
});

test('a failed probe removes a rung (signal 11 on P1 -> P2)', () => {
  const f = mergeFacts(sampleFacts('modern'), { probes: { P1: { ok: false, error: 'signal 11', at: 'x' } } });
  assert.equal(chooseEngine(f).id, 'P2');
});

test('crun alone on a hybrid cgroup host is refused with the reason', () => {
  const f = mergeFacts(sampleFacts('modern'), { cgroup: 'hybrid', binaries: { runc: undefined } });
  assert.match(ladder(f).find((r) => r.id === 'R1')!.why!, /hybrid/);
});

test('Lustre fact set: engines still chosen; AppArmor userns restriction named', () => {
  assert.equal(chooseEngine(sampleFacts('lustre')).id, 'P1');
  assert.match(usernsBlocker(mergeFacts(sampleFacts('modern'), { apparmorRestrictUserns: 1 }))!, /apparmor/);
});

test('nothing usable: one error listing every rung', () => {
  const f = mergeFacts(sampleFacts('centos6'), { ptraceAllowed: false, binaries: { proot: undefined, unshare: undefined, fakechroot: undefined } });
  assert.throws(() => chooseEngine(f), (e: unknown) => e instanceof UserError && /P1:.*U1:.*F1:/.test(e.message) && /install-engines/.test(e.hint ?? ''));
});

test('engine names', () => {
  assert.equal(parseEngineId('p2'), 'P2');
  assert.equal(parseEngineId('bwrap'), 'U1');
  assert.equal(parseEngineId('runc'), 'R1');
  assert.throws(() => parseEngineId('Z9'), /unknown engine/);
});

test('diagnose maps field-note errors to cause, fix and the rungs to try instead', () => {
  assert.deepEqual(diagnose('proot error: ptrace(TRACEME): Operation not permitted')!.instead, ['U1', 'F1']);
  assert.deepEqual(diagnose('proot info: vpid 1: terminated with signal 11', 'P1')!.instead, ['P2']);
  assert.match(diagnose('proot error: it seems the current temporary directory (/tmp) is mounted with no execution permission.')!.cause, /noexec/);
  assert.deepEqual(diagnose('FATAL: kernel too old')!.instead, ['P1', 'P2']);
  assert.match(diagnose("stat: cannot statx '/x': Function not implemented")!.cause, /statx/);
  assert.match(diagnose('bwrap: setting up uid map: Permission denied')!.cause, /user namespaces/);
  assert.match(diagnose("bwrap: Can't mount proc on /newroot/proc: Operation not permitted", 'U1')!.fix!, /systempaths=unconfined/);
  assert.match(diagnose('cgroups in hybrid mode not supported, drop all controllers from cgroupv2')!.fix!, /runc/);
  assert.equal(diagnose('all fine'), undefined);
});

/** Facts as a probe run would leave them: each failed probe with its diagnosis. */
function probed(base: HostFacts, failed: Partial<Record<'P1' | 'P2' | 'U1' | 'R1' | 'F1', string>>, ok: Array<'P1' | 'P2' | 'U1' | 'R1' | 'F1'>): HostFacts {
  const probes: HostFacts['probes'] = {};
  for (const [id, stderr] of Object.entries(failed)) {
    const d = diagnose(stderr, id as 'P1')!;
    probes[id] = { ok: false, error: d.cause, fix: d.fix, instead: d.instead, at: new Date().toISOString() };
  }
  for (const id of ok) probes[id] = { ok: true, ms: 5, at: new Date().toISOString() };
  return mergeFacts(base, { probes, binaries: { runc: undefined, crun: undefined } });
}

const PTRACE = 'proot error: ptrace(TRACEME): Operation not permitted';
const NOUSERNS = 'bwrap: No permissions to create new namespace, likely because the kernel does not allow non-privileged user namespaces';
const PROCMASK = "bwrap: Can't mount proc on /newroot/proc: Operation not permitted";

/** Every rung a refused rung's fix names must be usable on that host. */
function assertFixesNameWorkingRungs(f: HostFacts): void {
  const l = ladder(f);
  for (const r of l.filter((x) => !x.usable)) {
    assert.ok(r.fix, `${r.id} has a fix`);
    for (const m of r.fix.matchAll(/--engine=(\w+)/g)) {
      assert.equal(l.find((x) => x.id === m[1])?.usable, true, `${r.id}'s fix "${r.fix}" names ${m[1]}, refused on this host`);
    }
  }
}

test('fix hints over fact sets: a refused rung never points at another refused rung', () => {
  // Docker's default seccomp profile: ptrace fine, no user namespaces.
  const docker = probed(sampleFacts('modern'), { U1: NOUSERNS }, ['P1', 'P2', 'F1']);
  assertFixesNameWorkingRungs(docker);
  assert.match(ladder(docker).find((r) => r.id === 'U1')!.fix!, /enable user namespaces, or use --engine=P1$/);
  // ptrace and user namespaces denied: only F1 works; P1 does not send the user to U1, nor U1 to P1.
  const fOnly = probed(sampleFacts('modern'), { P1: PTRACE, P2: PTRACE, U1: NOUSERNS }, ['F1']);
  assertFixesNameWorkingRungs(fOnly);
  const l = ladder(fOnly);
  assert.match(l.find((r) => r.id === 'P1')!.fix!, /allow ptrace.*, or use --engine=F1$/);
  assert.match(l.find((r) => r.id === 'U1')!.fix!, /--engine=F1$/);
  assert.equal(chooseEngine(fOnly).id, 'F1');
  // ptrace denied, user namespaces allowed but /proc masked (docker without systempaths=unconfined).
  const masked = probed(sampleFacts('modern'), { P1: PTRACE, P2: PTRACE, U1: PROCMASK }, ['F1']);
  assertFixesNameWorkingRungs(masked);
  assert.match(ladder(masked).find((r) => r.id === 'U1')!.fix!, /systempaths=unconfined.*, or use --engine=F1$/);
  // ptrace denied, user namespaces allowed: P1's fix names U1.
  const userns = probed(sampleFacts('modern'), { P1: PTRACE, P2: PTRACE }, ['U1', 'F1']);
  assertFixesNameWorkingRungs(userns);
  assert.match(ladder(userns).find((r) => r.id === 'P1')!.fix!, /--engine=U1$/);
  // Nothing works: no rung is named, the fix says so.
  const none = probed(sampleFacts('modern'), { P1: PTRACE, P2: PTRACE, U1: NOUSERNS, F1: "libfakechroot.so: GLIBC_2.38' not found" }, []);
  assertFixesNameWorkingRungs(none);
  for (const r of ladder(none).filter((x) => !x.usable)) assert.doesNotMatch(r.fix!, /--engine=/, r.id);
  assert.throws(() => chooseEngine(none), (e: unknown) => e instanceof UserError && /allow ptrace or unprivileged user namespaces/.test(e.hint ?? '') && !/install-engines/.test(e.hint ?? ''));
  // Facts alone (ptrace_scope 3): P1 requested -> the hint names U1, which facts do not refuse.
  const scope3 = mergeFacts(sampleFacts('modern'), { ptraceAllowed: false, ptraceScope: 3 });
  assertFixesNameWorkingRungs(scope3);
  assert.throws(() => chooseEngine(scope3, { requested: 'P1' }), (e: unknown) => e instanceof UserError && /--engine=U1/.test(e.hint ?? ''));
  // ... and with user namespaces off too, F1.
  const scope3NoUserns = mergeFacts(scope3, { maxUserNamespaces: 0 });
  assertFixesNameWorkingRungs(scope3NoUserns);
  assert.throws(() => chooseEngine(scope3NoUserns, { requested: 'U1' }), (e: unknown) => e instanceof UserError && /--engine=F1/.test(e.hint ?? '') && !/P1/.test(e.hint ?? ''));
  for (const name of ['centos6', 'centos7', 'lustre', 'modern'] as const) assertFixesNameWorkingRungs(sampleFacts(name));
});

test('cached facts: a failed probe older than 10 minutes is forgotten (probed again), a recent one and a success are kept', () => {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'ud-facts-'));
  try {
    const facts = probeHostFacts(store, {});
    const old = new Date(Date.now() - FAILED_PROBE_TTL_MS - 60_000).toISOString();
    facts.probes = {
      P1: { ok: false, error: 'ptrace taken (strace)', at: old },
      P2: { ok: false, error: 'still failing', at: new Date().toISOString() },
      U1: { ok: true, at: old },
    };
    saveHostFacts(store, facts);
    const loaded = loadHostFacts(store, {});
    assert.deepEqual(Object.keys(loaded.probes).sort(), ['P2', 'U1']);
    assert.doesNotMatch(ladder(loaded).find((r) => r.id === 'P1')!.why ?? '', /probe failed/);
    assert.equal(ladder(loaded).find((r) => r.id === 'P2')!.usable, false, 'a recent failure still counts');
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
});
