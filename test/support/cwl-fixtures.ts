import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runGroup, type GroupResult } from './conformance-env.js';
import { testUser, userTempDir } from './user.js';

/**
 * What the CWL integration tests and the CWL benchmarks share: the test
 * user's offline workspace, busybox as a `docker save` tarball, the scatter
 * (+ gather) workflow, and timed runs that must succeed.
 */

/** chown -R p to the test user; returns p. */
export function giveToUser(p: string): string {
  const u = testUser();
  execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, p]);
  return p;
}

/** Write dir/name (parent dirs created) and give it to the test user; returns its path. */
export function writeAsUser(dir: string, name: string, text: string): string {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return giveToUser(p);
}

/**
 * A fresh directory of the test user's with store/, config/, tmp/ and images/,
 * and the userdock env to use it with no registry reachable (USERDOCK_MIRRORS
 * points at a closed port: any registry contact fails).
 */
export function offlineWorkspace(label: string): { work: string; env: Record<string, string> } {
  const work = userTempDir(label);
  const env = {
    USERDOCK_DIR: path.join(work, 'store'),
    USERDOCK_CONFIG_DIR: path.join(work, 'config'),
    USERDOCK_MIRRORS: 'docker.io=http://127.0.0.1:9',
    TMPDIR: path.join(work, 'tmp'),
  };
  for (const d of ['store', 'config', 'tmp', 'images']) fs.mkdirSync(path.join(work, d));
  return { work, env };
}

/** busybox from the fixture cache as a `docker save` tarball at dest, named name; returns dest. */
export function saveBusybox(cache: string, dest: string, name = 'cwltest/bb:1'): string {
  execFileSync('skopeo', ['copy', '-q', `oci:${path.join(cache, 'busybox')}:latest`, `docker-archive:${dest}:${name}`]);
  return dest;
}

/** An image to pull, or an archive to `dockerLoad` (relative to the CWL file) named id. */
export type CwlImage = string | { load: string; id: string };

/** `DockerRequirement: { … }` for image, with dockerOutputDirectory outdir when given. */
export function dockerRequirement(image: CwlImage, outdir?: string): string {
  const fields = typeof image === 'string' ? [`dockerPull: "${image}"`] : [`dockerLoad: ${image.load}`, `dockerImageId: "${image.id}"`];
  if (outdir) fields.push(`dockerOutputDirectory: ${outdir}`);
  return `DockerRequirement: { ${fields.join(', ')} }`;
}

export interface ScatterWorkflowOptions {
  /** How many items: job.json's xs are 0 … width-1. */
  width: number;
  /** The scattered tool's container (a hint, so --no-container runs the workflow too). */
  image: CwlImage;
  /** The scattered tool's dockerOutputDirectory. */
  outdir?: string;
  /** The gather step `sum` (cat of every item's output): in the same container (default), on the host, or none. */
  gather?: 'container' | 'host' | 'none';
}

/**
 * dir/wf.cwl: step `one` scatters `echo x > out.txt` over xs (output outs,
 * File[]), then step `sum` (unless gather is 'none') concatenates them into
 * output total; and dir/job.json. Both are given to the test user.
 */
export function writeScatterWorkflow(dir: string, opts: ScatterWorkflowOptions): { wf: string; job: string } {
  const gather = opts.gather ?? 'container';
  const hints = (req: string): string => `      hints:\n        ${req}\n`;
  let wf = `cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  xs: int[]
outputs:
  outs: {type: 'File[]', outputSource: one/out}
${gather === 'none' ? '' : '  total: {type: File, outputSource: sum/total}\n'}steps:
  one:
    scatter: x
    in: {x: xs}
    out: [out]
    run:
      class: CommandLineTool
${hints(dockerRequirement(opts.image, opts.outdir))}      baseCommand: echo
      inputs: {x: {type: int, inputBinding: {position: 1}}}
      stdout: out.txt
      outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
`;
  if (gather !== 'none') {
    wf += `  sum:
    in: {fs: one/out}
    out: [total]
    run:
      class: CommandLineTool
${gather === 'container' ? hints(dockerRequirement(opts.image)) : ''}      baseCommand: cat
      inputs: {fs: {type: 'File[]', inputBinding: {position: 1}}}
      stdout: all.txt
      outputs: {total: {type: File, outputBinding: {glob: all.txt}}}
`;
  }
  fs.mkdirSync(dir, { recursive: true });
  giveToUser(dir);
  return {
    wf: writeAsUser(dir, 'wf.cwl', wf),
    job: writeAsUser(dir, 'job.json', JSON.stringify({ xs: Array.from({ length: opts.width }, (_, i) => i) })),
  };
}

/** The lines of a scatter workflow's total output; throws unless they are 0 … width-1. */
export function checkGathered(label: string, output: string, width: number): string[] {
  const all = fs.readFileSync(JSON.parse(output).total.path, 'utf8').trim().split('\n');
  if (all.length !== width || all[width - 1] !== String(width - 1)) throw new Error(`${label}: gathered ${all.length} lines, expected ${width}`);
  return all;
}

/** runGroup as the test user, which must exit 0 within timeoutMs (throws with the end of stderr otherwise). */
export async function mustRun(label: string, cmd: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs: number }): Promise<GroupResult> {
  const r = await runGroup(cmd, args, opts);
  if (r.timedOut || r.code !== 0) throw new Error(`${label} ${r.timedOut ? `timed out after ${opts.timeoutMs / 1000}s` : `exited ${r.code}`}: ${r.stderr.slice(-2000)}`);
  return r;
}

/** Warm an image for timed runs: pulled into the store and, with extract, its rootfs extracted by one `run --rm`. */
export async function warmImage(env: Record<string, string>, image: string, opts: { extract?: boolean } = {}): Promise<void> {
  await mustRun('userdock pull', 'userdock', ['pull', image], { env, timeoutMs: 600_000 });
  if (opts.extract) await mustRun('userdock run', 'userdock', ['run', '--rm', image, 'true'], { env, timeoutMs: 600_000 });
}
