import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { atomicWriteFile, atomicWriteFileSync } from '../../src/io/atomic.js';

const root = mkdtempSync(join(tmpdir(), 'minibatch-atomic-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => {
  const dir = join(root, String(n++));
  mkdirSync(dir);
  return dir;
};

// Both variants, same guarantees.
const variants = {
  sync: async (path: string, data: Uint8Array | string) => atomicWriteFileSync(path, data),
  async: atomicWriteFile,
};

for (const [name, write] of Object.entries(variants)) {
  describe(`atomicWriteFile (${name})`, () => {
    it('creates a new file and leaves no temp file behind', async () => {
      const dir = freshDir();
      await write(join(dir, 'a.bin'), new Uint8Array([1, 2, 3]));
      assert.deepEqual(readdirSync(dir), ['a.bin']);
      assert.deepEqual([...readFileSync(join(dir, 'a.bin'))], [1, 2, 3]);
    });

    it('replaces an existing file, keeping its permission bits', async () => {
      const dir = freshDir();
      const path = join(dir, 'ckpt.json');
      writeFileSync(path, 'old');
      chmodSync(path, 0o600);
      await write(path, 'new contents');
      assert.equal(readFileSync(path, 'utf8'), 'new contents');
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dir), ['ckpt.json']);
    });

    it('keeps permission bits the umask would take away (0o666, 0o755)', async () => {
      const dir = freshDir();
      const path = join(dir, 'shared.st');
      const umask = process.umask(0o022);
      try {
        for (const mode of [0o666, 0o755, 0o640]) {
          writeFileSync(path, 'old');
          chmodSync(path, mode);
          await write(path, 'new');
          assert.equal((statSync(path).mode & 0o777).toString(8), mode.toString(8));
        }
        // A new file gets 0o666 less the umask, as any other.
        await write(join(dir, 'new.st'), 'x');
        assert.equal(statSync(join(dir, 'new.st')).mode & 0o777, 0o644);
      } finally {
        process.umask(umask);
      }
      assert.deepEqual(readdirSync(dir).sort(), ['new.st', 'shared.st']);
    });

    it('leaves the old file intact and removes the temp file when the write fails', async () => {
      const dir = freshDir();
      const path = join(dir, 'model.safetensors');
      writeFileSync(path, 'old weights');
      // Fault injection: data the write itself rejects, after the temp file was created.
      await assert.rejects(write(path, 42 as unknown as string), TypeError);
      assert.equal(readFileSync(path, 'utf8'), 'old weights');
      assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    });

    it('leaves the target intact and removes the temp file when the rename fails', async () => {
      const dir = freshDir();
      const target = join(dir, 'busy');
      mkdirSync(target);
      writeFileSync(join(target, 'keep'), 'x'); // a non-empty directory cannot be renamed over
      await assert.rejects(write(target, 'data'), (err: NodeJS.ErrnoException) => {
        assert.match(String(err.code), /^(EISDIR|ENOTEMPTY|EEXIST|EPERM)$/);
        return true;
      });
      assert.deepEqual(readdirSync(dir), ['busy']);
      assert.deepEqual(readdirSync(target), ['keep']);
    });

    it('fails cleanly when the directory does not exist', async () => {
      const target = join(root, 'missing', 'x.bin');
      // The error names the user's path, not the temp file beside it.
      await assert.rejects(write(target, 'data'), {
        code: 'ENOENT',
        message: `cannot write ${target}: ENOENT: no such file or directory`,
      });
    });
  });
}

it('a process that exits while an async write is starting (Ctrl-C during a checkpoint) leaves no temp file', () => {
  // The temp file was opened asynchronously: the exit handler ran while the open waited on the thread pool,
  // found nothing to remove, and the open then created the file while the process was going down. Made
  // certain here: one pool thread, busy hashing when the write starts, and a slow exit after the handler.
  const dir = freshDir();
  const atomic = fileURLToPath(new URL('../../src/io/atomic.js', import.meta.url));
  const script = [
    "import { pbkdf2 } from 'node:crypto';",
    `const { atomicWriteFile } = await import(${JSON.stringify(atomic)});`,
    "pbkdf2('x', 'y', 200000, 32, 'sha256', () => {});",
    'atomicWriteFile(process.argv[1], new Uint8Array(1 << 20));',
    "process.on('exit', () => { const t = Date.now(); while (Date.now() - t < 400); });",
    'process.exit(130);',
  ].join('\n');
  for (let i = 0; i < 2; i++) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, join(dir, `ck${i}.st`)], {
      encoding: 'utf8',
      timeout: 20000,
      env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    });
    assert.equal(r.status, 130, r.stderr);
  }
  assert.deepEqual(readdirSync(dir), []);
});
