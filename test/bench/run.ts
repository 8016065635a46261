/**
 * `npm run bench`: every benchmark measures userdock and its anchor in the
 * same run and prints both times and the ratio. Prints a markdown table (the
 * one in README.md) and writes it to bench-results.md.
 * Usage: npm run bench [-- NAME …]  (names: the keys of BENCHES below)
 */
import fs from 'node:fs';

export interface BenchRow { name: string; ours_s: number; anchor_s: number; ratio: number; anchor?: string; goal?: string; note?: string }

type Bench = () => Promise<BenchRow[]>;

const BENCHES: Record<string, () => Promise<Bench>> = {
  pull: async () => (await import('./pull.bench.js')).benchPull as Bench,
  create: async () => (await import('./create.bench.js')).benchCreate as Bench,
  run: async () => (await import('./run.bench.js')).benchRun as Bench,
  'cwltool-scatter': async () => (await import('./scatter.bench.js')).benchScatter as Bench,
  'cwl-scatter': async () => (await import('./cwl-scatter.bench.js')).benchCwlScatter as Bench,
  'cwl-suite': async () => (await import('./cwl-suite.bench.js')).benchCwlSuite as Bench,
  slurm: async () => (await import('./slurm.bench.js')).benchSlurm as Bench,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length ? wanted : Object.keys(BENCHES);
  const rows: BenchRow[] = [];
  for (const name of names) {
    const load = BENCHES[name];
    if (!load) { process.stderr.write(`bench: unknown benchmark ${name}\n`); process.exitCode = 2; return; }
    process.stderr.write(`bench: ${name}…\n`);
    try {
      rows.push(...await (await load())());
    } catch (e) {
      process.stderr.write(`bench: ${name} failed: ${(e as Error).message}\n`);
      process.exitCode = 1;
    }
  }
  const fmt = (n: number) => (n < 0.1 ? n.toFixed(4) : n.toFixed(3));
  const lines = [
    '| benchmark | userdock (s) | anchor | anchor (s) | ratio | goal | note |',
    '|---|---:|---|---:|---:|---|---|',
    ...rows.map((r) => `| ${r.name} | ${fmt(r.ours_s)} | ${r.anchor ?? ''} | ${fmt(r.anchor_s)} | ${r.ratio.toFixed(2)}× | ${r.goal ?? ''} | ${r.note ?? ''} |`),
  ];
  const table = lines.join('\n');
  process.stdout.write(table + '\n');
  fs.writeFileSync('bench-results.md', `Measured ${new Date().toISOString()} on ${(await import('node:os')).cpus().length} cores\n\n${table}\n`);
}

await main();
