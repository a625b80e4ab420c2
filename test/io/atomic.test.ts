import assert from 'node:assert/strict';
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
