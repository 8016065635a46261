#!/usr/bin/env node
import { VERSION } from '../version.js';

const argv = process.argv.slice(2);
if (argv.includes('--version')) {
  process.stdout.write(`cwl-run ${VERSION}\n`);
} else {
  process.stderr.write('cwl-run: not implemented yet\n');
  process.exitCode = 2;
}
