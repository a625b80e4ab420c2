/**
 * Crash-safe file replacement: a reader (or a restart after a crash) sees either the old file or the complete
 * new one, never a truncated mix. Protocol: write a temp file in the target's directory (rename is only atomic
 * within one file system), fsync it (so its bytes are on disk before the name points at them), rename it over
 * the target, then fsync the directory (so the rename itself survives a power cut).
 */
import { randomBytes } from 'node:crypto';
import {
  close,
  closeSync,
  fchmodSync,
  promises as fsp,
  fsync,
  fsyncSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFile,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Temp files of writes in flight: a process that exits in the middle of one (Ctrl-C during a checkpoint
 * write) removes its temp file on the way out instead of leaving a hidden `.name.pid.tmp` beside the target.
 * The temp file is created synchronously (openSync): an asynchronous open still in flight on the thread pool
 * when the exit handler runs would create the file after the handler removed it.
 */
const pending = new Set<string>();
let cleanupRegistered = false;
function registerCleanup(): void {
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  process.on('exit', () => {
    for (const tmp of pending) removeQuietly(tmp);
  });
}

/**
 * Replace `path` with `data` atomically. On any error the temp file is removed, the old file (if any) is left
 * untouched, and the error is re-thrown. A replaced file keeps its permission bits.
 *
 * @example
 * atomicWriteFileSync('ckpt/model.safetensors', bytes);
 */
export function atomicWriteFileSync(path: string, data: Uint8Array | string): void {
  const tmp = tempPathFor(path);
  try {
    const fd = createTemp(tmp, path);
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    removeQuietly(tmp);
    throw naming(path, err);
  }
  syncDirectory(path);
}

/**
 * Promise version of {@link atomicWriteFileSync}, with the same guarantees.
 *
 * @example
 * await atomicWriteFile('ckpt/model.safetensors', bytes);
 */
export async function atomicWriteFile(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempPathFor(path);
  registerCleanup();
  pending.add(tmp);
  try {
    const fd = createTemp(tmp, path); // synchronous: see `pending`
    try {
      await new Promise<void>((res, rej) => writeFile(fd, data, (e) => (e ? rej(e) : res())));
      await new Promise<void>((res, rej) => fsync(fd, (e) => (e ? rej(e) : res())));
    } finally {
      await new Promise<void>((res, rej) => close(fd, (e) => (e ? rej(e) : res())));
    }
    await fsp.rename(tmp, path);
  } catch (err) {
    removeQuietly(tmp);
    throw naming(path, err);
  } finally {
    pending.delete(tmp);
  }
  let dir: fsp.FileHandle;
  try {
    dir = await fsp.open(dirname(path), 'r');
  } catch {
    return;
  }
  try {
    await dir.sync();
  } catch (err) {
    if (!cannotSyncDirectories(err)) throw err;
  } finally {
    await dir.close();
  }
}

/**
 * A file-system error about the temp file, reworded to name the user's path (`cannot write out/ck.st: ENOENT:
 * no such file or directory`); `code` and `cause` are kept. Other errors (bad data) pass unchanged.
 */
function naming(path: string, err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string' || typeof e.syscall !== 'string') return err; // not a system call's error
  return Object.assign(new Error(`cannot write ${path}: ${e.message.split(',')[0]}`), {
    code: e.code,
    cause: err,
  });
}

/** Same directory as the target; pid + random suffix so concurrent writers never share a temp file. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Create the temp file for `path` (exclusively) and give it the permission bits of the file it replaces, so
 * the rename does not reset them: the mode given to open() is reduced by the umask (0o666 becomes 0o644), so
 * it is set again with fchmod. A new file gets 0o666 & ~umask, as any other.
 */
function createTemp(tmp: string, path: string): number {
  let mode: number | undefined;
  try {
    mode = statSync(path).mode & 0o7777;
  } catch {
    // No file to replace.
  }
  const fd = openSync(tmp, 'wx', mode ?? 0o666);
  if (mode !== undefined) {
    try {
      fchmodSync(fd, mode);
    } catch (err) {
      // A file system without Unix modes (FAT, some network mounts) keeps what it has.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EINVAL' && code !== 'ENOSYS') {
        closeSync(fd);
        throw err;
      }
    }
  }
  return fd;
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone (the open failed, or the rename happened): nothing to clean up.
  }
}

/**
 * fsync the directory entry. The rename has already happened, so the temp file is gone and an error here
 * reports only that durability is unknown. Platforms that cannot open a directory (Windows) are skipped.
 */
function syncDirectory(path: string): void {
  let fd: number;
  try {
    fd = openSync(dirname(path), 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch (err) {
    if (!cannotSyncDirectories(err)) throw err;
  } finally {
    closeSync(fd);
  }
}

/** Errors meaning "this platform/file system does not sync directories", not "the data may be lost". */
function cannotSyncDirectories(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'EPERM' || code === 'EISDIR' || code === 'EBADF';
}
