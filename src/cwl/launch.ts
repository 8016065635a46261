import { runContainer, type Bind, type ContainerSpec } from './docker.js';
import { runLocal, type ExecOptions } from './tool.js';

/**
 * The one seam between a CommandLineTool job and where its process runs.
 * tool.ts prepares everything (staging, command line, environment, I/O
 * paths) and hands a LaunchSpec to a Launcher; the local launcher runs it
 * here (spawn, or runProfile for containers), the Slurm launcher
 * (src/cwl/slurm/launcher.ts) batches specs into array jobs and runs them on
 * a node with the same code (src/cwl/slurm/node.ts). A LaunchSpec is plain
 * JSON so it can be written to the shared work directory.
 */
export interface LaunchSpec {
  /** For logs: the tool's short name. */
  label: string;
  /** The command line (inside the container for container jobs; the image entrypoint is prepended there). */
  argv: string[];
  /** Container jobs: the image (rootfs resolved where the job runs) and binds. */
  container?: { spec: ContainerSpec; binds: Bind[]; network: boolean };
  env: Record<string, string>;
  /** Host working directory (processes) or container working directory (containers). */
  cwd: string;
  /** Host paths. */
  stdin?: string;
  stdout?: string;
  stderr?: string;
  /** ResourceRequirement (cores, MiB). */
  cores: number;
  ramMB: number;
  outdirMB: number;
  tmpdirMB: number;
  /** ToolTimeLimit in seconds; 0 = none. */
  timeLimitSec: number;
}

export interface LaunchResult {
  /** Process exit code; -1 when the time limit killed it. */
  exitCode: number;
  /** A reason to report (time limit, out of memory, cancelled, node failure...). */
  message?: string;
  /** Where it ran (host name, Slurm job id). */
  where?: string;
}

export interface Launcher {
  /** True when jobs run elsewhere: the submit side then skips node-side work (rootfs extraction). */
  readonly remote: boolean;
  launch(spec: LaunchSpec, opts: ExecOptions): Promise<LaunchResult>;
  /** Stop everything submitted and not finished (SIGINT/SIGTERM on the driver). */
  cancelAll?(): Promise<void>;
  close?(): void;
}

/** Runs a spec on this machine (also used by the Slurm node runner). */
export async function launchHere(spec: LaunchSpec, opts: ExecOptions): Promise<LaunchResult> {
  if (spec.container) {
    const exitCode = await runContainer(spec.container.spec, opts, {
      argv: spec.argv, env: spec.env, cwd: spec.cwd, binds: spec.container.binds, stdin: spec.stdin, stdout: spec.stdout, stderr: spec.stderr,
      timeoutSec: spec.timeLimitSec, network: spec.container.network,
    });
    return { exitCode };
  }
  return { exitCode: await runLocal(spec.argv, spec.env, spec.cwd, spec.stdin, spec.stdout, spec.stderr, spec.timeLimitSec, opts) };
}

export const localLauncher: Launcher = { remote: false, launch: launchHere };
