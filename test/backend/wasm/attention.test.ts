/**
 * The wasm attention kernels (src/backend/wasm/assembly/attention.ts) against the reference loops
 * (src/nn/attention-kernels.ts, registered as the js kernels): random shapes with lengths that are not
 * multiples of the tiles, L != S, E and Ev not multiples of 8, masks of several broadcast layouts, causal,
 * fully masked rows, the mask's gradient, one and several threads, the backward in one pass and in two.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type AttentionGeometry,
  type AttentionMaskView,
  getBackend,
  type KernelTable,
  kernels,
  setBackend,
} from '../../../src/backend/backend.js';
import { jsKernels } from '../../../src/backend/js/kernels.js';
import { wasmRuntime } from '../../../src/backend/wasm/backend.js';
import { assertClose, rand } from './helpers.js';

const rt = wasmRuntime();

interface Case {
  name: string;
  B: number;
  L: number;
  S: number;
  E: number;
  Ev: number;
  causal?: boolean;
  tiles?: [number, number];
  /** Builds the mask view for this case (seeded). */
  mask?: (c: Case) => AttentionMaskView;
  /** The mask is float and its gradient is wanted. */
  dmask?: boolean;
}

/** A mask of `shape` (dims of 1 broadcast) over (B, L, S), filled by `fill`. */
function maskOf(
  c: Case,
  shape: [number, number, number],
  fill: (n: number) => Float32Array | Uint8Array,
): AttentionMaskView {
  const [mb, ml, ms] = shape;
  const data = fill(mb * ml * ms);
  const strideL = ml === 1 ? 0 : ms;
  const strideS = ms === 1 ? 0 : 1;
  const batchOffset = Int32Array.from({ length: c.B }, (_, b) => (mb === 1 ? 0 : b * ml * ms));
  return { additive: data instanceof Float32Array, data, batchOffset, strideL, strideS };
}

const boolFill = (seed: number, keep: number) => (n: number) =>
  Uint8Array.from(rand(n, seed), (x) => (x < 2 * keep - 1 ? 1 : 0));
const floatFill = (seed: number) => (n: number) => rand(n, seed);

const CASES: Case[] = [
  { name: 'tiny 1x1x1', B: 1, L: 1, S: 1, E: 1, Ev: 1 },
  { name: 'L=13 S=13 E=6 Ev=3', B: 2, L: 13, S: 13, E: 6, Ev: 3 },
  { name: 'L=7 < S=19', B: 3, L: 7, S: 19, E: 5, Ev: 9 },
  { name: 'L=19 > S=7 causal', B: 2, L: 19, S: 7, E: 5, Ev: 4, causal: true },
  { name: 'L=7 < S=19 causal (keys no query sees)', B: 2, L: 7, S: 19, E: 8, Ev: 8, causal: true },
  { name: 'odd tiles 5x3', B: 2, L: 23, S: 17, E: 12, Ev: 7, tiles: [5, 3] },
  { name: 'odd tiles 3x5 causal', B: 2, L: 23, S: 23, E: 16, Ev: 16, causal: true, tiles: [3, 5] },
  { name: 'E=Ev=64, 2 x 150 x 131 (threads)', B: 2, L: 150, S: 131, E: 64, Ev: 64 },
  { name: 'E=24 Ev=16, 7 x 90 x 70 (threads)', B: 7, L: 90, S: 70, E: 24, Ev: 16, tiles: [16, 32] },
  {
    name: 'causal 3 x 200 x 200, E=32 (threads)',
    B: 3,
    L: 200,
    S: 200,
    E: 32,
    Ev: 32,
    causal: true,
    tiles: [64, 64],
  },
  {
    name: 'bool mask (L, S) shared over the batch',
    B: 3,
    L: 21,
    S: 26,
    E: 8,
    Ev: 5,
    mask: (c) => maskOf(c, [1, c.L, c.S], boolFill(5, 0.7)),
  },
  {
    name: 'bool key padding (B, 1, S)',
    B: 3,
    L: 21,
    S: 26,
    E: 8,
    Ev: 5,
    tiles: [8, 8],
    mask: (c) => maskOf(c, [c.B, 1, c.S], boolFill(6, 0.6)),
  },
  {
    name: 'sparse bool mask (B, L, S): fully masked rows',
    B: 2,
    L: 30,
    S: 12,
    E: 4,
    Ev: 4,
    tiles: [8, 4],
    mask: (c) => maskOf(c, [c.B, c.L, c.S], boolFill(7, 0.12)),
  },
  {
    name: 'additive mask (B, L, S)',
    B: 2,
    L: 33,
    S: 40,
    E: 16,
    Ev: 8,
    mask: (c) => maskOf(c, [c.B, c.L, c.S], floatFill(8)),
  },
  {
    name: 'additive mask (L, 1) broadcast over S, with dmask',
    B: 3,
    L: 17,
    S: 21,
    E: 8,
    Ev: 8,
    tiles: [8, 8],
    mask: (c) => maskOf(c, [1, c.L, 1], floatFill(9)),
    dmask: true,
  },
  {
    name: 'additive mask (S), with dmask (threads)',
    B: 4,
    L: 100,
    S: 120,
    E: 32,
    Ev: 32,
    mask: (c) => maskOf(c, [1, 1, c.S], floatFill(10)),
    dmask: true,
  },
  {
    name: 'additive mask with -inf cells and whole -inf rows',
    B: 2,
    L: 19,
    S: 11,
    E: 6,
    Ev: 6,
    tiles: [4, 8],
    mask: (c) =>
      maskOf(c, [c.B, c.L, c.S], (n) =>
        rand(n, 11).map((x, i) => (x < -0.3 || Math.floor(i / c.S) % 5 === 2 ? -Infinity : x)),
      ),
  },
];

interface Result {
  out: Float32Array;
  lse: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  dmask: Float32Array | null;
}

function runKernels(k: KernelTable, c: Case): Result {
  const { B, L, S, E, Ev } = c;
  const [bq, bk] = c.tiles ?? [64, 128];
  const g: AttentionGeometry = {
    B,
    L,
    S,
    E,
    Ev,
    scale: 1 / Math.sqrt(E),
    causal: c.causal ?? false,
    blockQ: bq,
    blockK: bk,
  };
  const mask = c.mask ? c.mask(c) : null;
  const [q, kk, v, dOut] = [rand(B * L * E, 1), rand(B * S * E, 2), rand(B * S * Ev, 3), rand(B * L * Ev, 4)];
  const out = new Float32Array(B * L * Ev);
  const lse = new Float32Array(B * L);
  k.attentionForward(q, kk, v, g, mask, out, lse);
  // Gradients start as garbage: the kernels write dq, dk, dv (only dmask is accumulated into).
  const [dq, dk, dv] = [q.length, kk.length, v.length].map((n) => new Float32Array(n).fill(Number.NaN));
  const dmask = c.dmask && mask ? new Float32Array(mask.data.length) : null;
  k.attentionBackward(q, kk, v, out, dOut, lse, g, mask, dq!, dk!, dv!, dmask);
  return { out, lse, dq: dq!, dk: dk!, dv: dv!, dmask };
}

/** The wasm backend's table (its kernels over the reference's), whatever backend is active. */
let wasm: KernelTable | undefined;
const wasmKernels = (): KernelTable => wasm!;

describe('wasm attention kernels', { skip: rt ? false : 'wasm backend unavailable' }, () => {
  let threads = 1;
  before(() => {
    const prev = getBackend();
    setBackend('wasm');
    wasm = kernels();
    setBackend(prev);
    threads = rt!.threads;
  });
  after(() => {
    rt!.threads = threads;
    rt!.attentionPasses = 0;
  });

  for (const c of CASES) {
    test(c.name, () => {
      const want = runKernels(jsKernels, c);
      for (const [nThreads, passes] of [
        [1, 0],
        [3, 1],
        [3, 2],
      ] as const) {
        rt!.threads = nThreads;
        rt!.attentionPasses = passes;
        const got = runKernels(wasmKernels(), c);
        const label = `${c.name} [${nThreads} thread(s), passes ${passes || 'auto'}]`;
        assertClose(`${label} out`, got.out, want.out, 2e-5);
        assertClose(`${label} lse`, got.lse, want.lse, 2e-5);
        assertClose(`${label} dq`, got.dq, want.dq, 5e-5);
        assertClose(`${label} dk`, got.dk, want.dk, 5e-5);
        assertClose(`${label} dv`, got.dv, want.dv, 5e-5);
        if (want.dmask) assertClose(`${label} dmask`, got.dmask!, want.dmask, 5e-5);
      }
    });
  }

  test('fully masked rows: zero output, lse -Infinity, zero dq', () => {
    const c = CASES.find((x) => x.name.startsWith('sparse bool'))!;
    const mask = c.mask!(c);
    const got = runKernels(wasmKernels(), c);
    let dead = 0;
    for (let b = 0; b < c.B; b++) {
      for (let i = 0; i < c.L; i++) {
        let seen = false;
        for (let j = 0; j < c.S; j++)
          seen ||= mask.data[mask.batchOffset[b]! + i * mask.strideL + j * mask.strideS] !== 0;
        if (seen) continue;
        dead++;
        const r = b * c.L + i;
        assert.equal(got.lse[r], -Infinity, `lse of dead row ${r}`);
        assert.ok(
          got.out.subarray(r * c.Ev, (r + 1) * c.Ev).every((x) => x === 0),
          `out of dead row ${r}`,
        );
        assert.ok(
          got.dq.subarray(r * c.E, (r + 1) * c.E).every((x) => x === 0),
          `dq of dead row ${r}`,
        );
      }
    }
    assert.ok(dead >= 2, `the case has fully masked rows (got ${dead})`);
  });

  test('tiles shrink to fit the per-thread scratch for wide heads; reference beyond', () => {
    const [bq, bk] = rt!.attentionTiles(64, 128, 2048, 2048)!;
    assert.ok(bq * bk < 64 * 128, `shrunk to ${bq} x ${bk}`);
    assert.equal(rt!.attentionTiles(64, 128, 64, 64)!.join(), '64,128');
    assert.equal(rt!.attentionTiles(64, 128, 1 << 16, 1 << 16), null);
    const c: Case = { name: 'E=Ev=1500', B: 1, L: 9, S: 21, E: 1500, Ev: 1500 };
    const want = runKernels(jsKernels, c);
    const got = runKernels(wasmKernels(), c);
    assertClose('wide out', got.out, want.out, 2e-5);
    assertClose('wide dk', got.dk, want.dk, 5e-5);
  });
});
