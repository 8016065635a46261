import path from 'node:path';
import type { LaunchResult, LaunchSpec } from '../launch.js';

/** A batch of tool jobs on the shared work directory: one `sbatch --array`, written by the launcher, read by node.ts. */
export interface BatchItem { id: string; spec: LaunchSpec }
export interface BatchFile {
  version: 1;
  tasks: number;
  perTask: number;
  items: BatchItem[];
  storeDir: string;
  configDir: string;
  engine?: string;
  debug: boolean;
  /** --slurm-node-tmp: where the node puts each job's tmpdir (default: the job's $TMPDIR, else /tmp). */
  nodeTmp?: string;
}

export interface ItemResult extends LaunchResult { seconds: number; rootfs?: 'reused' | 'waited' }

/** Where a job's result is written (atomically: tmp + rename). */
export function resultPath(batchDir: string, id: string): string { return path.join(batchDir, `item-${id}.json`); }
