import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Command } from './command.js';
import type { Context } from './context.js';
import { log } from './context.js';
import { parseArgs, str, bool, type OptSpec } from './args.js';
import { UsageError, UserError } from '../errors.js';
import { openStore, type Image } from '../image/store.js';
import { findImage, pullImage } from '../image/index.js';
import {
  createContainer, listContainers, getContainer, removeContainer, nameContainer, removeName,
  renameContainer, cloneContainer, updateContainer, treeSize, containerFromTar, containerFromClone,
} from '../rootfs/index.js';
import { loadArchive, importTarball, saveImages, exportContainer } from '../rootfs/archive.js';

function need(pos: string[], n: number, where: string, usage: string): void {
  if (pos.length < n) throw new UsageError(`${where}: missing argument`, `usage: ${usage}`);
}

function resolveImage(ctx: Context, name: string): Image {
  const img = findImage(openStore(ctx.storeDir), name);
  if (!img) throw new UserError(`image "${name}" is not in the store ${ctx.storeDir}`, 1, `pull it first: 'userdock pull ${name}'`);
  return img;
}

function inputStream(file: string | undefined, where: string): { stream: Readable; label: string } {
  if (!file || file === '-') {
    if (process.stdin.isTTY) throw new UsageError(`${where}: no input`, 'give -i FILE, or pipe the archive to stdin');
    return { stream: process.stdin, label: 'stdin' };
  }
  if (!fs.existsSync(file)) throw new UserError(`${where}: ${file} does not exist`, 1, 'check the path');
  return { stream: fs.createReadStream(file, { highWaterMark: 1 << 20 }), label: file };
}

function outputTarget(file: string | undefined, where: string): string | NodeJS.WritableStream {
  if (!file || file === '-') {
    if (process.stdout.isTTY) throw new UsageError(`${where}: refusing to write a tarball to a terminal`, 'give -o FILE or redirect stdout');
    return process.stdout;
  }
  return file;
}

function cmd(summary: string, usage: string, spec: Record<string, OptSpec>, fn: (ctx: Context, p: ReturnType<typeof parseArgs>, where: string) => Promise<number>, name: string): Command {
  return { summary, usage, run: (ctx, argv) => fn(ctx, parseArgs(argv, spec, `userdock ${name}`), name) };
}

export const commands: Record<string, Command> = {
  create: cmd('Make a container (a writable copy of the image\'s root tree; the image is pulled when missing) and print its id.',
    'userdock create [--name=NAME] IMAGE', { name: { kind: 'string' }, force: { kind: 'bool', aliases: ['-f'] } },
    async (ctx, p) => {
      need(p.positional, 1, 'create', 'userdock create [--name=NAME] IMAGE');
      // like `docker create`: an image missing from the store is pulled first
      const image = findImage(openStore(ctx.storeDir), p.positional[0]) ?? await pullImage(ctx, p.positional[0]);
      const c = await createContainer(ctx, image, { name: str(p, 'name') });
      process.stdout.write(c.id + '\n');
      return 0;
    }, 'create'),

  ps: cmd('List containers: id, protection, mode, names, image (-m execution mode, -s size, --json).',
    'userdock ps [-m] [-s] [--json]', { m: { kind: 'bool', aliases: ['-m'] }, s: { kind: 'bool', aliases: ['-s'] }, json: { kind: 'bool' } },
    async (ctx, p) => {
      const all = listContainers(ctx);
      const withSize = bool(p, 's');
      const rows = all.map((c) => ({
        id: c.id, names: c.names, image: c.image, imageDigest: c.imageDigest, protected: !!c.protected,
        execmode: c.execmode ?? '', created: c.created, rootfs: c.rootfs,
        ...(withSize ? { size: treeSize(c.rootfs) } : {}),
      }));
      if (bool(p, 'json')) { process.stdout.write(JSON.stringify(rows, null, 2) + '\n'); return 0; }
      const lines = [['CONTAINER ID', 'P', 'M', ...(bool(p, 'm') ? ['MOD'] : []), 'NAMES', 'IMAGE', ...(withSize ? ['SIZE(MB)'] : [])]];
      for (const r of rows) {
        lines.push([r.id, r.protected ? 'P' : '.', 'W', ...(bool(p, 'm') ? [r.execmode || '-'] : []),
          r.names.length ? r.names.map((n) => `'${n}'`).join(',') : '', r.image, ...(withSize ? [String(Math.round((r.size ?? 0) / 1e6))] : [])]);
      }
      const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
      process.stdout.write(lines.map((l) => l.map((x, i) => i === l.length - 1 ? x : x.padEnd(widths[i])).join(' ')).join('\n') + '\n');
      return 0;
    }, 'ps'),

  rm: cmd('Remove containers (protected ones are refused).', 'userdock rm [-f] CONTAINER...', { force: { kind: 'bool', aliases: ['-f'] } },
    async (ctx, p) => {
      need(p.positional, 1, 'rm', 'userdock rm CONTAINER...');
      let rc = 0;
      for (const x of p.positional) {
        try { const c = await removeContainer(ctx, x); log(ctx, `removed ${c.id}`); } catch (e) {
          if (!(e instanceof UserError)) throw e;
          process.stderr.write(`userdock rm: ${e.hint ? `${e.message} (${e.hint})` : e.message}\n`);
          rc = 1;
        }
      }
      return rc;
    }, 'rm'),

  name: cmd('Give a container another name.', 'userdock name CONTAINER NAME', {},
    async (ctx, p) => { need(p.positional, 2, 'name', 'userdock name CONTAINER NAME'); await nameContainer(ctx, p.positional[0], p.positional[1]); return 0; }, 'name'),

  rmname: cmd('Remove a container name (the container stays).', 'userdock rmname NAME', {},
    async (ctx, p) => { need(p.positional, 1, 'rmname', 'userdock rmname NAME'); await removeName(ctx, p.positional[0]); return 0; }, 'rmname'),

  rename: cmd('Rename a container name.', 'userdock rename NAME NEWNAME', {},
    async (ctx, p) => { need(p.positional, 2, 'rename', 'userdock rename NAME NEWNAME'); await renameContainer(ctx, p.positional[0], p.positional[1]); return 0; }, 'rename'),

  clone: cmd('Copy a container into a new one and print the new id.', 'userdock clone [--name=NAME] CONTAINER', { name: { kind: 'string' } },
    async (ctx, p) => {
      need(p.positional, 1, 'clone', 'userdock clone [--name=NAME] CONTAINER');
      const c = await cloneContainer(ctx, p.positional[0], { name: str(p, 'name') });
      process.stdout.write(c.id + '\n');
      return 0;
    }, 'clone'),

  protect: cmd('Protect a container against rm.', 'userdock protect CONTAINER', {},
    async (ctx, p) => { need(p.positional, 1, 'protect', 'userdock protect CONTAINER'); await updateContainer(ctx, p.positional[0], (c) => { c.protected = true; }); return 0; }, 'protect'),

  unprotect: cmd('Remove the protection of a container.', 'userdock unprotect CONTAINER', {},
    async (ctx, p) => { need(p.positional, 1, 'unprotect', 'userdock unprotect CONTAINER'); await updateContainer(ctx, p.positional[0], (c) => { delete c.protected; }); return 0; }, 'unprotect'),

  load: cmd('Load images from a docker save tarball, an OCI archive or an OCI layout directory.', 'userdock load [-i FILE|DIR]   (stdin when no -i)',
    { input: { kind: 'string', aliases: ['-i'] } },
    async (ctx, p) => {
      const file = str(p, 'input') ?? p.positional[0];
      let names: string[];
      if (file && file !== '-' && fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) names = await loadArchive(ctx, file, file);
      else { const { stream, label } = inputStream(file, 'load'); names = await loadArchive(ctx, stream, label); }
      for (const n of names) process.stdout.write(`${n}\n`);
      return 0;
    }, 'load'),

  import: cmd('Import a flat rootfs tarball (docker export) as an image, or as a container.',
    'userdock import [--tocontainer] [--clone] [--name=NAME] FILE|- [REPO:TAG]',
    { tocontainer: { kind: 'bool' }, clone: { kind: 'bool' }, name: { kind: 'string' }, mv: { kind: 'bool' } },
    async (ctx, p) => {
      need(p.positional, 1, 'import', 'userdock import [--tocontainer] [--clone] [--name=NAME] FILE|- [REPO:TAG]');
      const { stream, label } = inputStream(p.positional[0], 'import');
      if (bool(p, 'clone')) {
        const c = await containerFromClone(ctx, stream, { name: str(p, 'name'), label });
        process.stdout.write(c.id + '\n'); return 0;
      }
      if (bool(p, 'tocontainer')) {
        const c = await containerFromTar(ctx, stream, { name: str(p, 'name'), image: p.positional[1] ?? `import:${label}` });
        process.stdout.write(c.id + '\n'); return 0;
      }
      if (!p.positional[1]) throw new UsageError('import: missing REPO:TAG for the new image', 'give a name, e.g. userdock import rootfs.tar myimage:1, or use --tocontainer');
      const img = await importTarball(ctx, stream, label, p.positional[1]);
      process.stdout.write(`${img.ref.name}\n`);
      return 0;
    }, 'import'),

  save: cmd('Write images as a tarball that docker load accepts.', 'userdock save -o FILE IMAGE...',
    { output: { kind: 'string', aliases: ['-o'] } },
    async (ctx, p) => {
      need(p.positional, 1, 'save', 'userdock save -o FILE IMAGE...');
      const images = p.positional.map((n) => resolveImage(ctx, n));
      await saveImages(ctx, images, outputTarget(str(p, 'output'), 'save') as string);
      return 0;
    }, 'save'),

  export: cmd('Write a container\'s tree as a tarball (--clone: with userdock metadata, for import --clone).',
    'userdock export [--clone] -o FILE CONTAINER', { output: { kind: 'string', aliases: ['-o'] }, clone: { kind: 'bool' } },
    async (ctx, p) => {
      need(p.positional, 1, 'export', 'userdock export [--clone] -o FILE CONTAINER');
      const c = getContainer(ctx, p.positional[0]);
      await exportContainer(c, outputTarget(str(p, 'output'), 'export') as string, { clone: bool(p, 'clone') });
      return 0;
    }, 'export'),
};
