/**
 * How each kernel call is cut into chunks, and what one chunk does. A call on n threads is cut into about
 * CHUNKS_PER_THREAD·n chunks that the caller and the workers claim one by one (pool.ts), so a thread that
 * wakes late or is descheduled by another process simply does fewer; on one thread a call is one chunk.
 * Arguments are all numbers (pointers, sizes, flags), which a Float64Array holds exactly.
 *
 * Shapes as in assembly/gemm.ts and assembly/elementwise.ts: M,N,K for GEMM; n flat elements; R rows × C
 * columns. Chunks are cut at multiples of a unit so that no two threads write the same cache line or tile.
 */

/** The WebAssembly exports of assembly/index.ts. Pointers are byte addresses; booleans are 0/1. */
export interface Kernels {
  heapBase(): number;
  gemmScratchBytes(): number;
  sgemm(
    transA: number,
    transB: number,
    M: number,
    N: number,
    K: number,
    alpha: number,
    a: number,
    lda: number,
    b: number,
    ldb: number,
    beta: number,
    c: number,
    ldc: number,
    bias: number,
    relu: number,
    scratch: number,
    preA: number,
    preB: number,
  ): void;
  gemmPacks(transA: number, transB: number, M: number, K: number): number;
  gemmPackedBytes(which: number, len: number, K: number): number;
  gemmPrepack(
    which: number,
    trans: number,
    src: number,
    ld: number,
    len: number,
    K: number,
    i0: number,
    i1: number,
    alpha: number,
    dst: number,
  ): void;
  binary(op: number, a: number, b: number, out: number, n: number): void;
  binaryRow(op: number, a: number, b: number, out: number, R: number, C: number): void;
  binaryScalar(op: number, a: number, s: number, out: number, n: number): void;
  relu(x: number, out: number, n: number): void;
  reluBackward(x: number, dy: number, dx: number, n: number): void;
  exp(x: number, out: number, n: number): void;
  unary(op: number, x: number, out: number, n: number): void;
  clamp(x: number, lo: number, hi: number, out: number, n: number): void;
  fill(out: number, v: number, n: number): void;
  scale64(x: number, s: number, out: number, n: number): void;
  reduceRows(op: number, x: number, R: number, C: number, out: number): void;
  reduceCols(op: number, x: number, R: number, C: number, ldx: number, out: number): void;
  softmaxRows(log: number, x: number, R: number, C: number, out: number): void;
  sumAxis0(x: number, R: number, C: number, ldx: number, out: number): void;
  sumAxis1(x: number, R: number, C: number, out: number): void;
  softmaxCrossEntropy(
    logits: number,
    targets: number,
    R: number,
    C: number,
    loss: number,
    probs: number,
  ): void;
  softmaxCrossEntropyBackward(
    probs: number,
    targets: number,
    R: number,
    C: number,
    scale: number,
    grad: number,
    dx: number,
  ): void;
  compare(op: number, a: number, b: number, out: number, n: number): void;
  select(cond: number, a: number, b: number, out: number, n: number): void;
  argReduceRows(isMin: number, x: number, R: number, C: number, out: number): void;
  bnForward(
    x: number,
    N: number,
    C: number,
    S: number,
    w: number,
    b: number,
    eps: number,
    out: number,
    mean: number,
    invstd: number,
    c0: number,
    c1: number,
    relu: number,
  ): void;
  bnBackward(
    x: number,
    dy: number,
    N: number,
    C: number,
    S: number,
    w: number,
    mean: number,
    invstd: number,
    dx: number,
    dw: number,
    db: number,
    c0: number,
    c1: number,
    reluOut: number,
  ): void;
  im2col(
    x: number,
    p0: number,
    p1: number,
    H: number,
    W: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    ph: number,
    pw: number,
    dh: number,
    dw: number,
    Ho: number,
    Wo: number,
    cols: number,
  ): void;
  col2im(
    cols: number,
    p0: number,
    p1: number,
    H: number,
    W: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    ph: number,
    pw: number,
    dh: number,
    dw: number,
    Ho: number,
    Wo: number,
    dx: number,
  ): void;
  sgdUpdate(
    p: number,
    g: number,
    b: number,
    n: number,
    flags: number,
    wd: number,
    mu: number,
    keep: number,
    negLr: number,
  ): void;
  adamUpdate(
    p: number,
    g: number,
    m: number,
    v: number,
    vmax: number,
    n: number,
    flags: number,
    b1: number,
    b2: number,
    keep1: number,
    keep2: number,
    negStepSize: number,
    bc2Sqrt: number,
    eps: number,
    wd: number,
    shrink: number,
  ): void;
  rmspropUpdate(
    p: number,
    g: number,
    sq: number,
    ga: number,
    buf: number,
    n: number,
    flags: number,
    alpha: number,
    keep: number,
    eps: number,
    wd: number,
    mu: number,
    negLr: number,
  ): void;
  adagradUpdate(
    p: number,
    g: number,
    sum: number,
    n: number,
    flags: number,
    eps: number,
    wd: number,
    negClr: number,
  ): void;
  erf(x: number, out: number, n: number): void;
  pow(a: number, aStep: number, b: number, bStep: number, out: number, n: number): void;
  scatterAdd(
    dst: number,
    src: number,
    index: number,
    D: number,
    I: number,
    inner: number,
    o0: number,
    o1: number,
    d0: number,
    d1: number,
  ): void;
  attnScratchBytes(bq: number, bk: number, E: number, Ev: number): number;
  attnForward(
    q: number,
    k: number,
    v: number,
    mask: number,
    maskKind: number,
    maskOff: number,
    strideL: number,
    strideS: number,
    out: number,
    lse: number,
    L: number,
    S: number,
    E: number,
    Ev: number,
    scale: number,
    causal: number,
    bq: number,
    bk: number,
    b: number,
    i0: number,
    scratch: number,
  ): void;
  attnBackwardKV(
    q: number,
    k: number,
    v: number,
    out: number,
    dout: number,
    lse: number,
    dq: number,
    dk: number,
    dv: number,
    dmask: number,
    mask: number,
    maskKind: number,
    maskOff: number,
    strideL: number,
    strideS: number,
    L: number,
    S: number,
    E: number,
    Ev: number,
    scale: number,
    causal: number,
    bq: number,
    bk: number,
    b: number,
    j0: number,
    scratch: number,
  ): void;
  attnBackwardQ(
    q: number,
    k: number,
    v: number,
    out: number,
    dout: number,
    lse: number,
    dq: number,
    mask: number,
    maskKind: number,
    maskOff: number,
    strideL: number,
    strideS: number,
    L: number,
    S: number,
    E: number,
    Ev: number,
    scale: number,
    causal: number,
    bq: number,
    bk: number,
    b: number,
    i0: number,
    scratch: number,
  ): void;
}

/** Task ids as written into the pool's control block. */
export const Task = {
  sgemm: 1,
  binary: 2,
  binaryRow: 3,
  binaryScalar: 4,
  relu: 5,
  reluBackward: 6,
  exp: 7,
  sumAxis0: 8,
  sumAxis1: 9,
  softmaxCrossEntropy: 10,
  softmaxCrossEntropyBackward: 11,
  attentionForward: 12,
  attentionBackwardKV: 13,
  attentionBackwardQ: 14,
  attentionBackwardFused: 15,
  unary: 16,
  clamp: 17,
  scale64: 18,
  reduceRows: 19,
  reduceCols: 20,
  softmaxRows: 21,
  compare: 22,
  select: 23,
  argReduceRows: 24,
  bnForward: 25,
  bnBackward: 26,
  im2col: 27,
  col2im: 28,
  sgdUpdate: 29,
  adamUpdate: 30,
  erf: 31,
  pow: 32,
  scatterAdd: 33,
  fill: 34,
  gemmPrepack: 35,
  rmspropUpdate: 36,
  adagradUpdate: 37,
} as const;
export type TaskName = keyof typeof Task;

/** Argument slots per call; the attention backward uses the most (see `attentionBackward`). */
export const MAX_ARGS = 32;

/**
 * Chunks per thread: enough that a thread starting 100-300 µs late (a wake-up from Atomics.wait on a busy
 * machine) sheds its work to the others, few enough that re-packing a GEMM operand per chunk stays ~1-3%.
 */
const CHUNKS_PER_THREAD = 4;

/** [start, end) of chunk `i` of `chunks` over `total` items, cut at multiples of `unit`. */
export function share(total: number, unit: number, i: number, chunks: number): [number, number] {
  const per = Math.ceil(Math.ceil(total / unit) / chunks) * unit;
  return [Math.min(total, i * per), Math.min(total, (i + 1) * per)];
}

/** How many chunks `total` items in units of `unit` make for n threads. */
function chunkCount(total: number, unit: number, n: number): number {
  return n <= 1 ? 1 : Math.max(1, Math.min(Math.ceil(total / unit), CHUNKS_PER_THREAD * n));
}

// 16 floats = one 64-byte cache line, and a multiple of the GEMM tile width (8).
const LINE = 16;
// GEMM row splits follow the micro-kernel's tile height (MR in assembly/gemm.ts): prepacked A's chunks must
// start on a panel, so the gemm tests of the shared packed operand fail if the two differ.
const GEMM_MR = 6;

interface Runner {
  /** Chunks the call with these args is cut into for n threads; the same on every thread. */
  chunks(a: Float64Array, n: number): number;
  run(k: Kernels, a: Float64Array, chunk: number, chunks: number, scratch: number): void;
}

/**
 * Batched GEMM, args: transA, transB, M, N, K, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc,
 * strideC, batch, bias, biasStride, relu, preA, preB (strides in elements). A chunk is a run of whole matrices
 * when the batch is large, else a part of one matrix: rows when M >= N (every chunk then needs all of B, the
 * smaller operand), columns otherwise (all of A). That shared operand, packed once by the caller (see
 * `sgemmSharedOperand`), is preB for a row split and preA for a column split; 0 where it was not.
 */
const sgemmRunner: Runner = {
  chunks(a, n) {
    const batch = a[16]!;
    if (n <= 1 || batch >= CHUNKS_PER_THREAD * n) return chunkCount(batch, 1, n);
    const M = a[2]!;
    const N = a[3]!;
    return batch * chunkCount(Math.max(M, N), M >= N ? GEMM_MR : LINE, Math.ceil(n / batch));
  },
  run(k, a, chunk, chunks, scratch) {
    const tA = a[0]!;
    const tB = a[1]!;
    const M = a[2]!;
    const N = a[3]!;
    const lda = a[7]!;
    const ldb = a[10]!;
    const ldc = a[14]!;
    const batch = a[16]!;
    const one = (i: number, i0: number, i1: number, j0: number, j1: number, preA = 0, preB = 0): void => {
      const A = a[6]! + 4 * (i * a[8]! + (tA ? i0 : i0 * lda));
      const B = a[9]! + 4 * (i * a[11]! + (tB ? j0 * ldb : j0));
      const C = a[13]! + 4 * (i * a[15]! + i0 * ldc + j0);
      const bias = a[17]! && a[17]! + 4 * (i * a[18]! + j0);
      k.sgemm(
        tA,
        tB,
        i1 - i0,
        j1 - j0,
        a[4]!,
        a[5]!,
        A,
        lda,
        B,
        ldb,
        a[12]!,
        C,
        ldc,
        bias,
        a[19]!,
        scratch,
        preA,
        preB,
      );
    };
    if (chunks <= batch) {
      const [b0, b1] = share(batch, 1, chunk, chunks);
      for (let i = b0; i < b1; i++) one(i, 0, M, 0, N);
      return;
    }
    const parts = chunks / batch;
    const i = Math.floor(chunk / parts);
    // A packed shared operand covers the one matrix (batch 1): all of B's columns, or all of A's rows.
    if (M >= N) {
      const [i0, i1] = share(M, GEMM_MR, chunk % parts, parts);
      if (i0 < i1) one(i, i0, i1, 0, N, 0, a[21]!);
    } else {
      const [j0, j1] = share(N, LINE, chunk % parts, parts);
      if (j0 < j1) one(i, 0, M, j0, j1, a[20]!, 0);
    }
  },
};

/**
 * Which operand every chunk of a one-matrix GEMM split over n threads would pack again, so the caller packs
 * it once for all (task gemmPrepack): 1 for B (a row split), 0 for A (a column split), -1 for none (no split,
 * a batch, or chunks that take a direct kernel, which packs nothing). `a` are sgemm's args.
 */
export function sgemmSharedOperand(k: Kernels, a: Float64Array, n: number): -1 | 0 | 1 {
  const chunks = sgemmRunner.chunks(a, n);
  if (a[16] !== 1 || chunks <= 1) return -1;
  const [tA, tB, M, N, K] = [a[0]!, a[1]!, a[2]!, a[3]!, a[4]!];
  if (M < N) return k.gemmPacks(tA, tB, M, K) ? 0 : -1;
  const [i0, i1] = share(M, GEMM_MR, 0, chunks);
  return k.gemmPacks(tA, tB, i1 - i0, K) ? 1 : -1;
}

/**
 * Packs a GEMM operand in sgemm's panel layout (assembly/gemm.ts, gemmPrepack), args: which (0 A, 1 B),
 * trans, src, ld, len (M or N), K, alpha, dst. Chunks are runs of A's row panels or B's column panels.
 */
const gemmPrepackRunner: Runner = {
  chunks: (a, n) => chunkCount(a[4]!, a[0] ? LINE : GEMM_MR, n),
  run(k, a, chunk, chunks) {
    const [s, e] = share(a[4]!, a[0] ? LINE : GEMM_MR, chunk, chunks);
    if (s < e) k.gemmPrepack(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, s, e, a[6]!, a[7]!);
  },
};

/** Flat kernels over args[nIndex] elements: `call` offsets every pointer by `off` bytes. */
function flat(call: (k: Kernels, a: Float64Array, off: number, len: number) => void, nIndex: number): Runner {
  return {
    chunks: (a, n) => chunkCount(a[nIndex]!, LINE, n),
    run(k, a, chunk, chunks) {
      const [s, e] = share(a[nIndex]!, LINE, chunk, chunks);
      if (s < e) call(k, a, 4 * s, e - s);
    },
  };
}

/** Row kernels over the args[rIndex] rows: `call` offsets its pointers to row r0. */
function rows(
  call: (k: Kernels, a: Float64Array, r0: number, count: number) => void,
  rIndex: number,
): Runner {
  return {
    chunks: (a, n) => chunkCount(a[rIndex]!, 1, n),
    run(k, a, chunk, chunks) {
      const [s, e] = share(a[rIndex]!, 1, chunk, chunks);
      if (s < e) call(k, a, s, e - s);
    },
  };
}

/**
 * im2col or col2im (one signature: source, a run of planes [p0, p1), the geometry, destination) over runs of
 * the args[1] planes; the args are the kernel's own with the plane count in place of the run.
 */
function planeRows(name: 'im2col' | 'col2im'): Runner {
  return rows((k, a, p, n) => {
    k[name](
      a[0]!,
      p,
      p + n,
      a[2]!,
      a[3]!,
      a[4]!,
      a[5]!,
      a[6]!,
      a[7]!,
      a[8]!,
      a[9]!,
      a[10]!,
      a[11]!,
      a[12]!,
      a[13]!,
      a[14]!,
    );
  }, 1);
}

/**
 * Kernels over `items(a)` independent work items (tiles): chunk c of n takes items c, c + n, c + 2n, ..., so
 * that with a causal mask, where later query tiles cost more, every chunk gets a mix.
 */
function items(
  count: (a: Float64Array) => number,
  one: (k: Kernels, a: Float64Array, item: number, scratch: number) => void,
): Runner {
  return {
    chunks: (a, n) => chunkCount(count(a), 1, n),
    run(k, a, chunk, chunks, scratch) {
      for (let t = chunk, n = count(a); t < n; t += chunks) one(k, a, t, scratch);
    },
  };
}

/**
 * Attention forward, args: q, k, v, mask, maskKind, maskOff, strideL, strideS, out, lse, B, L, S, E, Ev,
 * scale, causal, bq, bk (pointers in bytes, see assembly/attention.ts). One item per (batch entry, query tile).
 */
const attentionForward = items(
  (a) => a[10]! * Math.ceil(a[11]! / a[17]!),
  (k, a, t, scratch) => {
    const tiles = Math.ceil(a[11]! / a[17]!);
    const b = Math.floor(t / tiles);
    const i0 = (t - b * tiles) * a[17]!;
    k.attnForward(
      a[0]!,
      a[1]!,
      a[2]!,
      a[3]!,
      a[4]!,
      a[5]!,
      a[6]!,
      a[7]!,
      a[8]!,
      a[9]!,
      a[11]!,
      a[12]!,
      a[13]!,
      a[14]!,
      a[15]!,
      a[16]!,
      a[17]!,
      a[18]!,
      b,
      i0,
      scratch,
    );
  },
);

/**
 * Attention backward, args: q, k, v, out, dout, lse, dq, dk, dv, dmask, mask, maskKind, maskOff, strideL,
 * strideS, B, L, S, E, Ev, scale, causal, bq, bk. The KV pass has one item per (batch entry, key tile) and
 * writes dk, dv (dmask); the Q pass one per (batch entry, query tile) and writes dq; the fused pass one per
 * batch entry, all its key tiles in order, writing dq too.
 */
const kvTile = (k: Kernels, a: Float64Array, b: number, j0: number, dq: number, scratch: number) =>
  k.attnBackwardKV(
    a[0]!,
    a[1]!,
    a[2]!,
    a[3]!,
    a[4]!,
    a[5]!,
    dq,
    a[7]!,
    a[8]!,
    a[9]!,
    a[10]!,
    a[11]!,
    a[12]!,
    a[13]!,
    a[14]!,
    a[16]!,
    a[17]!,
    a[18]!,
    a[19]!,
    a[20]!,
    a[21]!,
    a[22]!,
    a[23]!,
    b,
    j0,
    scratch,
  );

const attentionBackwardKV = items(
  (a) => a[15]! * Math.ceil(a[17]! / a[23]!),
  (k, a, t, scratch) => {
    const tiles = Math.ceil(a[17]! / a[23]!);
    const b = Math.floor(t / tiles);
    kvTile(k, a, b, (t - b * tiles) * a[23]!, 0, scratch);
  },
);

const attentionBackwardFused = items(
  (a) => a[15]!,
  (k, a, b, scratch) => {
    for (let j0 = 0; j0 < a[17]!; j0 += a[23]!) kvTile(k, a, b, j0, a[6]!, scratch);
  },
);

const attentionBackwardQ = items(
  (a) => a[15]! * Math.ceil(a[16]! / a[22]!),
  (k, a, t, scratch) => {
    const tiles = Math.ceil(a[16]! / a[22]!);
    const b = Math.floor(t / tiles);
    const i0 = (t - b * tiles) * a[22]!;
    k.attnBackwardQ(
      a[0]!,
      a[1]!,
      a[2]!,
      a[3]!,
      a[4]!,
      a[5]!,
      a[6]!,
      a[10]!,
      a[11]!,
      a[12]!,
      a[13]!,
      a[14]!,
      a[16]!,
      a[17]!,
      a[18]!,
      a[19]!,
      a[20]!,
      a[21]!,
      a[22]!,
      a[23]!,
      b,
      i0,
      scratch,
    );
  },
);

/**
 * scatterAdd, args: dst, src, index (I int32s), outer, D, I, inner: dst (outer, D, inner) gets src (outer, I,
 * inner) added at the indexed rows. Indices repeat (an embedding's tokens), so a chunk owns a run of dst
 * rows: of the outer dim when it is the longer one, else of D (every chunk then reads all of the index and
 * adds the rows it owns), cut at whole cache lines of dst.
 */
const scatterAddRunner: Runner = {
  chunks(a, n) {
    const [outer, D, inner] = [a[3]!, a[4]!, a[6]!];
    return outer >= D
      ? chunkCount(outer, Math.ceil(LINE / (D * inner)), n)
      : chunkCount(D, Math.ceil(LINE / inner), n);
  },
  run(k, a, chunk, chunks) {
    const [outer, D, I, inner] = [a[3]!, a[4]!, a[5]!, a[6]!];
    if (outer >= D) {
      const [s, e] = share(outer, Math.ceil(LINE / (D * inner)), chunk, chunks);
      if (s < e) k.scatterAdd(a[0]!, a[1]!, a[2]!, D, I, inner, s, e, 0, D);
    } else {
      const [s, e] = share(D, Math.ceil(LINE / inner), chunk, chunks);
      if (s < e) k.scatterAdd(a[0]!, a[1]!, a[2]!, D, I, inner, 0, outer, s, e);
    }
  },
};

const runners: { [T in TaskName]: Runner } = {
  sgemm: sgemmRunner,
  gemmPrepack: gemmPrepackRunner,
  binary: flat((k, a, o, len) => k.binary(a[0]!, a[1]! + o, a[2]! + o, a[3]! + o, len), 4),
  binaryRow: rows((k, a, r, R) => {
    const o = 4 * r * a[5]!;
    k.binaryRow(a[0]!, a[1]! + o, a[2]!, a[3]! + o, R, a[5]!);
  }, 4),
  binaryScalar: flat((k, a, o, len) => k.binaryScalar(a[0]!, a[1]! + o, a[2]!, a[3]! + o, len), 4),
  relu: flat((k, a, o, len) => k.relu(a[0]! + o, a[1]! + o, len), 2),
  reluBackward: flat((k, a, o, len) => k.reluBackward(a[0]! + o, a[1]! + o, a[2]! + o, len), 3),
  exp: flat((k, a, o, len) => k.exp(a[0]! + o, a[1]! + o, len), 2),
  // Columns in cache-line units: every chunk sums all rows of its own columns.
  sumAxis0: {
    chunks: (a, n) => chunkCount(a[2]!, LINE, n),
    run(k, a, chunk, chunks) {
      const [s, e] = share(a[2]!, LINE, chunk, chunks);
      if (s < e) k.sumAxis0(a[0]! + 4 * s, a[1]!, e - s, a[2]!, a[3]! + 4 * s);
    },
  },
  sumAxis1: rows((k, a, r, R) => k.sumAxis1(a[0]! + 4 * r * a[2]!, R, a[2]!, a[3]! + 4 * r), 1),
  softmaxCrossEntropy: rows((k, a, r, R) => {
    const o = 4 * r * a[3]!;
    k.softmaxCrossEntropy(a[0]! + o, a[1]! + 4 * r, R, a[3]!, a[4]! + 4 * r, a[5]! && a[5]! + o);
  }, 2),
  softmaxCrossEntropyBackward: rows((k, a, r, R) => {
    const o = 4 * r * a[3]!;
    k.softmaxCrossEntropyBackward(
      a[0]! + o,
      a[1]! + 4 * r,
      R,
      a[3]!,
      a[4]!,
      a[5]! && a[5]! + 4 * r,
      a[6]! + o,
    );
  }, 2),
  attentionForward,
  attentionBackwardKV,
  attentionBackwardQ,
  attentionBackwardFused,
  // args: op, x, out, n.
  unary: flat((k, a, o, len) => k.unary(a[0]!, a[1]! + o, a[2]! + o, len), 3),
  // args: x, lo, hi, out, n.
  clamp: flat((k, a, o, len) => k.clamp(a[0]! + o, a[1]!, a[2]!, a[3]! + o, len), 4),
  // args: out, v, n.
  fill: flat((k, a, o, len) => k.fill(a[0]! + o, a[1]!, len), 2),
  // args: x, s, out, n.
  scale64: flat((k, a, o, len) => k.scale64(a[0]! + o, a[1]!, a[2]! + o, len), 3),
  // args: op, x, R, C, out.
  reduceRows: rows((k, a, r, R) => k.reduceRows(a[0]!, a[1]! + 4 * r * a[3]!, R, a[3]!, a[4]! + 4 * r), 2),
  // args: op, x, R, C, out; columns in cache-line units, every chunk reduces all rows of its columns.
  reduceCols: {
    chunks: (a, n) => chunkCount(a[3]!, LINE, n),
    run(k, a, chunk, chunks) {
      const [s, e] = share(a[3]!, LINE, chunk, chunks);
      if (s < e) k.reduceCols(a[0]!, a[1]! + 4 * s, a[2]!, e - s, a[3]!, a[4]! + 4 * s);
    },
  },
  // args: log, x, R, C, out.
  softmaxRows: rows((k, a, r, R) => {
    const o = 4 * r * a[3]!;
    k.softmaxRows(a[0]!, a[1]! + o, R, a[3]!, a[4]! + o);
  }, 2),
  // args: op, a, b, out (bytes), n; chunks in units of 64 elements (whole cache lines of the byte output).
  compare: {
    chunks: (a, n) => chunkCount(a[4]!, 4 * LINE, n),
    run(k, a, chunk, chunks) {
      const [s, e] = share(a[4]!, 4 * LINE, chunk, chunks);
      if (s < e) k.compare(a[0]!, a[1]! + 4 * s, a[2]! + 4 * s, a[3]! + s, e - s);
    },
  },
  // args: cond (bytes), a, b, out, n.
  select: flat((k, a, o, len) => k.select(a[0]! + o / 4, a[1]! + o, a[2]! + o, a[3]! + o, len), 4),
  // args: isMin, x, R, C, out.
  argReduceRows: rows(
    (k, a, r, R) => k.argReduceRows(a[0]!, a[1]! + 4 * r * a[3]!, R, a[3]!, a[4]! + 4 * r),
    2,
  ),
  // args: x, N, C, S, w, b, eps, out, mean, invstd, relu; chunks are runs of channels.
  bnForward: rows(
    (k, a, c, n) =>
      k.bnForward(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!, c, c + n, a[10]!),
    2,
  ),
  // args: x, dy, N, C, S, w, mean, invstd, dx, dw, db, reluOut; chunks are runs of channels.
  bnBackward: rows((k, a, c, n) => {
    k.bnBackward(
      a[0]!,
      a[1]!,
      a[2]!,
      a[3]!,
      a[4]!,
      a[5]!,
      a[6]!,
      a[7]!,
      a[8]!,
      a[9]!,
      a[10]!,
      c,
      c + n,
      a[11]!,
    );
  }, 3),
  // args: x, planes (N·C), H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, cols; chunks are runs of planes.
  im2col: planeRows('im2col'),
  // args: cols, planes (N·C), H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, dx.
  col2im: planeRows('col2im'),
  // args: x, out, n.
  erf: flat((k, a, o, len) => k.erf(a[0]! + o, a[1]! + o, len), 2),
  // args: a, aStep, b, bStep, out, n (a step of 0: one scalar, not offset).
  pow: flat((k, a, o, len) => k.pow(a[0]! + a[1]! * o, a[1]!, a[2]! + a[3]! * o, a[3]!, a[4]! + o, len), 5),
  scatterAdd: scatterAddRunner,
  // args: p, g, b, n, flags, wd, mu, keep, negLr (b is 0 without momentum).
  sgdUpdate: flat(
    (k, a, o, len) =>
      k.sgdUpdate(a[0]! + o, a[1]! + o, a[2]! && a[2]! + o, len, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!),
    3,
  ),
  // args: p, g, m, v, vmax, n, flags, b1, b2, keep1, keep2, negStepSize, bc2Sqrt, eps, wd, shrink.
  adamUpdate: flat((k, a, o, len) => {
    const [b1, b2, keep1, keep2, step, bc2, eps, wd, shrink] = a.subarray(7, 16);
    k.adamUpdate(
      a[0]! + o,
      a[1]! + o,
      a[2]! + o,
      a[3]! + o,
      a[4]! && a[4]! + o,
      len,
      a[6]!,
      b1!,
      b2!,
      keep1!,
      keep2!,
      step!,
      bc2!,
      eps!,
      wd!,
      shrink!,
    );
  }, 5),
  // args: p, g, sq, ga, buf, n, flags, alpha, keep, eps, wd, mu, negLr (ga, buf 0 when absent).
  rmspropUpdate: flat((k, a, o, len) => {
    const [alpha, keep, eps, wd, mu, negLr] = a.subarray(7, 13);
    k.rmspropUpdate(
      a[0]! + o,
      a[1]! + o,
      a[2]! + o,
      a[3]! && a[3]! + o,
      a[4]! && a[4]! + o,
      len,
      a[6]!,
      alpha!,
      keep!,
      eps!,
      wd!,
      mu!,
      negLr!,
    );
  }, 5),
  // args: p, g, sum, n, flags, eps, wd, negClr.
  adagradUpdate: flat(
    (k, a, o, len) => k.adagradUpdate(a[0]! + o, a[1]! + o, a[2]! + o, len, a[4]!, a[5]!, a[6]!, a[7]!),
    3,
  ),
};

const byId: Runner[] = [];
for (const name of Object.keys(runners) as TaskName[]) byId[Task[name]] = runners[name];

/** Chunks that task `task` with arguments `args` is cut into for n threads (1 when n is 1). */
export function chunksOf(task: number, args: Float64Array, n: number): number {
  return byId[task]!.chunks(args, n);
}

/** Runs chunk `chunk` of `chunks` of task `task`. */
export function runChunk(
  k: Kernels,
  task: number,
  args: Float64Array,
  chunk: number,
  chunks: number,
  scratch: number,
): void {
  byId[task]!.run(k, args, chunk, chunks, scratch);
}
