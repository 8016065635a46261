#!/usr/bin/env node
import path from 'node:path';
import { describeError, diskFull, EXIT, UserError } from '../errors.js';
import { makeContext } from './context.js';
import { checkStoreUnderProot } from '../engines/nested.js';
import type { Command } from './command.js';
import { VERSION } from '../version.js';

/**
 * userdock [global options] COMMAND [options] [args]
 * Only argument parsing lives here; each command module maps onto src/.
 */
type Loader = () => Promise<Record<string, Command>>;

/** Which module holds which commands. Loaded lazily so `run` starts fast. */
const MODULES: Array<[string[], Loader]> = [
  [['pull', 'images', 'inspect', 'rmi', 'login', 'logout', 'search', 'verify', 'tag'],
    async () => (await import('./image-commands.js')).commands],
  [['create', 'ps', 'rm', 'name', 'rmname', 'rename', 'clone', 'protect', 'unprotect', 'load', 'import', 'save', 'export'],
    async () => (await import('./container-commands.js')).commands],
  [['run', 'engines', 'setup'],
    async () => (await import('./run-commands.js')).commands],
];

const SUMMARY = `userdock ${VERSION}: run Docker/OCI images without root and without a daemon

Usage: userdock [--repo=DIR] [--quiet|-q] [--debug|-D] COMMAND [options] [args]

Images:      pull, images, inspect, rmi, verify, tag, search, login, logout
Containers:  create, ps, rm, name, rmname, rename, clone, protect, unprotect
Archives:    load, import, save, export
Running:     run, engines, setup

Global options:
  --repo=DIR     store directory (default: $USERDOCK_DIR, else $XDG_DATA_HOME/userdock)
  --quiet, -q    no progress output
  --debug, -D    diagnostics on stderr
  --help, -h     this help; 'userdock COMMAND --help' for one command
  --version      print the version

Exit codes: 0 ok; 1 error; 2 usage; run: the command's code, 125 userdock failed,
126 command not executable, 127 command not found.`;

async function findCommand(name: string): Promise<Command | undefined> {
  for (const [names, load] of MODULES) {
    if (names.includes(name)) return (await load())[name];
  }
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  const argv0 = path.basename(process.argv[1] ?? 'userdock');
  let repo: string | undefined;
  let quiet = /udocker/.test(argv0);
  let debug = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--repo=')) repo = a.slice(7);
    else if (a === '--repo') repo = argv[++i];
    else if (a === '--quiet' || a === '-q') quiet = true;
    else if (a === '--debug' || a === '-D') debug = true;
    else if (a === '--help' || a === '-h') { process.stdout.write(SUMMARY + '\n'); return 0; }
    else if (a === '--version' || a === '-V') { process.stdout.write(`userdock ${VERSION}\n`); return 0; }
    else if (a === '--allow-root' || a === '--insecure' || a === '--nobanner') { /* udocker globals: accepted */ }
    else if (a.startsWith('-')) { process.stderr.write(`userdock: unknown global option ${a}\n`); return EXIT.usage; }
    else break;
  }
  const name = argv[i];
  if (!name) { process.stderr.write(SUMMARY + '\n'); return EXIT.usage; }
  if (name === 'help') { process.stdout.write(SUMMARY + '\n'); return 0; }
  if (name === 'version') { process.stdout.write(`userdock ${VERSION}\n`); return 0; }
  const cmd = await findCommand(name);
  if (!cmd) { process.stderr.write(`userdock: unknown command "${name}" (see 'userdock --help')\n`); return EXIT.usage; }
  const rest = argv.slice(i + 1);
  if (rest[0] === '--help' || rest[0] === '-h') { process.stdout.write(`${cmd.usage}\n\n${cmd.summary}\n`); return 0; }
  const ctx = makeContext({ storeDir: repo ? path.resolve(repo) : undefined, quiet, debug, argv0 });
  try {
    checkStoreUnderProot(ctx.storeDir);
    return await cmd.run(ctx, rest);
  } catch (thrown) {
    const full = diskFull(thrown, ctx.storeDir);
    const err = full ?? thrown;
    process.stderr.write(`userdock ${name}: ${describeError(err)}\n`);
    if (debug && err instanceof Error && !(err instanceof UserError)) process.stderr.write(`${err.stack}\n`);
    // run: userdock's own failures are 125 (docker's code), whatever module raised them (a pull's 1 included);
    // usage errors stay 2, a command not found or not executable 127/126.
    const code = err instanceof UserError ? err.exitCode : EXIT.fail;
    return name === 'run' && code === EXIT.fail ? EXIT.internal : code;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`userdock: ${describeError(err)}\n`);
  process.exitCode = EXIT.internal;
});
