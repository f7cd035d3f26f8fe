/**
 * Atomic file replacement: the bytes go to a temporary file in the same
 * directory, are flushed to disk (fsync), and the temporary file is renamed
 * over the target. A crash or error at any point leaves either the previous
 * file or the new one, never a partial file; on error the temporary file is
 * removed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FlowVaeError } from '../errors';

function temporaryPath(file: string): string {
  const dir = path.dirname(path.resolve(file));
  // Same directory, so the rename stays within one file system (atomic on POSIX).
  return path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
}

/** True for the name of a temporary file these writers make (`.<file>.<pid>.<hex>.tmp`): one a killed writer may leave. */
export function isTemporaryFile(name: string): boolean {
  return /^\..+\.\d+\.[0-9a-f]{12}\.tmp$/.test(name);
}

function writeError(file: string, err: unknown): FlowVaeError {
  return new FlowVaeError('ERR_CHECKPOINT', `${file}: cannot be written (${(err as Error).message}); any previous file is unchanged`, {
    cause: err,
  });
}

/** Makes the rename itself durable; best effort (directories cannot be opened or fsynced on some platforms). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Not supported here (e.g. Windows); the data itself was fsynced.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function removeQuietly(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    // Already gone.
  }
}

/** Replaces `file` with `data` atomically (see the module comment). */
export function writeFileAtomicSync(file: string, data: Uint8Array): void {
  const tmp = temporaryPath(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    let offset = 0;
    while (offset < data.length) offset += fs.writeSync(fd, data, offset, data.length - offset);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // The write error is the one to report.
      }
    }
    removeQuietly(tmp);
    throw writeError(file, err);
  }
  syncDirectory(path.dirname(path.resolve(file)));
}

/** Promise version of writeFileAtomicSync. */
export async function writeFileAtomic(file: string, data: Uint8Array): Promise<void> {
  const tmp = temporaryPath(file);
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(tmp, 'wx', 0o644);
    let offset = 0;
    while (offset < data.length) {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset);
      offset += bytesWritten;
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.promises.rename(tmp, file);
  } catch (err) {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    await fs.promises.unlink(tmp).catch(() => undefined);
    throw writeError(file, err);
  }
  syncDirectory(path.dirname(path.resolve(file)));
}
