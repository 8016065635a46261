import os from 'node:os';
import path from 'node:path';

/**
 * Where userdock keeps its data. Precedence: --repo=DIR, then USERDOCK_DIR,
 * then UDOCKER_DIR (udocker's name, for sites that already set it), then the
 * XDG data dir.
 */
export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.USERDOCK_DIR) return path.resolve(env.USERDOCK_DIR);
  if (env.UDOCKER_DIR) return path.resolve(env.UDOCKER_DIR);
  const xdg = env.XDG_DATA_HOME || path.join(env.HOME || os.homedir(), '.local', 'share');
  return path.join(xdg, 'userdock');
}

/** Config dir: mirrors and credentials. USERDOCK_CONFIG_DIR, else XDG config. */
export function defaultConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.USERDOCK_CONFIG_DIR) return path.resolve(env.USERDOCK_CONFIG_DIR);
  const xdg = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return path.join(xdg, 'userdock');
}
