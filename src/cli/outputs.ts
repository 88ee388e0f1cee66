/**
 * @module cli/outputs
 * Checks on the files a command is about to write, made before any work: an output must not be
 * one of the command's inputs (writing it would destroy the input) nor another output, and its
 * folder must exist. Without them a long run ends in a raw file-system error, or worse, in an
 * input file replaced by the results.
 */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { OnceOnlyError } from '../core/errors.ts';

/** Whether two paths name one file: the same path, or (for existing files) the same inode, which catches hard and symbolic links. */
export function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Refuses an output that would overwrite an input or another output, or that cannot be written
 * (its folder missing, or a folder in its place). Each entry is `[option, path]`; entries whose
 * path is undefined (an option not given) are skipped.
 */
export function checkOutputs(outputs: readonly (readonly [string, string | undefined])[], inputs: readonly (readonly [string, string | undefined])[]): void {
  const outs = outputs.filter((o): o is readonly [string, string] => o[1] !== undefined);
  const ins = inputs.filter((i): i is readonly [string, string] => i[1] !== undefined);
  outs.forEach(([flag, path], k) => {
    for (const [inFlag, inPath] of ins) {
      if (sameFile(path, inPath)) {
        throw new OnceOnlyError('invalid_request', `${flag} ${path} is also an input (${inFlag}): writing it would destroy the input`, { field: flag, file: path, expected: 'a path that is not one of the inputs' });
      }
    }
    for (const [otherFlag, other] of outs.slice(0, k)) {
      if (sameFile(path, other)) throw new OnceOnlyError('invalid_request', `${flag} and ${otherFlag} are the same file ${path}`, { field: flag, file: path, expected: 'a different file for each output' });
    }
    const dir = dirname(resolve(path));
    if (!isDirectory(dir)) throw new OnceOnlyError('invalid_file', `${path} cannot be written: the folder ${dir} does not exist`, { file: path, field: flag, expected: 'a path in an existing folder' });
    if (isDirectory(path)) throw new OnceOnlyError('invalid_file', `${path} is a folder; ${flag} needs a file name`, { file: path, field: flag, expected: 'a file path' });
  });
}
