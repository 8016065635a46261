import fs from 'node:fs';
import path from 'node:path';

/**
 * PRoot runs every program through its "loader", a small static ELF it
 * carries inside its own binary and writes to /tmp at start. Where /tmp is
 * noexec (a locked-down container: --read-only with a noexec /tmp) the
 * loader cannot run, and Debian's PRoot 5.1 has no PROOT_TMP_DIR to move it;
 * it does honour PROOT_LOADER. This finds the embedded 64-bit loader (the
 * first ELF image after the binary's own header) and writes it, executable,
 * into dir. undefined: no embedded loader found (a PRoot built otherwise).
 */
export function extractProotLoader(prootBin: string, dir: string): string | undefined {
  let b: Buffer;
  try { b = fs.readFileSync(prootBin); } catch { return undefined; }
  const machine = b.length > 20 ? b.readUInt16LE(18) : 0;
  for (let i = b.indexOf('\x7fELF', 1, 'latin1'); i > 0 && i + 64 <= b.length; i = b.indexOf('\x7fELF', i + 4, 'latin1')) {
    // ELFCLASS64, little-endian, an executable (ET_EXEC) for the same machine as PRoot itself.
    if (b[i + 4] !== 2 || b[i + 5] !== 1 || b.readUInt16LE(i + 16) !== 2 || b.readUInt16LE(i + 18) !== machine) continue;
    const shoff = Number(b.readBigUInt64LE(i + 0x28));
    const size = shoff + b.readUInt16LE(i + 0x3a) * b.readUInt16LE(i + 0x3c);
    if (shoff <= 0 || size > 1 << 20 || i + size > b.length) continue;
    const out = path.join(dir, 'proot-loader');
    fs.writeFileSync(out, b.subarray(i, i + size), { mode: 0o700 });
    return out;
  }
  return undefined;
}
