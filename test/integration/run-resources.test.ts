import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { userdock, userTempDir } from '../support/user.js';
import { fixtureCache } from '../support/images.js';

/**
 * Resource flags do what they say or are refused (no flag accepted and
 * ignored): --cpuset-cpus, --shm-size, --gpus, setup --nvidia. As the test user.
 */
let env: Record<string, string> = {};

before(async () => {
  const cache = await fixtureCache({ timeoutMs: 1_500_000 });
  env = { USERDOCK_DIR: path.join(userTempDir('ud-res'), 'store'), USERDOCK_MIRRORS: 'docker.io=http://127.0.0.1:9' };
  const r = await userdock(['load', '-i', path.join(cache, 'deb2')], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
}, { timeout: 1_800_000 });

const ud = (args: string[]) => userdock(args, { env, timeoutMs: 120_000 });

test('--cpuset-cpus: the container runs with that CPU affinity on every engine; CPUs the host lacks are a usage error', async () => {
  const last = os.cpus().length - 1;
  for (const e of ['P1', 'U1', 'R1']) {
    const r = await ud(['run', `--engine=${e}`, `--cpuset-cpus=${last}`, 'deb2', '/bin/sh', '-c', 'grep Cpus_allowed_list /proc/self/status; nproc']);
    assert.equal(r.code, 0, `${e}: ${r.stderr}`);
    assert.equal(r.stdout, `Cpus_allowed_list:\t${last}\n1\n`, e);
  }
  const bad = await ud(['run', `--cpuset-cpus=${last + 1}`, 'deb2', 'true']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, new RegExp(`^userdock run: --cpuset-cpus=${last + 1}: "${last + 1}" is not a CPU or range of this host`));
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});

test('--shm-size: U1 and R1 mount a /dev/shm of that size; PRoot says it uses the host\'s', async () => {
  for (const e of ['U1', 'R1']) {
    const r = await ud(['run', `--engine=${e}`, '--shm-size=8m', 'deb2', '/bin/sh', '-c', "df -k /dev/shm | awk 'NR==2 {print $2}'"]);
    assert.equal(r.code, 0, `${e}: ${r.stderr}`);
    assert.equal(r.stdout, '8192\n', e);
  }
  const p = await ud(['run', '--engine=P1', '--shm-size=8m', 'deb2', 'true']);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stderr, /warning: PRoot cannot size \/dev\/shm: the host's is used/);
});

test('--gpus and setup --nvidia are refused with one line, nothing run or changed', async () => {
  for (const g of ['all', '1', 'device=0']) {
    const r = await ud(['run', `--gpus=${g}`, 'deb2', '/bin/sh', '-c', 'echo RAN']);
    assert.equal(r.code, 125, r.stderr);
    assert.equal(r.stdout, '', 'the command did not run');
    assert.match(r.stderr, new RegExp(`^userdock run: run: --gpus=${g}: userdock cannot pass GPUs into containers yet .*silently run on the CPU`));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const c = await ud(['create', '--name=gpu1', 'deb2']);
  assert.equal(c.code, 0, c.stderr);
  const s = await ud(['setup', '--nvidia', 'gpu1']);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /setup --nvidia: passing the host's NVIDIA driver into containers is not supported yet/);
  const show = await ud(['setup', 'gpu1']);
  assert.match(show.stdout, /execmode=auto/, 'nothing changed');
});
