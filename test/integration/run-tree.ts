import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Test rootfs trees for the run/engines integration tests (made as root, so the test user cannot write them). */
export function busyboxTree(): string {
  const r = fs.mkdtempSync(path.join(os.tmpdir(), 'bbroot-'));
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'dev', 'sys', 'var', 'usr/bin', 'lib', 'lib64']) fs.mkdirSync(path.join(r, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(r, 'bin/busybox'));
  fs.chmodSync(path.join(r, 'bin/busybox'), 0o755);
  execFileSync('/usr/sbin/chroot', [r, '/bin/busybox', '--install', '-s', '/bin']);
  fs.writeFileSync(path.join(r, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nbio:x:1234:1234:bio:/home/bio:/bin/sh\n');
  fs.writeFileSync(path.join(r, 'etc/group'), 'root:x:0:\nbio:x:1234:\n');
  fs.symlinkSync('/tmp', path.join(r, 'var/spool'));
  fs.writeFileSync(path.join(r, 'usr/bin/notexec'), 'x', { mode: 0o644 });
  fs.chmodSync(r, 0o755);
  return r;
}

export function dynTree(): string {
  const r = fs.mkdtempSync(path.join(os.tmpdir(), 'dynroot-'));
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'dev', 'sys']) fs.mkdirSync(path.join(r, d), { recursive: true });
  for (const b of ['/bin/ls', '/bin/cat', '/bin/sh']) {
    fs.copyFileSync(fs.realpathSync(b), path.join(r, b));
    fs.chmodSync(path.join(r, b), 0o755);
    const ldd = spawnSync('ldd', [b], { encoding: 'utf8' }).stdout;
    for (const m of ldd.matchAll(/(\/\S+)/g)) {
      const dest = path.join(r, m[1]);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      if (!fs.existsSync(dest)) fs.copyFileSync(m[1], dest);
    }
  }
  fs.writeFileSync(path.join(r, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  execFileSync('chmod', ['-R', 'a+rX', r]);
  return r;
}

