#!/usr/bin/env node
// Builds the Fashion-MNIST subset shipped in data/fashion-mnist/: 1,000 training and 200 test images per
// class, chosen per class by a seeded permutation and kept in their original order (so classes stay
// interleaved as in the full set), written as gzipped IDX with the standard names, plus LICENSE and README.
//
//   npx tsc -p tsconfig.json && node scripts/make-fashion-subset.mjs [source dir, default Debian's]
//
// It uses the library's own IDX reader and Generator (from build/), so the subset is read back by the same
// code that checks it, and the choice is the same on every machine.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = (path) =>
  import(join(root, 'build', path)).catch((e) => {
    throw new Error(
      `make-fashion-subset: cannot load build/${path}; run npx tsc -p tsconfig.json first (${e.message})`,
    );
  });
const { readIdx, encodeIdx } = await built('src/data/idx.js');
const { Generator } = await built('src/tensor/random.js');

const SEED = 2017;
const PER_CLASS = { train: 1000, t10k: 200 };
const source = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const out = join(root, 'data', 'fashion-mnist');
mkdirSync(out, { recursive: true });

const write = (name, shape, data) => {
  // Level 9: the subset is built once and downloaded with every install.
  const gz = gzipSync(encodeIdx(shape, data), { level: constants.Z_BEST_COMPRESSION });
  writeFileSync(join(out, name), gz);
  return gz.length;
};

let total = 0;
const counts = [];
for (const [split, perClass] of Object.entries(PER_CLASS)) {
  const images = readIdx(join(source, `${split}-images-idx3-ubyte.gz`));
  const labels = readIdx(join(source, `${split}-labels-idx1-ubyte.gz`));
  const [, h, w] = images.shape;
  const size = h * w;
  const g = new Generator(SEED);
  const chosen = [];
  for (let c = 0; c < 10; c++) {
    const members = [...labels.data.keys()].filter((i) => labels.data[i] === c);
    if (members.length < perClass) throw new Error(`${split}: class ${c} has only ${members.length} images`);
    chosen.push(...[...g.permutation(members.length).subarray(0, perClass)].map((p) => members[p]));
  }
  chosen.sort((a, b) => a - b);
  const subImages = new Uint8Array(chosen.length * size);
  chosen.forEach((i, k) => {
    subImages.set(images.data.subarray(i * size, (i + 1) * size), k * size);
  });
  total += write(`${split}-images-idx3-ubyte.gz`, [chosen.length, h, w], subImages);
  total += write(
    `${split}-labels-idx1-ubyte.gz`,
    [chosen.length],
    Uint8Array.from(chosen, (i) => labels.data[i]),
  );
  counts.push(`${chosen.length} ${split === 'train' ? 'training' : 'test'} (${perClass} per class)`);
}

writeFileSync(
  join(out, 'README.md'),
  `# Fashion-MNIST subset

${counts.join(' and ')} images of Fashion-MNIST
(https://github.com/zalandoresearch/fashion-mnist, MIT licence: see LICENSE), made by
\`node scripts/make-fashion-subset.mjs\` from Debian's \`dataset-fashion-mnist\` files: per class, a permutation
from minibatch's \`Generator(${SEED})\` picks the images, which keep their original order. Same IDX format and
file names as the full set; \`loadFashionMnist()\` falls back to it when the full set is not installed.
`,
);
writeFileSync(
  join(out, 'LICENSE'),
  `Fashion-MNIST, https://github.com/zalandoresearch/fashion-mnist
The files in this directory are a subset of it, unchanged except for the selection.

The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the “Software”), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and
to permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions
of the Software.

THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO
THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS
IN THE SOFTWARE.
`,
);
console.log(
  `make-fashion-subset: wrote ${counts.join(', ')} to ${out}: ${(total / 1e6).toFixed(2)} MB gzipped`,
);
