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

test('diagnose maps field-note errors to cause and fix', () => {
  assert.match(diagnose('proot error: ptrace(TRACEME): Operation not permitted')!.fix, /U1/);
  assert.match(diagnose('proot info: vpid 1: terminated with signal 11', 'P1')!.fix, /P2/);
  assert.match(diagnose('proot error: it seems the current temporary directory (/tmp) is mounted with no execution permission.')!.cause, /noexec/);
  assert.match(diagnose('FATAL: kernel too old')!.fix, /P1/);
  assert.match(diagnose("stat: cannot statx '/x': Function not implemented")!.cause, /statx/);
  assert.match(diagnose('bwrap: setting up uid map: Permission denied')!.cause, /user namespaces/);
  assert.match(diagnose('cgroups in hybrid mode not supported, drop all controllers from cgroupv2')!.fix, /runc/);
  assert.equal(diagnose('all fine'), undefined);
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
