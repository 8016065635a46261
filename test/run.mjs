// Runs the whole test suite with node's built-in runner on the compiled output.
// Usage: node test/run.mjs [unit|integration|all]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const which = process.argv[2] ?? 'all';
const dirs = [];
if (which === 'unit' || which === 'all') dirs.push('dist/test/unit');
if (which === 'integration' || which === 'all') dirs.push('dist/test/integration');
const existing = dirs.filter((d) => fs.existsSync(d));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...existing], { stdio: 'inherit' });
process.exit(r.status ?? 1);
