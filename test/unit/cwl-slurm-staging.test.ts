import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { localTmp, nodeTmpBase } from '../../src/cwl/slurm/staging.js';
import type { LaunchSpec } from '../../src/cwl/launch.js';

const spec = (over: Partial<LaunchSpec>): LaunchSpec => ({
  label: 't', argv: ['true'], env: {}, cwd: '/', cores: 1, ramMB: 1, outdirMB: 1, tmpdirMB: 1, timeLimitSec: 0, ...over,
});

test('node tmp base: --slurm-node-tmp, else the job\'s $TMPDIR, else /tmp', () => {
  assert.equal(nodeTmpBase('/scratch', { TMPDIR: '/x' }), '/scratch');
  assert.equal(nodeTmpBase(undefined, { TMPDIR: '/x' }), '/x');
  assert.equal(nodeTmpBase(undefined, {}), '/tmp');
});

test('container job: the /tmp bind is re-pointed at a fresh node-local dir, removed when done', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'stg-'));
  const binds = [{ host: '/shared/out', container: '/var/spool/cwl', readonly: false }, { host: '/shared/tmp/cwlrun-tmp-1', container: '/tmp', readonly: false }];
  const s = spec({ env: { TMPDIR: '/tmp' }, container: { spec: {} as never, binds, network: false } });
  const l = localTmp(s, path.join(base, 'node'))!;
  assert.ok(l.dir.startsWith(path.join(base, 'node', 'cwl-run-tmp-')));
  assert.equal(binds[1]!.host, l.dir);
  assert.equal(binds[0]!.host, '/shared/out');
  fs.mkdirSync(path.join(l.dir, 'ro'));
  fs.writeFileSync(path.join(l.dir, 'ro', 'f'), 'x');
  fs.chmodSync(path.join(l.dir, 'ro'), 0o500);
  l.done();
  assert.equal(fs.existsSync(l.dir), false);
  fs.rmSync(base, { recursive: true, force: true });
});

test('process job: the shared tmpdir path is a symlink to node-local disk while it runs, an empty dir after', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'stg-'));
  const shared = path.join(base, 'shared-tmp');
  fs.mkdirSync(shared);
  const l = localTmp(spec({ env: { TMPDIR: shared } }), path.join(base, 'node'))!;
  assert.equal(fs.realpathSync(shared), fs.realpathSync(l.dir));
  fs.writeFileSync(path.join(shared, 'big'), 'x');
  assert.ok(fs.existsSync(path.join(l.dir, 'big')));
  l.done();
  assert.equal(fs.existsSync(l.dir), false);
  assert.deepEqual(fs.readdirSync(shared), []);
  assert.equal(fs.lstatSync(shared).isDirectory(), true);
  fs.rmSync(base, { recursive: true, force: true });
});
