import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { userdock, userTempDir, testUser } from '../support/user.js';
import { fixtureLayout } from '../support/images.js';
import { startRegistry, pushImage, type Registry } from '../support/registry.js';

/**
 * `run IMAGE` and `run CONTAINER` end to end on the real deb2 fixture (two
 * layers, debootstrap bookworm + python3-minimal, a whiteout of
 * /etc/issue.net), pulled from a loopback registry, as the test user, on
 * every engine that works here.
 */
const ENGINES = ['P1', 'P2', 'U1', 'R1'];
let reg: Registry;
let store: string;
let env: Record<string, string>;

before(async () => {
  testUser();
  reg = await startRegistry();
  await pushImage(reg, 'deb2', 'library/deb2:latest');
  store = userTempDir('udstore');
  env = { USERDOCK_MIRRORS: `docker.io=${reg.url}` };
});
after(async () => {
  await reg?.stop();
  if (store) fs.rmSync(store, { recursive: true, force: true });
});

const ud = (args: string[], extra: Record<string, string> = {}) => userdock([`--repo=${store}`, ...args], { env: { ...env, ...extra }, timeoutMs: 180_000 });
const CHECK = 'cat /etc/debian_version; python3 -c "import sys; print(6*7, sys.version_info[0])"; [ -e /etc/issue.net ] && echo WHITEOUT-IGNORED || echo no-issue-net; env | grep -c ^PROOT_ || true';

function checkOut(r: { code: number | null; stdout: string; stderr: string }, what: string): void {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  // debian_version, python3, the whiteout honoured, no PRoot variables leaked (P2 drops PROOT_NO_SECCOMP via env -u)
  assert.match(r.stdout, /^12\.\d+\n42 3\nno-issue-net\n0\n$/, what);
}

/** The pristine tree of the only extracted image (inode and mtime tell a re-extraction). */
function pristine(): { dir: string; ino: number; mtimeMs: number } {
  const base = path.join(store, 'rootfs');
  const hex = fs.readdirSync(base).filter((n) => !n.startsWith('.'));
  assert.equal(hex.length, 1, `one pristine tree: ${hex.join(', ')}`);
  const dir = path.join(base, hex[0], 'rootfs');
  const st = fs.statSync(dir);
  return { dir, ino: st.ino, mtimeMs: st.mtimeMs };
}

test('run IMAGE: pulled through a mirror, then run on every engine from the one pristine tree', async () => {
  const first = await ud(['-D', 'run', '--engine=P1', 'deb2', '/bin/sh', '-c', CHECK]);
  checkOut(first, 'first run (pull + extract)');
  const before = pristine();
  for (const e of ENGINES) {
    const r = await ud(['-D', 'run', `--engine=${e}`, 'deb2', '/bin/sh', '-c', CHECK]);
    checkOut(r, `run IMAGE on ${e}`);
    assert.match(r.stderr, /present: not extracting/, `${e}: the pristine tree is reused`);
    assert.match(r.stderr, new RegExp(`engine ${e}:`));
  }
  const afterRuns = pristine();
  assert.deepEqual(afterRuns, before, 'the pristine tree was neither re-extracted nor written');
  // A direct registry name (no mirror) pulls the same manifest: same tree.
  const direct = await ud(['run', `${reg.host}/library/deb2:latest`, '/bin/sh', '-c', CHECK], { USERDOCK_MIRRORS: '' });
  checkOut(direct, 'run 127.0.0.1:PORT/library/deb2');
  assert.deepEqual(pristine(), before);
});

test('run CONTAINER on every engine; writes persist in the container; setup --execmode=U1 picks U1', async () => {
  const c = await ud(['create', '--name=deb2c', 'deb2']);
  assert.equal(c.code, 0, c.stderr);
  const id = c.stdout.trim();
  for (const e of ENGINES) {
    const r = await ud(['run', `--engine=${e}`, 'deb2c', '/bin/sh', '-c', `${CHECK}; echo ${e} >> /root/log`]);
    checkOut(r, `run CONTAINER on ${e}`);
  }
  assert.equal(fs.readFileSync(path.join(store, 'containers', id, 'ROOT', 'root', 'log'), 'utf8'), ENGINES.join('\n') + '\n');
  const s = await ud(['setup', '--execmode=U1', 'deb2c']);
  assert.equal(s.code, 0, s.stderr);
  const r = await ud(['-D', 'run', 'deb2c', '/bin/true']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /engine U1:/);
  const over = await ud(['-D', 'run', '--engine=P1', id.slice(0, 8), '/bin/true']);
  assert.match(over.stderr, /engine P1:/, '--engine beats the recorded execmode; an id prefix finds the container');
});

/** A copy of the deb2 layout (layers hard-linked) with a config setting Entrypoint, Cmd, Env, WorkingDir and User. */
async function metaLayout(): Promise<string> {
  const { layout } = await fixtureLayout('deb2');
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'metaimg-')), 'meta');
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const idx = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const src = (d: string) => path.join(layout, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(fs.readFileSync(src(idx.manifests[0].digest), 'utf8'));
  const config = JSON.parse(fs.readFileSync(src(manifest.config.digest), 'utf8'));
  config.config = {
    ...config.config,
    Env: [...(config.config.Env ?? []), 'GREETING=from the image', 'LANG=C.UTF-8'],
    Entrypoint: ['/usr/bin/env'],
    Cmd: ['/bin/sh', '-c', 'echo "$GREETING"; pwd; id -u; id -g; echo "HOME=$HOME"'],
    WorkingDir: '/srv/app',
    User: 'daemon',
  };
  const put = (data: string) => {
    const d = `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;
    fs.writeFileSync(path.join(blobs, d.slice(7)), data);
    return { digest: d, size: Buffer.byteLength(data) };
  };
  manifest.config = { ...manifest.config, ...put(JSON.stringify(config)) };
  for (const l of manifest.layers) fs.linkSync(src(l.digest), path.join(blobs, l.digest.slice(7)));
  const m = put(JSON.stringify(manifest));
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...idx.manifests[0], ...m }] }));
  fs.chmodSync(path.dirname(dir), 0o755);
  return dir;
}

test("the image's Entrypoint, Cmd, Env, WorkingDir and User are honoured on every engine", async () => {
  const dir = await metaLayout();
  try {
    const l = await ud(['load', '-i', dir]);
    assert.equal(l.code, 0, l.stderr);
    const name = l.stdout.trim().split('\n').pop()!.trim();
    for (const e of ENGINES) {
      const r = await ud(['run', `--engine=${e}`, name]);
      if (e === 'R1') {
        // rootless runc maps only uid 0: a non-root User is refused clearly, not silently run as root.
        assert.equal(r.code, 125, r.stderr);
        assert.match(r.stderr, /R1 \(runc\/crun\) cannot run as uid 1 \(daemon\)/);
        const asRoot = await ud(['run', `--engine=${e}`, '--user=0', name]);
        assert.equal(asRoot.stdout, 'from the image\n/srv/app\n0\n0\nHOME=/root\n', asRoot.stderr);
        continue;
      }
      assert.equal(r.code, 0, `${e}: ${r.stderr}`);
      assert.equal(r.stdout, 'from the image\n/srv/app\n1\n1\nHOME=/usr/sbin\n', e);
      // A command replaces Cmd, not the Entrypoint (env), and the image Env reaches it.
      const a = await ud(['run', `--engine=${e}`, '-e', 'EXTRA=1', name, 'sh', '-c', 'echo "$LANG $EXTRA $GREETING"']);
      assert.equal(a.stdout, 'C.UTF-8 1 from the image\n', `${e}: ${a.stderr}`);
    }
    const u = await ud(['run', '--engine=U1', '--user=0', '--entrypoint=', '-w', '/', name, '/bin/sh', '-c', 'id -u; pwd']);
    assert.equal(u.stdout, '0\n/\n', u.stderr);
    // PRoot cannot emulate root on the sealed image tree (its -0 writes through permissions): the caller's own uid.
    const p1 = await ud(['run', '--engine=P1', '--user=0', '--entrypoint=', '-w', '/', name, '/bin/sh', '-c', 'id -u; pwd']);
    assert.equal(p1.stdout, `${testUser().uid}\n/\n`, p1.stderr);
  } finally {
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});
