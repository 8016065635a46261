import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomHex } from '../lazy.js';

/**
 * The PRoot guard: a 300-byte static x86_64 program that userdock starts
 * PRoot through (`guard proot ARGS…`). Before it execs PRoot it
 *  - sets PR_SET_PDEATHSIG=SIGQUIT: when userdock itself dies (kill -9),
 *    PRoot gets SIGQUIT, on which it kills every tracee (also those that
 *    left the process group with setsid) and exits; PRoot 5.1 sets no
 *    PTRACE_O_EXITKILL, so a plain SIGKILL of PRoot would leave them running;
 *  - installs a seccomp filter (after PR_SET_NO_NEW_PRIVS) that makes the
 *    path syscalls Debian's PRoot 5.1 does not translate fail with ENOSYS:
 *    statx (332), openat2 (437), faccessat2 (439) and fchmodat2 (452). Left
 *    untranslated they act on the HOST path: `stat /etc/passwd` in the
 *    container reported the host's file, `stat /etc/shadow` or a host home
 *    directory showed that they exist. With ENOSYS, glibc, coreutils (gnulib)
 *    and libuv fall back to newfstatat/faccessat/fchmodat, which PRoot
 *    translates. The filter is inherited by PRoot and everything it runs;
 *    PRoot itself uses none of these calls.
 * No compiler is needed on the host: the bytes are below (the assembly is in
 * the comments). On other architectures no guard is used (README: limits).
 */
const FILTERED = [332, 437, 439, 452];

/**
 * A static ELF64 executable of one read+exec segment loaded at 0x400000:
 * the 120 bytes of ELF and program header, then body, entered at its start.
 * machine: 0x3e x86_64, 0xb7 aarch64.
 */
export function staticElf(body: Buffer, machine: number): Buffer {
  const base = 0x400000n;
  const h = Buffer.alloc(64 + 56);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(h, 0);
  h.writeUInt16LE(2, 16); h.writeUInt16LE(machine, 18); h.writeUInt32LE(1, 20);
  h.writeBigUInt64LE(base + 120n, 24); h.writeBigUInt64LE(64n, 32); h.writeBigUInt64LE(0n, 40);
  h.writeUInt32LE(0, 48); h.writeUInt16LE(64, 52); h.writeUInt16LE(56, 54); h.writeUInt16LE(1, 56);
  const ph = 64;
  const total = BigInt(h.length + body.length);
  h.writeUInt32LE(1, ph); h.writeUInt32LE(5, ph + 4); h.writeBigUInt64LE(0n, ph + 8);
  h.writeBigUInt64LE(base, ph + 16); h.writeBigUInt64LE(base, ph + 24);
  h.writeBigUInt64LE(total, ph + 32); h.writeBigUInt64LE(total, ph + 40); h.writeBigUInt64LE(0x1000n, ph + 48);
  return Buffer.concat([h, body]);
}

export function guardElf(): Buffer {
  const base = 0x400000;
  const hdrLen = 64 + 56;
  const code: number[] = [
    0xbf, 1, 0, 0, 0, //            mov edi, PR_SET_PDEATHSIG
    0xbe, 3, 0, 0, 0, //            mov esi, SIGQUIT
    0xb8, 157, 0, 0, 0, //          mov eax, SYS_prctl
    0x0f, 0x05, //                  syscall
    0xbf, 38, 0, 0, 0, //           mov edi, PR_SET_NO_NEW_PRIVS
    0xbe, 1, 0, 0, 0, //            mov esi, 1
    0x31, 0xd2, //                  xor edx, edx
    0x45, 0x31, 0xd2, //            xor r10d, r10d
    0x45, 0x31, 0xc0, //            xor r8d, r8d
    0xb8, 157, 0, 0, 0, //          mov eax, SYS_prctl
    0x0f, 0x05, //                  syscall
    0xbf, 1, 0, 0, 0, //            mov edi, SECCOMP_SET_MODE_FILTER
    0x31, 0xf6, //                  xor esi, esi
    0xba, 0, 0, 0, 0, //            mov edx, &fprog            (patched below)
    0xb8, 0x3d, 0x01, 0, 0, //      mov eax, SYS_seccomp (317)
    0x0f, 0x05, //                  syscall                    (result ignored: a kernel without filters has no statx either)
    0x48, 0x8b, 0x0c, 0x24, //      mov rcx, [rsp]             argc
    0x48, 0x8d, 0x74, 0x24, 0x10, // lea rsi, [rsp+16]         &argv[1]
    0x48, 0x8b, 0x3e, //            mov rdi, [rsi]             argv[1]
    0x48, 0x8d, 0x54, 0xcc, 0x10, // lea rdx, [rsp+rcx*8+16]   envp
    0xb8, 59, 0, 0, 0, //           mov eax, SYS_execve
    0x0f, 0x05, //                  syscall
    0xbf, 127, 0, 0, 0, //          mov edi, 127               exec failed
    0xb8, 60, 0, 0, 0, //           mov eax, SYS_exit
    0x0f, 0x05, //                  syscall
  ];
  const codeBuf = Buffer.from(code);
  const filterOff = hdrLen + Math.ceil(codeBuf.length / 8) * 8;
  // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }; a jump goes to the next instruction + offset.
  const n = FILTERED.length;
  const ins: Array<[number, number, number, number]> = [
    [0x20, 0, 0, 4], //                          ld [arch]
    [0x15, 0, n + 1, 0xc000003e], //              jne AUDIT_ARCH_X86_64 -> allow
    [0x20, 0, 0, 0], //                          ld [nr]
    ...FILTERED.map((nr, i): [number, number, number, number] => [0x15, n - i, 0, nr]), // jeq nr -> errno
    [0x06, 0, 0, 0x7fff0000], //                 ret ALLOW
    [0x06, 0, 0, 0x00050000 | 38], //            ret ERRNO(ENOSYS)
  ];
  const filt = Buffer.alloc(ins.length * 8);
  ins.forEach(([c, jt, jf, k], i) => { filt.writeUInt16LE(c, i * 8); filt[i * 8 + 2] = jt; filt[i * 8 + 3] = jf; filt.writeUInt32LE(k >>> 0, i * 8 + 4); });
  const fprogOff = filterOff + filt.length;
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(ins.length, 0);
  fprog.writeBigUInt64LE(BigInt(base + filterOff), 8);
  codeBuf.writeUInt32LE(base + fprogOff, code.indexOf(0xba) + 1);
  const body = Buffer.concat([codeBuf, Buffer.alloc(filterOff - hdrLen - codeBuf.length), filt, fprog]);
  return staticElf(body, 0x3e);
}

/** The guard's path in dir (written once, atomically); undefined where there is none for this architecture. */
export function guardPath(dir: string, arch = os.arch()): string | undefined {
  if (arch !== 'x64') return undefined;
  const elf = guardElf();
  let h = 0x811c9dc5; // FNV-1a of the bytes: a changed guard gets a new name
  for (const b of elf) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  const file = path.join(dir, `proot-guard-${h.toString(16).padStart(8, '0')}`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.${randomHex(3)}`;
  fs.writeFileSync(tmp, elf, { mode: 0o755 });
  fs.renameSync(tmp, file);
  return file;
}
