import fs from 'node:fs';
import path from 'node:path';
import { EXIT, UserError } from '../errors.js';
import type { ImageConfig } from '../image/store.js';
import generatedValidate from './profile-validator.gen.js';

/**
 * The isolation profile: one data structure says everything an engine needs.
 * Nothing outside it is visible inside the container: not $HOME, not /home,
 * not the store, not the host's /tmp. Validated against
 * schemas/profile.schema.json before every run.
 */
export interface BindOp { type: 'bind'; source: string; target: string; readonly: boolean }
/** A fresh, empty, writable directory (tmpfs where the engine can, else a per-run scratch dir). */
export interface TmpfsOp { type: 'tmpfs'; target: string; sizeBytes?: number }
/** Make sure a directory exists (virtually: the rootfs is never written). */
export interface DirOp { type: 'dir'; target: string }
export type MountOp = BindOp | TmpfsOp | DirOp;

export interface ProfileUser {
  /** Ids the process sees. */
  uid: number;
  gid: number;
  name?: string;
  /** Make the process believe it is root (proot -0, userns mapped to 0). */
  rootEmulation: boolean;
}

export interface Profile {
  version: 1;
  rootfs: string;
  /** false: a shared pristine image tree, never written by runs. */
  rootfsWritable: boolean;
  /** The run writes to a private copy-on-write view of rootfs, discarded after it (run --writable-tmpfs). */
  rootfsOverlay?: boolean;
  /** Ordered: later operations cover earlier ones. */
  ops: MountOp[];
  sysdirs: { proc: boolean; dev: boolean; sys: boolean };
  workdir: string;
  env: Record<string, string>;
  argv: string[];
  user: ProfileUser;
  hostname?: string;
  network: 'host' | 'none';
  resources?: { cpusetCpus?: string; shmSizeBytes?: number; gpus?: string; memoryBytes?: number };
}

interface Validator { (data: unknown): boolean; errors?: Array<{ instancePath?: string; message?: string }> | null }

/**
 * The schema validator, compiled ahead of time from schemas/profile.schema.json
 * (profile-validator.gen.ts: no ajv import, no schema compile, no schema read
 * at start-up). test/unit/profile.test.ts fails while it is stale.
 */
const validator = generatedValidate as unknown as Validator;

export function schemaPath(): string {
  // dist/src/isolation/profile.js and src/isolation/profile.ts are both 3 levels below the repo root.
  const here = path.dirname(new URL(import.meta.url).pathname);
  for (const up of ['../../../schemas', '../../schemas']) {
    const p = path.resolve(here, up, 'profile.schema.json');
    if (fs.existsSync(p)) return p;
  }
  throw new UserError('schemas/profile.schema.json is missing from the userdock installation', EXIT.internal, 'reinstall userdock');
}

/** Throws a UserError (exit 125) naming the first problems when the profile is invalid. */
export function validateProfile(p: unknown): asserts p is Profile {
  if (validator(p)) return;
  const errs = (validator.errors ?? []).slice(0, 3).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
  throw new UserError(`invalid isolation profile: ${errs}`, EXIT.internal, 'this is a userdock bug or a bad --volume/--user value; run with -D for details');
}

// ---------------------------------------------------------------- builders

export interface PasswdEntry { name: string; uid: number; gid: number; home: string; shell: string }

export function readPasswd(rootfs: string): PasswdEntry[] {
  let text = '';
  try { text = fs.readFileSync(path.join(rootfs, 'etc', 'passwd'), 'utf8'); } catch { return []; }
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5], shell: f[6] });
  }
  return out;
}

function readGroupGid(rootfs: string, name: string): number | undefined {
  try {
    for (const line of fs.readFileSync(path.join(rootfs, 'etc', 'group'), 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && /^\d+$/.test(f[2])) return Number(f[2]);
    }
  } catch { /* no group file */ }
  return undefined;
}

/**
 * Resolve a docker --user / image User value ("", "root", "name", "uid",
 * "uid:gid", "name:group") against the image's /etc/passwd.
 */
export function resolveUser(spec: string | undefined, rootfs: string): ProfileUser & { home?: string } {
  const s = (spec ?? '').trim();
  if (s === '' || s === 'root' || s === '0' || s === '0:0' || s === 'root:root') {
    return { uid: 0, gid: 0, name: 'root', rootEmulation: true, home: '/root' };
  }
  const [u, g] = s.split(':', 2);
  const pw = readPasswd(rootfs);
  let entry: PasswdEntry | undefined;
  let uid: number; let gid: number;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    entry = pw.find((e) => e.uid === uid);
    gid = entry?.gid ?? uid;
  } else {
    entry = pw.find((e) => e.name === u);
    if (!entry) {
      throw new UserError(`user "${u}" not found in the image's /etc/passwd (${rootfs})`, EXIT.internal,
        'give a numeric --user=UID:GID, or use --hostauth to take users from the host');
    }
    uid = entry.uid; gid = entry.gid;
  }
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const gg = readGroupGid(rootfs, g);
      if (gg === undefined) throw new UserError(`group "${g}" not found in the image's /etc/group`, EXIT.internal, 'give a numeric gid');
      gid = gg;
    }
  }
  return { uid, gid, name: entry?.name, rootEmulation: uid === 0, home: entry?.home };
}

/** Split KEY=VALUE at the first '='. `NAME` alone copies from the caller's env (skipped when unset). */
export function parseEnvAssignment(s: string, callerEnv: NodeJS.ProcessEnv): [string, string] | undefined {
  const eq = s.indexOf('=');
  if (eq === 0 || !s) throw new UserError(`--env "${s}": empty variable name`, EXIT.usage, 'write it as NAME=VALUE, or NAME to pass the caller\'s NAME');
  if (eq < 0) {
    const v = callerEnv[s];
    return v === undefined ? undefined : [s, v];
  }
  return [s.slice(0, eq), s.slice(eq + 1)];
}

/** Parse an --env-file: KEY=VALUE lines, # comments, blank lines; NAME alone copies from caller. */
export function parseEnvFile(text: string, callerEnv: NodeJS.ProcessEnv): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/^\s+/, '');
    if (!line || line.startsWith('#')) continue;
    const kv = parseEnvAssignment(line, callerEnv);
    if (kv) out.push(kv);
  }
  return out;
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RunSpec {
  rootfs: string;
  rootfsWritable?: boolean;
  rootfsOverlay?: boolean;
  /** Image config; ignored with nometa. */
  config?: ImageConfig['config'];
  nometa?: boolean;
  /** Command after IMAGE on the command line. */
  cmd: string[];
  /** --entrypoint (undefined: image's; '' clears it). */
  entrypoint?: string;
  /** Ordered binds from --volume/--mount. */
  binds?: BindOp[];
  /** --env assignments in order (already split). */
  env?: Array<[string, string]>;
  hostenv?: boolean;
  callerEnv?: NodeJS.ProcessEnv;
  workdir?: string;
  user?: string;
  nosysdirs?: boolean;
  hostauth?: boolean;
  bindhome?: boolean;
  /** Caller's home (for --bindhome). */
  home?: string;
  hostname?: string;
  network?: 'host' | 'none';
  cpusetCpus?: string;
  shmSizeBytes?: number;
  gpus?: string;
  /** -t: the container gets a TERM (the caller's, else xterm as docker gives) unless the image or --env sets one. */
  tty?: boolean;
}

/** Parse docker sizes: 64m, 1g, 512k, 1024 (bytes). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$/i.exec(s.trim());
  if (!m) throw new UserError(`invalid size "${s}"`, EXIT.usage, 'use a number with an optional unit b, k, m or g, e.g. 64m');
  const mult: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Math.round(Number(m[1]) * mult[m[2].toLowerCase()]);
}

/** Build the profile for `userdock run`: image metadata plus flags. */
export function buildRunProfile(spec: RunSpec): Profile {
  const meta = spec.nometa ? undefined : spec.config;
  const callerEnv = spec.callerEnv ?? process.env;
  const user = resolveUser(spec.user ?? meta?.User, spec.rootfs);

  const env: Record<string, string> = {};
  if (spec.hostenv) for (const [k, v] of Object.entries(callerEnv)) if (v !== undefined) env[k] = v;
  for (const kv of meta?.Env ?? []) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  for (const [k, v] of spec.env ?? []) env[k] = v;
  if (!env.PATH) env.PATH = DEFAULT_PATH;
  if (!env.HOME) env.HOME = spec.bindhome && spec.home ? spec.home : (user.home || '/');
  if (spec.hostname && !env.HOSTNAME) env.HOSTNAME = spec.hostname;
  if (spec.tty && !env.TERM) env.TERM = callerEnv.TERM || 'xterm';

  let entry: string[];
  let cmd: string[];
  if (spec.entrypoint !== undefined) {
    entry = spec.entrypoint === '' ? [] : [spec.entrypoint];
    cmd = spec.cmd;
  } else {
    entry = meta?.Entrypoint ?? [];
    cmd = spec.cmd.length ? spec.cmd : (meta?.Cmd ?? []);
  }
  const argv = [...entry, ...cmd];
  if (argv.length === 0) {
    throw new UserError('no command given and the image defines no Entrypoint or Cmd', EXIT.usage, 'give a command after the image name, e.g. userdock run IMAGE /bin/sh');
  }

  const ops: MountOp[] = [];
  const binds = spec.binds ?? [];
  if (!binds.some((b) => b.target === '/tmp')) ops.push({ type: 'tmpfs', target: '/tmp' });
  if (spec.hostauth) {
    for (const f of ['/etc/passwd', '/etc/group']) if (fs.existsSync(f)) ops.push({ type: 'bind', source: f, target: f, readonly: true });
  }
  if (spec.bindhome && spec.home) ops.push({ type: 'bind', source: spec.home, target: spec.home, readonly: false });
  ops.push(...binds);

  const workdir = spec.workdir || meta?.WorkingDir || '/';
  if (!path.isAbsolute(workdir)) throw new UserError(`--workdir "${workdir}" is not an absolute path`, EXIT.usage);

  const sys = !spec.nosysdirs;
  const profile: Profile = {
    version: 1,
    rootfs: spec.rootfs,
    rootfsWritable: spec.rootfsWritable ?? false,
    ops,
    sysdirs: { proc: sys, dev: sys, sys },
    workdir: path.posix.normalize(workdir),
    env,
    argv,
    user: { uid: user.uid, gid: user.gid, rootEmulation: user.rootEmulation, ...(user.name ? { name: user.name } : {}) },
    network: spec.network ?? 'host',
  };
  if (spec.hostname) profile.hostname = spec.hostname;
  if (spec.rootfsOverlay) profile.rootfsOverlay = true;
  const res: NonNullable<Profile['resources']> = {};
  if (spec.cpusetCpus) res.cpusetCpus = spec.cpusetCpus;
  if (spec.shmSizeBytes !== undefined) res.shmSizeBytes = spec.shmSizeBytes;
  if (spec.gpus) res.gpus = spec.gpus;
  if (Object.keys(res).length) profile.resources = res;
  return profile;
}

/** A profile for the CWL runner: outdir and tmpdir writable, inputs read-only. */
export function buildToolProfile(opts: {
  rootfs: string; argv: string[]; env: Record<string, string>;
  outdir: { host: string; container: string }; tmpdir: { host: string; container?: string };
  inputs: Array<{ host: string; container: string; writable?: boolean }>;
  workdir?: string; user?: ProfileUser; network?: 'host' | 'none';
}): Profile {
  const ops: MountOp[] = [
    { type: 'bind', source: opts.tmpdir.host, target: opts.tmpdir.container ?? '/tmp', readonly: false },
    { type: 'bind', source: opts.outdir.host, target: opts.outdir.container, readonly: false },
    ...opts.inputs.map((i): BindOp => ({ type: 'bind', source: i.host, target: i.container, readonly: !i.writable })),
  ];
  return {
    version: 1, rootfs: opts.rootfs, rootfsWritable: false, ops,
    sysdirs: { proc: true, dev: true, sys: true },
    workdir: opts.workdir ?? opts.outdir.container,
    env: { PATH: DEFAULT_PATH, HOME: opts.outdir.container, TMPDIR: opts.tmpdir.container ?? '/tmp', ...opts.env },
    argv: opts.argv,
    user: opts.user ?? { uid: 0, gid: 0, rootEmulation: true },
    network: opts.network ?? 'host',
  };
}
