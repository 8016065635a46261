import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { OP, OP_SIZE, type Batch, type Ack } from './creator.js';

/**
 * Worker thread of creator.ts: performs the batched creations in order with
 * plain synchronous calls (inode creation, copying the data into the page
 * cache, futimes and close all stay off the main thread). A failed creation
 * is reported once; later operations on the same id are ignored.
 */
const O_CREAT_EXCL = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
const umask = process.umask();
const fds = new Map<number, number>();
const failed = new Set<number>();

/**
 * Run make(); when something not made by this writer is in the way (EEXIST),
 * keep a directory for mkdir (made u+rwx) or remove a non-directory and retry once.
 */
function replacing(p: string, make: () => void, ack: Ack, mkdirMode?: number): void {
  try { make(); return; } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const st = fs.lstatSync(p);
    if (st.isDirectory()) {
      if (mkdirMode === undefined) throw e;
      fs.chmodSync(p, mkdirMode);
      return;
    }
    fs.unlinkSync(p);
    if (st.isSymbolicLink()) ack.unlinkedSymlink = true;
    make();
  }
}

parentPort!.on('message', (b: Batch) => {
  const ack: Ack = { seq: b.seq, errors: [], buf: b.buf };
  const names = b.names.split('\0');
  let ni = 0;
  const ops = b.ops;
  for (let i = 0; i < b.n; i += OP_SIZE) {
    const kind = ops[i]; const id = ops[i + 1]; const a = ops[i + 2]; const len = ops[i + 3];
    const p = kind === OP.open || kind === OP.symlink || kind === OP.mkdir ? names[ni++] : '';
    const target = kind === OP.symlink ? names[ni++] : '';
    if (failed.has(id)) {
      if (kind === OP.close) failed.delete(id);
      continue;
    }
    try {
      switch (kind) {
        case OP.open:
          replacing(p, () => { fds.set(id, fs.openSync(p, O_CREAT_EXCL, a)); }, ack);
          if ((a & ~umask) !== a) fs.fchmodSync(fds.get(id)!, a);
          break;
        case OP.data:
          for (let done = 0; done < len;) {
            const n = fs.writeSync(fds.get(id)!, new Uint8Array(b.buf!, a + done, len - done));
            if (n <= 0) throw new Error('write returned 0 bytes');
            done += n;
          }
          break;
        case OP.close: {
          const fd = fds.get(id)!;
          fds.delete(id);
          try { if (!Number.isNaN(a)) fs.futimesSync(fd, a, a); } finally { fs.closeSync(fd); }
          break;
        }
        case OP.symlink:
          replacing(p, () => fs.symlinkSync(target, p), ack);
          break;
        case OP.mkdir:
          replacing(p, () => fs.mkdirSync(p, a), ack, a);
          if ((a & ~umask) !== a) fs.chmodSync(p, a);
          break;
      }
    } catch (e) {
      const fd = fds.get(id);
      if (fd !== undefined) { fds.delete(id); try { fs.closeSync(fd); } catch { /* already reported */ } }
      if (kind === OP.open || kind === OP.data) failed.add(id); // ignore the rest of this file
      ack.errors.push([id, (e as Error).message]);
    }
  }
  parentPort!.postMessage(ack, b.buf ? [b.buf] : []);
});
