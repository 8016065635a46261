// Runs the test suite with node's built-in runner on the compiled output.
// Usage: node test/run.mjs [unit|integration|all]
// Test files that disturb the host for others (they take a Slurm node down,
// say) carry the line `// test:exclusive` and run alone, after the rest.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const which = process.argv[2] ?? 'all';
const dirs = [];
if (which === 'unit' || which === 'all') dirs.push('dist/test/unit');
if (which === 'integration' || which === 'all') dirs.push('dist/test/integration');

const files = dirs.filter((d) => fs.existsSync(d)).flatMap((d) =>
  fs.readdirSync(d, { recursive: true }).map(String).filter((f) => f.endsWith('.test.js')).map((f) => path.join(d, f)));
const exclusive = files.filter((f) => fs.readFileSync(f, 'utf8').includes('// test:exclusive'));
const shared = files.filter((f) => !exclusive.includes(f));

// Each group prints its own TAP summary; the last line adds them up.
let status = 0;
const total = { pass: 0, fail: 0, skipped: 0 };
for (const [group, concurrency] of [[shared, 2], [exclusive, 1]]) {
  if (!group.length) continue;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', `--test-concurrency=${concurrency}`, ...group],
    { stdio: ['inherit', 'pipe', 'inherit'], maxBuffer: 1 << 30 });
  const out = r.stdout.toString();
  process.stdout.write(out);
  for (const k of Object.keys(total)) {
    const m = [...out.matchAll(new RegExp(`^# ${k} (\\d+)$`, 'gm'))].pop();
    if (m) total[k] += Number(m[1]);
  }
  if (r.status !== 0) status = r.status ?? 1;
}
process.stdout.write(`\ntests: ${total.pass} passed, ${total.fail} failed, ${total.skipped} skipped\n`);
process.exit(status);
