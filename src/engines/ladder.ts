import { EXIT, UserError } from '../errors.js';
import type { HostFacts } from './facts.js';
import { P1, P2 } from './proot.js';
import { U1 } from './userns.js';
import { R1 } from './oci.js';
import { F1, S1 } from './others.js';
import { ENGINE_IDS, type Engine, type EngineId } from './types.js';

/** Default order: PRoot first (works most places), then namespaces, then the fragile ones. */
export const ENGINES: Record<EngineId, Engine> = { P1, P2, U1, R1, F1, S1 };
export const DEFAULT_ORDER: EngineId[] = ['P1', 'P2', 'U1', 'R1', 'F1', 'S1'];

const ALIASES: Record<string, EngineId> = {
  proot: 'P1', p1: 'P1', p2: 'P2', u1: 'U1', bwrap: 'U1', bubblewrap: 'U1', userns: 'U1', unshare: 'U1',
  r1: 'R1', runc: 'R1', crun: 'R1', oci: 'R1', f1: 'F1', fakechroot: 'F1', f2: 'F1', f3: 'F1', f4: 'F1',
  s1: 'S1', apptainer: 'S1', singularity: 'S1',
};

/** Parse an engine name: P1, P2, U1, R1, F1, S1 (any case) or a tool name (proot, bwrap, runc, ...). */
export function parseEngineId(s: string, where = '--engine'): EngineId {
  const up = s.trim().toUpperCase();
  if ((ENGINE_IDS as string[]).includes(up)) return up as EngineId;
  const a = ALIASES[s.trim().toLowerCase()];
  if (a) return a;
  throw new UserError(`${where}: unknown engine "${s}"`, EXIT.usage, `use one of ${ENGINE_IDS.join(', ')} (see 'userdock engines')`);
}

export interface Rung {
  id: EngineId;
  engine: Engine;
  /** Usable according to facts and any recorded probe. */
  usable: boolean;
  /** Why not, when not usable. */
  why?: string;
  /** The fix, when not usable: the host-side remedy and a rung not refused on this host (never one that is). */
  fix?: string;
  /** A real probe has confirmed it (false: failed; undefined: not probed yet). */
  probed?: boolean;
}

function rungOf(facts: HostFacts, id: EngineId): Rung {
  const engine = ENGINES[id];
  const why = engine.unusable(facts);
  const probe = facts.probes[id];
  if (why) return { id, engine, usable: false, why };
  if (probe && !probe.ok) return { id, engine, usable: false, why: `probe failed: ${probe.error ?? 'unknown error'}`, probed: false };
  return { id, engine, usable: true, probed: probe ? true : undefined };
}

/**
 * The ladder over a set of facts (pure: no process is started). A refused
 * rung's fix names another rung only when that one is not refused on the
 * same host (facts and probes; an unprobed rung counts as not refused):
 * its own preference (a failed probe's diagnosis), else the ladder's order.
 */
export function ladder(facts: HostFacts, order: EngineId[] = DEFAULT_ORDER): Rung[] {
  const all = new Map(DEFAULT_ORDER.map((id) => [id, rungOf(facts, id)] as const));
  return order.map((id) => {
    const r = all.get(id) ?? rungOf(facts, id);
    if (r.usable) return r;
    const probe = facts.probes[id];
    const failed = probe && !probe.ok && !r.engine.unusable(facts);
    return { ...r, fix: fixHint(failed ? probe.fix ?? r.engine.fix : r.engine.fix, id, failed ? probe.instead : undefined, [...all.values()]) };
  });
}

/**
 * Join a host-side remedy with the first rung of `prefer` (default: the
 * ladder's order) that is not refused in `rungs`, skipping `self`. With no
 * such rung the hint says so instead of naming a refused one.
 */
export function fixHint(remedy: string | undefined, self: EngineId | undefined, prefer: EngineId[] | undefined, rungs: Rung[]): string {
  const ok = (id: EngineId) => id !== self && rungs.find((r) => r.id === id)?.usable === true;
  const alt = (prefer ?? DEFAULT_ORDER).find(ok) ?? (prefer ? DEFAULT_ORDER.find(ok) : undefined);
  if (alt && remedy) return `${remedy}, or use --engine=${alt}`;
  if (alt) return `use --engine=${alt}`;
  return `${remedy ? `${remedy}; ` : ''}no other engine works on this host: ask the admins to allow ptrace or unprivileged user namespaces`;
}

export interface ChooseOptions {
  /** --engine / setup --execmode / USERDOCK_ENGINE, in that precedence (first defined wins). */
  requested?: string;
  order?: EngineId[];
}

/**
 * Pick an engine from facts alone: the requested one if given (failing
 * clearly when the host cannot run it), else the first usable rung.
 * Rungs not yet probed count as usable here; runProfile probes before use.
 */
export function chooseEngine(facts: HostFacts, opts: ChooseOptions = {}): Engine {
  if (opts.requested) {
    const id = parseEngineId(opts.requested);
    const r = ladder(facts, [id])[0];
    if (!r.usable) {
      throw new UserError(`engine ${id} (${r.engine.name}) cannot run on this host: ${r.why}`, EXIT.internal, r.fix);
    }
    return r.engine;
  }
  const rungs = ladder(facts, opts.order);
  const first = rungs.find((r) => r.usable);
  if (first) return first.engine;
  throw noEngineError(rungs);
}

export function noEngineError(rungs: Rung[]): UserError {
  const noProot = rungs.some((r) => (r.id === 'P1' || r.id === 'P2') && r.why === 'proot not found');
  return new UserError(`no engine can run containers on this host: ${rungs.map((r) => `${r.id}: ${r.why}`).join('; ')}`, EXIT.internal,
    `${noProot ? "run 'userdock setup --install-engines' to install proot, or " : ''}ask the admins to allow ptrace or unprivileged user namespaces`);
}

/**
 * What a failed run or probe said -> its cause, the host-side fix, and the
 * rungs to try instead (in order; the caller names the first that is not
 * refused on this host, see fixHint). Field notes, section 2.
 */
export interface Diagnosis { cause: string; fix?: string; instead?: EngineId[] }

export function diagnose(stderr: string, id?: EngineId): Diagnosis | undefined {
  const s = stderr;
  if (/ptrace\(TRACEME\)|ptrace.*(Operation not permitted|Permission denied)/i.test(s)) {
    return { cause: 'ptrace is denied (a seccomp profile, kernel.yama.ptrace_scope 2/3, or nested PRoot); PROOT_NO_SECCOMP will not help', fix: 'allow ptrace (the container\'s seccomp profile, kernel.yama.ptrace_scope < 2)', instead: ['U1', 'F1'] };
  }
  if (/terminated with signal 11/.test(s) && id === 'P1') return { cause: "PRoot's seccomp acceleration crashes on this kernel (signal 11)", instead: ['P2'] };
  if (/mounted with no execution permission/.test(s)) return { cause: 'PROOT_TMP_DIR is on a noexec filesystem', fix: 'point USERDOCK_DIR or TMPDIR to an exec-able filesystem' };
  if (/can't chmod '.*proot-/.test(s)) return { cause: 'PRoot cannot use its temporary directory', fix: 'set TMPDIR to a writable, exec-able directory' };
  if (/can't sanitize binding/.test(s)) return { cause: 'a bind source does not exist on the host', fix: 'create the host path or fix the --volume' };
  if (/cannot stat shared object/.test(s)) return { cause: "this proot build breaks dynamic binaries when faking the kernel release (-k)", fix: 'use an image whose glibc supports this kernel', instead: ['U1'] };
  if (/kernel too old/i.test(s)) return { cause: "the image's glibc needs a newer kernel than this host's", fix: 'use an older image', instead: ['P1', 'P2'] };
  if (/statx|Function not implemented/.test(s)) return { cause: 'the command uses a syscall this engine or kernel does not implement (statx, faccessat2)', fix: 'use an older image', instead: ['U1'] };
  if (/Can't mount proc|mount.*proc.*(Operation not permitted|Permission denied)/i.test(s)) {
    return { cause: "a fresh /proc cannot be mounted: the container runtime masks parts of this host's /proc (docker, Kubernetes)", fix: 'run the outer container with --security-opt systempaths=unconfined (Kubernetes: procMount: Unmasked)' };
  }
  if (/user namespace|uid_map|can't init user\+mount|setting up uid map|newuidmap/i.test(s)) {
    return { cause: 'unprivileged user namespaces are unavailable (a container\'s seccomp profile such as docker\'s default, sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or AppArmor kernel.apparmor_restrict_unprivileged_userns)', fix: 'ask the admins to enable user namespaces' };
  }
  if (/cgroups in hybrid mode/.test(s)) return { cause: 'crun refuses hybrid cgroup v1/v2 hosts', fix: 'install runc' };
  if (/libfakechroot|GLIBC_\d+\.\d+'? not found|symbol not found/.test(s)) return { cause: "fakechroot does not match the image's libc (musl, or a newer glibc)", instead: ['P1', 'U1'] };
  if (/Operation not permitted/.test(s) && (id === 'U1' || id === 'R1')) return { cause: 'the kernel refused a namespace operation' };
  return undefined;
}
