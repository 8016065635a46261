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
export function checkStoreUnderProot(storeDir: string, others: Array<{ dir: string; what: string; fix: string }> = []): void {
  if (!underProot()) return;
  const dirs = [{ dir: storeDir, what: 'store', fix: 'bind the store at the same path inside as outside (userdock run -v DIR:DIR -e USERDOCK_DIR=DIR ...)' }, ...others];
  for (const d of dirs) {
    if (samePathOutside(d.dir)) continue;
    throw new UserError(`userdock runs inside a PRoot container (P1/P2), and its ${d.what} ${d.dir} is bound there at another path than outside: PRoot does not translate statx, so node would see the outer host's files there`,
      EXIT.internal, `${d.fix}, or run the outer container on U1`);
  }
}

/** Our tracer is PRoot. */
function underProot(): boolean {
  let status: string;
  try { status = fs.readFileSync('/proc/self/status', 'utf8'); } catch { return false; }
  const tracer = /^TracerPid:\s*(\d+)/m.exec(status)?.[1];
  if (!tracer || tracer === '0') return false;
  try { return /proot/i.test(fs.readFileSync(`/proc/${tracer}/comm`, 'utf8')); } catch { return false; }
}

/** stat by path (statx: untranslated under PRoot 5.1) names the same file as fstat of an open fd (translated); for dir's closest existing ancestor. */
function samePathOutside(p: string): boolean {
  let dir = path.resolve(p);
  let fd: number | undefined;
  for (; ; dir = path.dirname(dir)) {
    try { fd = fs.openSync(dir, 'r'); break; } catch { if (dir === '/') return true; }
  }
  try {
    const byFd = fs.fstatSync(fd);
    let byPath: fs.Stats | undefined;
    try { byPath = fs.statSync(dir); } catch { return false; }
    return byPath.ino === byFd.ino && byPath.dev === byFd.dev;
  } finally { fs.closeSync(fd); }
}
