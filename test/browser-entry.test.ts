/**
 * The browser entry (src/browser.ts) exports everything index.ts does except the Node-only file loaders, and
 * nothing it reaches imports a node: module or a bare package name statically (a page could not resolve
 * either). The real-browser run is scripts/browser-check.mjs (`npm run test:browser`).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { relaxedSimdWasm, simdWasm } from '../src/backend/wasm/generated/binaries.js';
import * as browser from '../src/browser.js';
import * as main from '../src/index.js';

/** What only Node can use: reading or writing files. */
const NODE_ONLY = new Set([
  'FashionMnistDataset',
  'readIdx',
  'decodeIdx',
  'encodeIdx',
  'atomicWriteFile',
  'atomicWriteFileSync',
]);

test('the browser entry exports all of index.ts but the file loaders', async () => {
  // fashion-mnist.ts exports a family of names: all of them are Node-only.
  const fashion = await import('../src/data/fashion-mnist.js');
  for (const name of Object.keys(fashion)) NODE_ONLY.add(name);
  const expected = Object.keys(main).filter((k) => !NODE_ONLY.has(k));
  assert.deepEqual(Object.keys(browser).sort(), expected.sort());
});

test('the browser entry imports no node: module and no bare package statically', () => {
  const seen = new Set<string>();
  const bad: string[] = [];
  const walk = (url: URL) => {
    if (seen.has(url.href)) return;
    seen.add(url.href);
    const src = readFileSync(url, 'utf8');
    const statics =
      /^\s*(?:import|export)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;
    for (const m of src.matchAll(statics)) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith('.')) walk(new URL(spec, url));
      else bad.push(`${url.pathname.split('/src/').pop()} imports ${spec}`);
    }
  };
  walk(new URL('../src/browser.js', import.meta.url));
  walk(new URL('../src/backend/wasm/worker.js', import.meta.url));
  assert.deepEqual(bad, []);
  assert.ok(seen.size > 20, `walked only ${seen.size} modules`);
});

test('the kernels compile synchronously on a browser main thread (Chromium refuses above 8 MB)', () => {
  // The wasm backend registers with a synchronous compile (initWasm); past this it would need initWasmAsync.
  for (const b64 of [simdWasm, relaxedSimdWasm]) assert.ok((b64.length * 3) / 4 < 8 * 2 ** 20);
});
