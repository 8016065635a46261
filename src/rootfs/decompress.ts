import zlib from 'node:zlib';
import { PassThrough, Readable } from 'node:stream';
import { Decompress as ZstdDecompress } from 'fzstd';
import { UserError } from '../errors.js';

/**
 * Layer decompression by content, not by media type: registries and
 * `docker save` tarballs mislabel layers often enough that only the magic
 * bytes are trusted. gzip (zlib), zstd (fzstd, pure JS: Node 20's zlib has no
 * zstd) and plain tar are accepted; anything else fails with a UserError
 * naming the layer. The media type only improves the message.
 */
export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP = Buffer.from([0x1f, 0x8b]);
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** Inflated bytes handed over ahead of the consumer (gzip). */
const MAX_QUEUED = 4 << 20;

/** Classify the first bytes of a layer (>= 512 bytes when available). */
export function sniffCompression(head: Buffer): Compression | { unknown: string } {
  if (head.length >= 2 && head.subarray(0, 2).equals(GZIP)) return 'gzip';
  if (head.length >= 4 && head.subarray(0, 4).equals(ZSTD)) return 'zstd';
  if (head.length === 0) return 'none'; // an empty layer
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return { unknown: 'bzip2' };
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return { unknown: 'xz' };
  if (head.length >= 512) {
    const block = head.subarray(0, 512);
    if (block.every((b) => b === 0)) return 'none'; // end-of-archive: an empty tar
    if (block.subarray(257, 262).toString('latin1') === 'ustar') return 'none';
    // v7 tar: no magic, but the header checksum must add up.
    const stored = parseInt(block.subarray(148, 156).toString('latin1').replace(/\0.*$/, '').trim(), 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
    if (stored === sum) return 'none';
  }
  return { unknown: 'unrecognised data' };
}

/**
 * Decompress a layer stream. Errors (unknown format, corrupt data) are
 * emitted on the returned stream as UserErrors naming `label`.
 */
export function decompressStream(input: Readable, mediaType?: string, label = 'layer'): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const chunks: Buffer[] = [];
  let have = 0;
  let decided = false;
  const what = mediaType ? `${label} (${mediaType})` : label;

  const fail = (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    out.destroy(err instanceof UserError ? err : new UserError(`cannot decompress ${what}: ${msg}`, 1,
      'the blob is corrupt or truncated; remove the image and pull or load it again'));
    input.destroy();
  };

  const decide = (ended: boolean) => {
    decided = true;
    input.off('data', onData);
    input.off('end', onEnd);
    const head = Buffer.concat(chunks);
    const kind = sniffCompression(head);
    if (typeof kind !== 'string') {
      fail(new UserError(`${what} is neither gzip, zstd nor a plain tar (${kind.unknown})`, 1,
        'userdock reads gzip, zstd and uncompressed layers; recompress the layer with gzip or zstd'));
      return;
    }
    input.pause();
    if (kind === 'none') {
      out.write(head);
      if (ended) { out.end(); return; }
      input.on('error', fail);
      input.pipe(out);
      return;
    }
    if (kind === 'gzip') {
      const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
      gunzip.on('error', fail);
      input.on('error', fail);
      // zlib inflates on the threadpool, but a piped consumer runs inside
      // zlib's callback, before the next chunk is queued: the two would
      // alternate. Handing each chunk over in a later tick (at most
      // MAX_QUEUED bytes ahead) lets the next inflate overlap the consumer.
      const queue: Buffer[] = [];
      let queued = 0; let scheduled = false; let inflated = false;
      const handOver = () => {
        scheduled = false;
        if (out.destroyed) return;
        while (queue.length) {
          const c = queue.shift()!; queued -= c.length;
          if (!out.write(c)) { scheduled = true; out.once('drain', handOver); return; }
        }
        if (inflated) out.end(); else if (gunzip.isPaused()) gunzip.resume();
      };
      const schedule = () => { if (!scheduled) { scheduled = true; setImmediate(handOver); } };
      gunzip.on('data', (c: Buffer) => {
        queue.push(c); queued += c.length;
        if (queued >= MAX_QUEUED) gunzip.pause();
        schedule();
      });
      gunzip.on('end', () => { inflated = true; schedule(); });
      gunzip.write(head);
      if (ended) gunzip.end(); else input.pipe(gunzip);
      return;
    }
    // zstd: fzstd is synchronous; drive it with manual backpressure.
    let done = false;
    const dec = new ZstdDecompress((data: Uint8Array, final?: boolean) => {
      if (data.length) out.write(Buffer.from(data.buffer, data.byteOffset, data.length));
      if (final && !done) { done = true; out.end(); }
    });
    const push = (b: Buffer, final: boolean) => {
      try { dec.push(b, final); } catch (e) { fail(e); return false; }
      return true;
    };
    if (!push(head, ended)) return;
    if (ended) { if (!done) { done = true; out.end(); } return; }
    input.on('error', fail);
    input.on('data', (b: Buffer) => {
      if (!push(b, false)) return;
      if (out.writableNeedDrain) { input.pause(); out.once('drain', () => input.resume()); }
    });
    input.on('end', () => {
      if (!push(new Uint8Array(0) as Buffer, true)) return;
      if (!done) { done = true; out.end(); }
    });
    input.resume();
  };

  const onData = (b: Buffer) => {
    chunks.push(b); have += b.length;
    if (have >= 512 && !decided) decide(false);
  };
  const onEnd = () => { if (!decided) decide(true); };
  input.on('data', onData);
  input.on('end', onEnd);
  input.once('error', (e) => { if (!decided) fail(e); });
  out.on('close', () => { if (!input.destroyed && !input.readableEnded) input.destroy(); });
  return out;
}
