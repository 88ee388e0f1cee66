/**
 * @module core/files
 * Writing files so that a failure never leaves half a file: through a temporary file beside the
 * target, renamed into place (rename is atomic on one file system, POSIX rename(2)), with a typed
 * error naming the file when it cannot be written. Used for CSV outputs, models and reports.
 */
import { closeSync, openSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OnceOnlyError } from './errors.ts';

/**
 * Writes text (a JSON model, an HTML report, a CSV file): to a temporary file renamed into place, so a failure never leaves half a file, and with a typed error naming
 * the file when it cannot be written.
 */
export function writeTextFile(file: string, text: string): void {
  writeAtomically(file, (fd) => writeAll(fd, text));
}

/**
 * Writes through `write` to a temporary file beside the target, then renames it into place. The
 * target's real path is used, so a symbolic link stays a link to the new file. A target that is
 * not a regular file (/dev/null, /dev/stdout, a pipe) is written directly: renaming over a device
 * would replace it, and a process run as root would then have put a regular file at /dev/null.
 */
export function writeAtomically(file: string, write: (fd: number) => void): void {
  let fd: number | undefined;
  let tmp: string | undefined;
  try {
    let target = file;
    let special = false;
    try {
      target = realpathSync(file);
      special = !statSync(target).isFile();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (special) {
      fd = openSync(target, 'w');
      write(fd);
      closeSync(fd);
      fd = undefined;
      return;
    }
    tmp = `${target}.${process.pid}.tmp`;
    // 'wx': never write through a file or symbolic link that is already there under this name.
    fd = openSync(tmp, 'wx');
    write(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, target);
    tmp = undefined;
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // Already failing: the first error is the one to report.
      }
    }
    // Only a temporary file this call created is removed, never one that was there before it.
    const created = tmp !== undefined && !(fd === undefined && (e as NodeJS.ErrnoException).syscall === 'open');
    if (created && tmp !== undefined) rmSync(tmp, { force: true });
    if (isFsError(e)) {
      throw new OnceOnlyError('invalid_file', `${file} could not be written (${e.code ?? e.message}).`, { file, code: e.code, expected: 'a writable path' });
    }
    throw e;
  }
}

export function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
}

function isFsError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

/** Absolute path of a file shipped with the package (config/, examples/), from any working directory. */
export function packagePath(rel: string): string {
  return fileURLToPath(new URL(`../../${rel}`, import.meta.url));
}
