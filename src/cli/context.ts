import { defaultStoreDir, defaultConfigDir } from '../paths.js';

/** What every command gets from the global options. */
export interface Context {
  storeDir: string;
  configDir: string;
  /** --quiet: no progress, no banners. */
  quiet: boolean;
  /** -D / --debug: extra diagnostics on stderr. */
  debug: boolean;
  /** Name the CLI was invoked as (a name containing "udocker" implies quiet/nobanner). */
  argv0: string;
  env: NodeJS.ProcessEnv;
}

export function makeContext(over: Partial<Context> = {}): Context {
  const env = over.env ?? process.env;
  return {
    storeDir: over.storeDir ?? defaultStoreDir(env),
    configDir: over.configDir ?? defaultConfigDir(env),
    quiet: over.quiet ?? false,
    debug: over.debug ?? false,
    argv0: over.argv0 ?? 'userdock',
    env,
  };
}

/** Diagnostics go to stderr, never stdout. */
export function log(ctx: Context, msg: string): void {
  if (!ctx.quiet) process.stderr.write(msg + '\n');
}
export function debug(ctx: Context, msg: string): void {
  if (ctx.debug) process.stderr.write(`debug: ${msg}\n`);
}
