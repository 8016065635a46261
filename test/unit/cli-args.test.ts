import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, type OptSpec } from '../../src/cli/args.js';
import { UserError } from '../../src/errors.js';

const SPEC: Record<string, OptSpec> = {
  interactive: { kind: 'bool', aliases: ['-i'] },
  tty: { kind: 'bool', aliases: ['-t'] },
  env: { kind: 'list', aliases: ['-e'] },
  volume: { kind: 'list', aliases: ['-v'] },
};

test('combined short flags are docker\'s: -it is -i -t; the last may take a value', () => {
  assert.deepEqual(parseArgs(['-it', 'img', 'sh'], SPEC, 'run', true), { opts: { interactive: true, tty: true }, positional: ['img', 'sh'] });
  assert.deepEqual(parseArgs(['-ti', 'img'], SPEC, 'run', true).opts, { interactive: true, tty: true });
  assert.deepEqual(parseArgs(['-ite', 'A=1', 'img'], SPEC, 'run', true).opts, { interactive: true, tty: true, env: ['A=1'] });
  assert.deepEqual(parseArgs(['-itA=1', 'img'], { ...SPEC, a: { kind: 'string', aliases: ['-A'] } as OptSpec }, 'run', true).opts, { interactive: true, tty: true, a: '1' });
  assert.deepEqual(parseArgs(['-eA=1', 'img'], SPEC, 'run', true).opts, { env: ['A=1'] });
  // after IMAGE, flags belong to the container command
  assert.deepEqual(parseArgs(['img', '-it'], SPEC, 'run', true).positional, ['img', '-it']);
  assert.throws(() => parseArgs(['-itx', 'img'], SPEC, 'run', true), (e: unknown) => e instanceof UserError && e.exitCode === 2 && /unknown option -x/.test(e.message));
});
