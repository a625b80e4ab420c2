/**
 * Every fast backend against the reference (`js`), on random cases from a fixed seed: forward values and the
 * gradients of every input. Shapes include 0, 1, sizes around the SIMD widths and tiles, and sizes past the
 * thresholds where wasm kernels (512 elements, 4096 multiply-adds) and threads take over; inputs are
 * contiguous, transposed, permuted, stepped, offset or expanded views, some with NaN, ±Inf, ±0 and
 * denormals. Exact ops must agree exactly (the sign of zero included); the rest within 1e-5 relative to the
 * larger of the value, 1, and the same computation on |inputs| (the error bound of a sum that cancels).
 * This is how `0·Inf` in the reference matmul and `relu(-0)` in the wasm tail were found.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';

const F = mb.functional;
type T = mb.Tensor;

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let R = mulberry32(1);
const ri = (lo: number, hi: number) => lo + Math.floor(R() * (hi - lo + 1));
const pick = <V>(a: readonly V[]): V => a[Math.floor(R() * a.length)]!;
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const EDGE = [0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97, 127, 128, 129];
const dim = (max = 129) => pick(EDGE.filter((d) => d <= max));
const SPECIALS = [Number.NaN, Infinity, -Infinity, 0, -0, 1e-40, -1e-40, 1.4e-45, 3e38, -3e38, 1e30];
const sp = () => (R() < 0.3 ? pick([0.01, 0.1, 0.3]) : 0);

interface Fill {
  special?: number;
  kind?: 'normal' | 'pos' | 'int';
  specials?: readonly number[];
}

function fillData(n: number, { special = 0, kind = 'normal', specials = SPECIALS }: Fill = {}): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (kind === 'pos') a[i] = 0.05 + R() * 3;
    else if (kind === 'int') a[i] = ri(-3, 3);
    else a[i] = (R() * 2 - 1) * (R() < 0.1 ? 10 : 1);
    if (special && R() < special) a[i] = pick(specials);
  }
  return a;
}

/** A leaf tensor's storage and the view of it a case uses (`shape`), with how the view is made. */
interface Recipe {
  kind: 'contig' | 'transpose' | 'permute' | 'step' | 'offset' | 'expand';
  shape: number[];
  base: number[];
  data: Float32Array;
  grad: boolean;
  d: number;
  e: number;
  perm: number[];
}

function recipe(shape: number[], opts: Fill & { contig?: boolean; grad?: boolean } = {}): Recipe {
  const r = shape.length;
  const kinds: Recipe['kind'][] = ['contig', 'contig'];
  if (r >= 2) kinds.push('transpose', 'permute');
  if (r >= 1) kinds.push('step', 'offset', 'expand');
  let kind = opts.contig ? 'contig' : pick(kinds);
  const base = [...shape];
  let d = 0;
  let e = 0;
  let perm = shape.map((_, i) => i);
  if (kind === 'transpose') {
    d = ri(0, r - 2);
    e = r - 1;
    [base[d], base[e]] = [base[e]!, base[d]!];
  } else if (kind === 'permute') {
    for (let i = r - 1; i > 0; i--) {
      const j = ri(0, i);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    perm.forEach((p, i) => {
      base[p] = shape[i]!;
    });
  } else if (kind === 'step') {
    d = ri(0, r - 1);
    e = ri(2, 3); // step
    base[d] = shape[d]! * e + ri(0, 2);
  } else if (kind === 'offset') {
    d = ri(0, r - 1);
    e = ri(1, 3); // start
    base[d] = shape[d]! + e + ri(0, 2);
  } else if (kind === 'expand') {
    const dims = shape.map((_, i) => i).filter((i) => shape[i] !== 1);
    if (dims.length) {
      d = pick(dims);
      base[d] = 1;
    } else kind = 'contig';
  }
  if (kind !== 'permute') perm = shape.map((_, i) => i);
  return { kind, shape, base, data: fillData(numel(base), opts), grad: opts.grad ?? true, d, e, perm };
}

function realize(rc: Recipe, data: Float32Array, grad: boolean): { leaf: T; view: T } {
  const leaf = mb.tensor(data.slice(), { shape: rc.base, requiresGrad: grad && rc.grad });
  const view =
    rc.kind === 'transpose'
      ? leaf.transpose(rc.d, rc.e)
      : rc.kind === 'permute'
        ? leaf.permute(rc.perm)
        : rc.kind === 'step'
          ? leaf.slice(rc.d, 0, rc.shape[rc.d]! * rc.e, rc.e)
          : rc.kind === 'offset'
            ? leaf.narrow(rc.d, rc.e, rc.shape[rc.d]!)
            : rc.kind === 'expand'
              ? leaf.expand(rc.shape)
              : leaf;
  assert.deepEqual(view.shape, rc.shape, `recipe ${rc.kind}`);
  return { leaf, view };
}

interface Case {
  name: string;
  inputs: Recipe[];
  fn: (views: T[]) => T;
  exact?: boolean;
  exactGrad?: boolean;
  noGrad?: boolean;
  tol?: number;
  /** Seed of the upstream gradient's values (drawn at the output's size) and their share of specials. */
  gradSeed?: number;
  gradSpecial?: number;
}

/** The upstream gradient for a case: n values from its own seed, so every backend gets the same ones. */
function upstream(c: Case, n: number): Float32Array {
  const saved = R;
  R = mulberry32(c.gradSeed ?? 7);
  const g = fillData(n, {
    special: c.gradSpecial ?? 0,
    specials: [Number.NaN, Infinity, -Infinity, 0, -0, 1e-40, 1e20],
  });
  R = saved;
  return g;
}

interface Result {
  err?: string;
  vals?: Float32Array;
  grads?: (Float32Array | null)[];
}

function evaluate(c: Case, backend: string, abs: boolean): Result {
  mb.setBackend(backend);
  try {
    const leaves = c.inputs.map((rc) => realize(rc, abs ? rc.data.map(Math.abs) : rc.data, !c.noGrad));
    const out = c.fn(leaves.map((l) => l.view));
    const vals = Float32Array.from(out.toTypedArray() as ArrayLike<number>);
    let grads: (Float32Array | null)[] = [];
    if (!c.noGrad && out.dtype === 'float32' && out.requiresGrad) {
      const g = upstream(c, out.size);
      out.backward(mb.tensor(abs ? g.map(Math.abs) : g, { shape: out.shape }));
      grads = leaves.map((l) =>
        l.leaf.grad ? Float32Array.from(l.leaf.grad.toTypedArray() as Float32Array) : null,
      );
    }
    return { vals, grads };
  } catch (e) {
    return { err: (e as Error).message.slice(0, 160) };
  }
}

/** The first disagreement of got with want, or null. */
function compare(want: Float32Array, got: Float32Array, exact: boolean, tol: number, scale?: Float32Array) {
  if (want.length !== got.length) return `length ${got.length}, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    let bad: boolean;
    if (exact) bad = !Object.is(w, g);
    else if (!Number.isFinite(w) || !Number.isFinite(g)) bad = w !== g;
    else {
      const s = scale && Number.isFinite(scale[i]!) ? Math.abs(scale[i]!) : 0;
      bad = Math.abs(w - g) / Math.max(Math.abs(w), s, 1) > tol;
    }
    if (bad) return `[${i}] got ${g}, want ${w}`;
  }
  return null;
}

const UNARY = ['neg', 'exp', 'log', 'sqrt', 'abs', 'tanh', 'sigmoid', 'relu', 'erf', 'sign'] as const;
const EXACT_UNARY = new Set<string>(['neg', 'abs', 'relu', 'sign']);
const unaryOf: Record<(typeof UNARY)[number], (x: T) => T> = {
  neg: (x) => x.neg(),
  exp: (x) => x.exp(),
  log: (x) => x.log(),
  sqrt: (x) => x.sqrt(),
  abs: (x) => x.abs(),
  tanh: (x) => x.tanh(),
  sigmoid: (x) => x.sigmoid(),
  relu: (x) => x.relu(),
  erf: (x) => mb.erf(x),
  sign: (x) => mb.sign(x),
};
const BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'] as const;
const binaryOf: Record<(typeof BINARY)[number], (a: T, b: T | number) => T> = {
  add: (a, b) => mb.add(a, b),
  sub: (a, b) => mb.sub(a, b),
  mul: (a, b) => mb.mul(a, b),
  div: (a, b) => mb.div(a, b),
  pow: (a, b) => mb.pow(a, b),
  maximum: (a, b) => mb.maximum(a, b),
  minimum: (a, b) => mb.minimum(a, b),
};

function randShape(maxRank = 4, maxNumel = 70000): number[] {
  for (;;) {
    const r = ri(1, maxRank);
    const s = Array.from({ length: r }, () => dim());
    if (R() < 0.3) {
      s[r - 1] = pick([512, 513, 521, 1024, 4099]); // past the wasm elementwise threshold
      for (let i = 0; i < r - 1; i++) s[i] = pick([1, 2, 3, 5]);
    }
    if (numel(s) <= maxNumel) return s;
  }
}

const generators: Record<string, () => Case> = {
  unary() {
    const op = pick([...UNARY, 'clamp' as const]);
    const kind = (op === 'log' || op === 'sqrt') && R() < 0.7 ? 'pos' : 'normal';
    const x = recipe(randShape(), { special: sp(), kind });
    const lo = R() < 0.5 ? -0.5 : -Infinity;
    const hi = R() < 0.5 ? 0.7 : Infinity;
    const clampish = op === 'clamp';
    return {
      name: `unary.${op}`,
      inputs: [x],
      exact: clampish || EXACT_UNARY.has(op),
      exactGrad: clampish || ['neg', 'abs', 'relu', 'sign'].includes(op),
      // sigmoid and tanh: a last-ulp difference in the output is amplified by their derivative near ±1
      tol: op === 'sigmoid' || op === 'tanh' ? 2e-3 : 1e-5,
      fn: ([v]) => (clampish ? v!.clamp(lo, hi) : unaryOf[op](v!)),
    };
  },
  binary() {
    const op = pick(BINARY);
    const shape = randShape();
    const r = shape.length;
    const mode = pick(['same', 'row', 'number', 'scalar', 'col', 'aBroadcast', 'mid'] as const);
    let aShape = shape;
    let bShape = shape;
    if (mode === 'row') bShape = [shape[r - 1]!];
    if (mode === 'scalar') bShape = R() < 0.5 ? [1] : [];
    if (mode === 'col') bShape = [...shape.slice(0, -1), 1];
    if (mode === 'mid') bShape = shape.map((s, i) => (i === 0 || i === r - 1 ? (i === 0 ? s : 1) : s));
    if (mode === 'aBroadcast') [aShape, bShape] = [[shape[r - 1]!], shape];
    const special = sp();
    const a = recipe(aShape, { special, kind: op === 'pow' ? 'pos' : 'normal' });
    const b = recipe(bShape, { special, kind: op === 'pow' && R() < 0.5 ? 'int' : 'normal' });
    const num = pick([2, 0.5, -1.5, 0, 3, 1e-3]);
    return {
      name: `binary.${op}.${mode}`,
      inputs: mode === 'number' ? [a] : [a, b],
      exact: op !== 'pow',
      fn: (v) => binaryOf[op](v[0]!, mode === 'number' ? num : v[1]!),
    };
  },
  compare() {
    const shape = randShape();
    const broadcast = R() < 0.3;
    const fill: Fill = {
      special: 0.2,
      specials: [Number.NaN, Infinity, -Infinity, 0, -0, 1e-40, 1],
      kind: 'int',
    };
    const a = recipe(shape, fill);
    const b = recipe(broadcast ? [shape[shape.length - 1]!] : shape, fill);
    if (R() < 0.3) {
      const c = recipe(shape, { kind: 'int', grad: false });
      return {
        name: 'where',
        inputs: [c, a, b],
        exact: true,
        exactGrad: true,
        fn: ([c, a, b]) => mb.where(c!.gt(0), a!, b!),
      };
    }
    const ops = { eq: mb.eq, ne: mb.ne, lt: mb.lt, le: mb.le, gt: mb.gt, ge: mb.ge };
    const op = pick(Object.keys(ops) as (keyof typeof ops)[]);
    return {
      name: `compare.${op}`,
      inputs: [a, b],
      exact: true,
      noGrad: true,
      fn: ([a, b]) => ops[op](a!, b!).float(),
    };
  },
  reduce() {
    const op = pick([
      'sum',
      'mean',
      'max',
      'min',
      'variance',
      'logsumexp',
      'argmax',
      'softmax',
      'logSoftmax',
    ] as const);
    const shape = randShape(4, 70000);
    const r = shape.length;
    let axes = shape.map((_, i) => i).filter(() => R() < 0.5);
    if (R() < 0.5) axes = [pick([0, r - 1])];
    if (!axes.length) axes = [r - 1];
    const keep = R() < 0.3;
    const extremum = op === 'max' || op === 'min' || op === 'argmax';
    const x = recipe(shape, {
      special: sp(),
      specials: extremum ? SPECIALS : [Number.NaN, Infinity, -Infinity, -0, 0, 1e-40, 1.4e-45],
    });
    const ax = axes[0]!;
    const fns: Record<typeof op, (v: T) => T> = {
      sum: (v) => v.sum(axes, keep),
      mean: (v) => v.mean(axes, keep),
      max: (v) => mb.max(v, axes, keep),
      min: (v) => mb.min(v, axes, keep),
      variance: (v) => mb.variance(v, axes, { keepDim: keep }),
      logsumexp: (v) => v.logsumexp(axes, keep),
      argmax: (v) => v.argmax(ax, keep).float(),
      softmax: (v) => v.softmax(ax),
      logSoftmax: (v) => v.logSoftmax(ax),
    };
    return {
      name: `reduce.${op}`,
      inputs: [x],
      exact: extremum,
      noGrad: op === 'argmax',
      fn: ([v]) => fns[op](v!),
    };
  },
  matmul() {
    const kind = pick([
      '2d',
      '2d',
      'batched',
      'broadcastA',
      'broadcastB',
      'broadcast4',
      'vector',
      'gemv',
    ] as const);
    let [M, K, N] = [dim(129), dim(129), dim(129)];
    if (R() < 0.4) [M, K, N] = R() < 0.5 ? [16, 16, 16 + ri(0, 1)] : [64, 64, 65]; // 4096 MACs, and threads
    if (kind === 'gemv') M = 1;
    if (R() < 0.15) K = pick([0, 1, 300, 513]);
    const B = pick([2, 3, 5]);
    const shapes: Record<typeof kind, [number[], number[]]> = {
      '2d': [
        [M, K],
        [K, N],
      ],
      gemv: [
        [M, K],
        [K, N],
      ],
      batched: [
        [B, M, K],
        [B, K, N],
      ],
      broadcastA: [
        [M, K],
        [B, K, N],
      ],
      broadcastB: [
        [B, M, K],
        [K, N],
      ],
      broadcast4: [
        [B, 1, M, K],
        [2, K, N],
      ],
      vector: R() < 0.5 ? [[K], [K, N]] : [[M, K], [K]],
    };
    const fill: Fill = {
      special: R() < 0.15 ? 0.01 : 0,
      specials: [Number.NaN, Infinity, -Infinity, 0, -0, 1e-40],
    };
    const [as, bs] = shapes[kind];
    return {
      name: `matmul.${kind}`,
      inputs: [recipe(as, fill), recipe(bs, fill)],
      fn: ([a, b]) => a!.matmul(b!),
    };
  },
  linear() {
    const [Nb, I, O] = [pick([1, 2, 7, 32, 33, 64, 128]), dim(129) || 1, dim(129) || 1];
    const relu = R() < 0.5;
    const bias = R() < 0.7;
    const inputs = [recipe(R() < 0.3 ? [2, Nb, I] : [Nb, I]), recipe([O, I], { contig: R() < 0.6 })];
    if (bias) inputs.push(recipe([O], { contig: true }));
    return {
      name: `linear${bias ? '.bias' : ''}${relu ? '.relu' : ''}`,
      inputs,
      fn: ([x, w, b]) => F.linear(x!, w!, b ?? null, { relu }),
    };
  },
  batchNorm() {
    const rank = ri(2, 4);
    const [Nb, C] = [pick([2, 3, 8, 16, 33, 64]), pick([1, 3, 8, 15, 16, 17, 33])];
    const shape =
      rank === 2
        ? [Nb, C]
        : rank === 3
          ? [Nb, C, pick([1, 5, 16, 31])]
          : [Nb, C, pick([1, 3, 7]), pick([1, 4, 9])];
    let x: Recipe;
    do x = recipe(shape, { special: R() < 0.1 ? 0.005 : 0, specials: [0, -0, 1e-40] });
    while (x.kind === 'expand'); // a constant channel: variance 0, invstd 316, and a gradient that cancels
    const relu = R() < 0.5;
    const affine = R() < 0.7;
    return {
      name: `batchNorm${relu ? '.relu' : ''}${affine ? '.affine' : ''}`,
      inputs: affine ? [x, recipe([C], { contig: true }), recipe([C], { contig: true })] : [x],
      tol: 1e-4,
      fn: ([x, w, b]) => F.batchNorm(x!, { weight: w ?? null, bias: b ?? null, training: true, relu }),
    };
  },
  crossEntropy() {
    const [Nb, C] = [pick([1, 2, 5, 16, 33, 64, 100]), pick([1, 2, 3, 10, 16, 17, 100, 513])];
    const target = Int32Array.from({ length: Nb }, () => ri(0, C - 1));
    const labelSmoothing = R() < 0.3 ? 0.1 : 0;
    const ignoreIndex = R() < 0.2 ? target[0]! : -100;
    const reduction = pick(['mean', 'sum', 'none'] as const);
    return {
      name: `crossEntropy.${reduction}`,
      inputs: [recipe([Nb, C], { special: R() < 0.1 ? 0.01 : 0, specials: [1e4, -1e4, 0, -0, -Infinity] })],
      fn: ([x]) => F.crossEntropy(x!, mb.tensor(target.slice()), { labelSmoothing, ignoreIndex, reduction }),
    };
  },
  conv() {
    const [Nb, Ci, Co, H, W] = [
      pick([1, 2, 3]),
      pick([1, 2, 3, 4]),
      pick([1, 2, 5, 8]),
      pick([1, 4, 5, 8, 11]),
      pick([1, 3, 5, 8, 12]),
    ];
    if (R() < 0.35) {
      const k = Math.min(pick([1, 2, 3]), H, W);
      const pad = k >= 2 && R() < 0.3 ? 1 : 0;
      const stride = pick([k, 1, 2]);
      const x = recipe([Nb, Ci, H, W], {
        special: R() < 0.2 ? 0.05 : 0,
        specials: [Number.NaN, -Infinity, Infinity, 0, -0],
      });
      return {
        name: 'maxPool2d',
        inputs: [x],
        exact: true,
        exactGrad: true,
        fn: ([x]) => F.maxPool2d(x!, k, stride, pad),
      };
    }
    const k = Math.min(pick([1, 2, 3, 5]), H, W);
    const [stride, pad] = [pick([1, 1, 2, 3]), pick([0, 0, 1, 2])];
    return {
      name: 'conv2d',
      inputs: [
        recipe([Nb, Ci, H, W]),
        recipe([Co, Ci, k, k], { contig: true }),
        recipe([Co], { contig: true }),
      ],
      fn: ([x, w, b]) => F.conv2d(x!, w!, b!, stride, pad),
    };
  },
  gather() {
    const shape = randShape(3, 40000);
    const d = ri(0, shape.length - 1);
    if (shape[d] === 0) shape[d] = 3;
    const index = Int32Array.from({ length: pick([0, 1, 5, 17, 64, 200]) }, () => ri(0, shape[d]! - 1));
    if (R() < 0.5)
      return {
        name: 'indexSelect',
        inputs: [recipe(shape)],
        exact: true,
        fn: ([x]) => x!.indexSelect(d, index),
      };
    const stack = R() < 0.5;
    return {
      name: stack ? 'stack' : 'cat',
      inputs: [recipe(shape), recipe(shape)],
      exact: true,
      exactGrad: true,
      fn: ([a, b]) => (stack ? mb.stack([a!, b!], d) : mb.cat([a!, b!], d)),
    };
  },
};

it('wasm and native agree with the reference on 900 random cases (values and gradients)', () => {
  const backends = mb.listBackends().filter((b) => b !== 'js');
  const prev = mb.getBackend();
  const failures: string[] = [];
  const names = Object.keys(generators);
  R = mulberry32(20261128);
  try {
    for (let n = 0; n < 900; n++) {
      const c = generators[pick(names)]!();
      c.gradSeed = ri(1, 2 ** 30);
      c.gradSpecial = sp();
      const want = evaluate(c, 'js', false);
      const scale = c.exact && c.noGrad ? undefined : evaluate(c, 'js', true);
      const tol = c.tol ?? 1e-5;
      for (const backend of backends) {
        const got = evaluate(c, backend, false);
        const where = `#${n} ${c.name} on ${backend} (${c.inputs.map((r) => `${r.kind} [${r.shape}]`).join(', ')})`;
        if (want.err || got.err) {
          if (want.err !== got.err) failures.push(`${where}: error ${got.err}, reference ${want.err}`);
          continue;
        }
        const v = compare(want.vals!, got.vals!, !!c.exact, tol, scale?.err ? undefined : scale?.vals);
        if (v) failures.push(`${where}: value ${v}`);
        want.grads!.forEach((w, k) => {
          const g = got.grads![k] ?? null;
          if (!w || !g) {
            if (w !== g) failures.push(`${where}: gradient ${k} missing`);
            return;
          }
          // The gradient of an expanded or broadcast input is a sum. The reference and wasm add in float64;
          // native adds blocks of rows in float32 (BLAS GEMV), so there it is exact only where nothing is summed.
          const summed =
            c.inputs[k]!.kind === 'expand' || (backend === 'native' && w.length !== want.vals!.length);
          const exactGrad = !!c.exactGrad && !summed;
          const e = compare(w, g, exactGrad, tol, scale?.grads?.[k] ?? undefined);
          if (e) failures.push(`${where}: gradient ${k} ${e}`);
        });
      }
    }
  } finally {
    mb.setBackend(prev);
  }
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} disagreements`);
});
