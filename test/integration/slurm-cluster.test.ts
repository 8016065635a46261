// test:exclusive (sets the node down and back up: jobs of other test files would die)
// The single-node Slurm cluster from .ci/slurm-start works for an unprivileged
// user: srun, sbatch --wait of an array, scancel, node down/resume, and the
// packed-array submit + batched poller of src/cwl/slurm.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runAsUser, testUser, userTempDir } from '../support/user.js';
import { arraySpec, packScatter } from '../../src/cwl/slurm/pack.js';
import { SlurmPoller, sbatch, type Exec } from '../../src/cwl/slurm/queue.js';
import { ensureSlurm, jobState, nodeState, setNodeState, showJob, waitIdle, waitJobState, type SlurmCluster } from '../support/slurm.js';

let cluster: SlurmCluster;

before(async () => {
  testUser();
  cluster = await ensureSlurm();
}, { timeout: 300_000 });

test('srun hostname runs on the node as the test user', { timeout: 90_000 }, async () => {
  const r = await runAsUser('srun', ['-Q', '--time=1', 'hostname'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('.')[0], cluster.nodeName);
  const who = await runAsUser('srun', ['-Q', '--time=1', 'id', '-un'], { timeoutMs: 60_000 });
  assert.equal(who.code, 0, who.stderr);
  assert.equal(who.stdout.trim(), testUser().name);
});

test('sbatch --wait of a 2-task array runs both tasks', { timeout: 120_000 }, async () => {
  const dir = userTempDir('slurm-array');
  try {
    const r = await runAsUser('sbatch', ['--parsable', '--wait', '--time=1', '--array=0-1', '-o', path.join(dir, 'out-%a.txt'),
      '--wrap', 'echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID"'], { cwd: dir, timeoutMs: 100_000 });
    assert.equal(r.code, 0, r.stderr);
    const jobId = r.stdout.trim().split(';')[0]!;
    assert.match(jobId, /^\d+$/);
    for (const i of [0, 1]) {
      assert.equal(fs.readFileSync(path.join(dir, `out-${i}.txt`), 'utf8').trim(), `task ${i} of ${jobId}`);
    }
    const recs = await showJob(jobId);
    assert.equal(recs.length, 2, 'both array tasks are still visible to scontrol (MinJobAge)');
    for (const rec of recs) assert.equal(rec.JobState, 'COMPLETED');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('scancel of a running job leaves it CANCELLED', { timeout: 120_000 }, async () => {
  const dir = userTempDir('slurm-cancel');
  try {
    const sub = await runAsUser('sbatch', ['--parsable', '--time=5', '-o', '/dev/null', '--wrap', 'sleep 300'], { cwd: dir, timeoutMs: 30_000 });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = sub.stdout.trim();
    try {
      await waitJobState(jobId, ['RUNNING'], 60_000);
      const c = await runAsUser('scancel', [jobId], { timeoutMs: 30_000 });
      assert.equal(c.code, 0, c.stderr);
      assert.equal(await waitJobState(jobId, ['CANCELLED'], 30_000), 'CANCELLED');
    } finally {
      // Never leave a 300 s sleeper behind if an assertion above failed.
      if ((await jobState(jobId)) !== 'CANCELLED') await runAsUser('scancel', [jobId], { timeoutMs: 30_000 });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a node set down comes back after resume', { timeout: 360_000 }, async () => {
  // DOWN kills jobs running on the node: wait until other test files' jobs are gone.
  await waitIdle({ nodeName: cluster.nodeName, timeoutMs: 300_000 });
  try {
    await setNodeState(cluster.nodeName, 'down', 'userdock slurm-cluster test');
    assert.match(await nodeState(cluster.nodeName), /^down/);
  } finally {
    await setNodeState(cluster.nodeName, 'resume');
  }
  const deadline = Date.now() + 30_000;
  let st = await nodeState(cluster.nodeName);
  while (!['idle', 'mixed', 'allocated'].includes(st) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    st = await nodeState(cluster.nodeName);
  }
  assert.ok(['idle', 'mixed', 'allocated'].includes(st), `node state after resume: ${st}`);
  const r = await runAsUser('srun', ['-Q', '--time=1', 'true'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
});

test('packed scatter array + batched poller (src/cwl/slurm) as the test user', { timeout: 180_000 }, async () => {
  const dir = userTempDir('slurm-pack');
  try {
    const items = 7;
    const p = packScatter(items, { maxTasks: 3 });
    assert.deepEqual(p, { tasks: 3, perTask: 3 });
    const script = path.join(dir, 'task.sh');
    // Task t runs items [t*3, min(7, t*3+3)); item 4 fails with exit 3.
    fs.writeFileSync(script, [
      '#!/bin/bash',
      `start=$((SLURM_ARRAY_TASK_ID * ${p.perTask})); end=$((start + ${p.perTask})); [ $end -gt ${items} ] && end=${items}`,
      'for ((i = start; i < end; i++)); do echo "item $i" > "item-$i.txt"; [ $i -eq 4 ] && exit 3; done',
      'exit 0', '',
    ].join('\n'), { mode: 0o755 });
    fs.chownSync(script, testUser().uid, testUser().gid);
    const exec: Exec = async (cmd, args, timeoutMs) => {
      const r = await runAsUser(cmd, args, { cwd: dir, timeoutMs });
      return { code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr };
    };
    const jobId = await sbatch({ script, array: arraySpec(p), cwd: dir, output: '/dev/null', timeMinutes: 2, partition: cluster.partition }, exec);
    const poller = new SlurmPoller({ minDelayMs: 200, maxDelayMs: 2000, exec });
    try {
      const finals = (await poller.wait(jobId)).sort((a, b) => a.jobId.localeCompare(b.jobId));
      assert.deepEqual(finals.map((f) => [f.jobId, f.state, f.exitCode]),
        [[`${jobId}_0`, 'COMPLETED', 0], [`${jobId}_1`, 'FAILED', 3], [`${jobId}_2`, 'COMPLETED', 0]]);
    } finally {
      poller.close();
    }
    for (const i of [0, 1, 2, 3, 4, 6]) assert.equal(fs.readFileSync(path.join(dir, `item-${i}.txt`), 'utf8').trim(), `item ${i}`);
    assert.equal(fs.existsSync(path.join(dir, 'item-5.txt')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
