import fs from 'node:fs';
import path from 'node:path';
import { EXIT, UserError } from '../errors.js';

/**
 * userdock inside a P1/P2 container (PRoot as our tracer). PRoot 5.1 does
 * not translate statx, which node's fs.stat uses: a path is then looked up
 * on the outer host, not in the container. Where the store lies at the same
 * path inside as outside that is harmless (nested runs work, F and P within
 * P alike); elsewhere every store write goes wrong in confusing ways
 * ("command not found" after a create that lost its files, ENOENT in layer
 * extraction). Detected cheaply: stat by path and fstat of an open fd
 * (translated) must name the same file.
 */
export function checkStoreUnderProot(storeDir: string): void {
  let status: string;
  try { status = fs.readFileSync('/proc/self/status', 'utf8'); } catch { return; }
  const tracer = /^TracerPid:\s*(\d+)/m.exec(status)?.[1];
  if (!tracer || tracer === '0') return;
  let comm = '';
  try { comm = fs.readFileSync(`/proc/${tracer}/comm`, 'utf8').trim(); } catch { /* not visible */ }
  if (!/proot/i.test(comm)) return;
  let dir = path.resolve(storeDir);
  let fd: number | undefined;
  for (; ; dir = path.dirname(dir)) {
    try { fd = fs.openSync(dir, 'r'); break; } catch { if (dir === '/') return; }
  }
  try {
    const byFd = fs.fstatSync(fd);
    let byPath: fs.Stats | undefined;
    try { byPath = fs.statSync(dir); } catch { /* not there outside */ }
    if (byPath && byPath.ino === byFd.ino && byPath.dev === byFd.dev) return;
  } finally { fs.closeSync(fd); }
  throw new UserError(`userdock runs inside a PRoot container (P1/P2), and its store ${storeDir} is bound there at another path than outside: PRoot does not translate statx, so node would see the outer host's files there`,
    EXIT.internal, `bind the store at the same path inside as outside (userdock run -v DIR:DIR -e USERDOCK_DIR=DIR ...), or run the outer container on U1`);
}
