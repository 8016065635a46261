import type { Profile } from '../isolation/profile.js';
import type { HostFacts } from './facts.js';

export type EngineId = 'P1' | 'P2' | 'U1' | 'R1' | 'F1' | 'S1';
export const ENGINE_IDS: EngineId[] = ['P1', 'P2', 'U1', 'R1', 'F1', 'S1'];

/** What an engine enforces, stated honestly. */
export interface Enforces {
  /** Writes to read-only binds fail. */
  readonlyBinds: boolean;
  /** The pristine rootfs cannot be written even if its files are the user's. */
  readonlyRootfs: boolean;
  /** uid 0 inside (fake or mapped). */
  rootEmulation: boolean;
  /** --network=none honoured. */
  networkIsolation: boolean;
  /** Own pid namespace: the command cannot see or signal host processes. */
  pidIsolation: boolean;
  /** --hostname honoured. */
  hostname: boolean;
  /** Static binaries work. */
  staticBinaries: boolean;
}

/** Everything an engine needs to turn a profile into a command line. */
export interface EngineContext {
  facts: HostFacts;
  /** Per-run scratch dir (writable, exec-able), removed after the run. */
  scratch: string;
  /** Absolute paths of engine binaries (found on PATH or installed into the store). */
  bins: Record<string, string | undefined>;
  /** Extra env for engine binaries installed into the store (LD_LIBRARY_PATH). */
  binEnv: Record<string, string>;
  /** Kernel release to fake with proot -k, when the image's glibc needs a newer kernel. */
  fakeKernel?: string;
  /**
   * Keep the engine's own notes on stderr (PRoot's "proot info:"/"proot warning:" lines): for
   * probes, whose errors are read from them (ladder.ts diagnose), and for -D. Otherwise the
   * container's stderr carries only the container's output (PRoot's errors still show).
   */
  engineNotes?: boolean;
  /** A fix naming `remedy` and the first of `prefer` not refused on this host (see fixHint). */
  fix?: (self: EngineId, remedy: string | undefined, prefer?: EngineId[]) => string;
}

export interface Invocation {
  cmd: string;
  args: string[];
  /** The complete environment of the engine process (no inheritance). */
  env: Record<string, string>;
  /** Working directory on the host for the engine process. */
  cwd?: string;
  /** A log file the engine writes its own diagnostics to; shown when the run fails. */
  logFile?: string;
  /** Warnings about profile parts this engine cannot honour. */
  warnings: string[];
  /**
   * A signal that makes the engine process end every process of the container, also those
   * that left its process group (setsid): PRoot kills all its tracees on SIGQUIT.
   */
  killAll?: NodeJS.Signals;
}

export interface Engine {
  id: EngineId;
  name: string;
  summary: string;
  /** Relative cost, stated for `userdock engines`. */
  cost: string;
  enforces: Enforces;
  /** Limits a user should know before choosing it. */
  limits: string[];
  /** Binaries it needs (first found wins). */
  binaries: string[];
  /** Why this engine cannot work on a host with these facts (undefined: it may, a probe confirms). */
  unusable(f: HostFacts): string | undefined;
  /** The host-side fix when unusable; the ladder adds a rung that works here (fixHint). */
  fix?: string;
  build(p: Profile, ec: EngineContext): Invocation;
}
