import type { Context } from './context.js';

/** A CLI command: parses its own argv (with src/cli/args.ts) and calls into src/. */
export interface Command {
  summary: string;
  /** Usage lines for --help. */
  usage: string;
  run(ctx: Context, argv: string[]): Promise<number>;
}
