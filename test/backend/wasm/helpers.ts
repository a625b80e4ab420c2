/** Float64 references and checks for the wasm kernel tests (shapes as in src/backend/wasm/runtime.ts). */
import assert from 'node:assert/strict';
import {
  backendInfo,
  getBackend,
  type KernelTable,
  kernels,
  setBackend,
} from '../../../src/backend/backend.js';
import { WASM_MIN_ELEMENTWISE, wasmRuntime } from '../../../src/backend/wasm/backend.js';
import { ELEMENTWISE_MIN_PER_THREAD, type WasmRuntime } from '../../../src/backend/wasm/runtime.js';

/** The wasm backend's kernel table and backend info, read once; the active backend is restored. */
export function wasmKernelTable(): { wasm: KernelTable; info: ReturnType<typeof backendInfo> } {
  const prev = getBackend();
  setBackend('wasm');
  const out = { wasm: kernels(), info: backendInfo() };
  setBackend(prev);
  // With native active its base's kernels run on the caller (WasmRuntime.callerOnly); these tests exercise
  // the wasm kernels on the pool as well.
  const rt = wasmRuntime();
  if (rt) rt.callerOnly = false;
  return out;
}

/** Sizes around the elementwise threshold: the reference path, the wasm path, and a split across threads. */
export const ELEMENTWISE_SIZES = [
  WASM_MIN_ELEMENTWISE - 3,
  WASM_MIN_ELEMENTWISE,
  WASM_MIN_ELEMENTWISE + 5,
  2 * ELEMENTWISE_MIN_PER_THREAD + 7,
];

/** Deterministic uniform floats in [-1, 1). */
export function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

/** Copies `data` into a fresh block of the runtime's memory; returns the pointer. */
export function put(rt: WasmRuntime, data: Float32Array | Int32Array): number {
  const ptr = rt.alloc(data.byteLength);
  (data instanceof Int32Array ? rt.i32(ptr, data.length) : rt.f32(ptr, data.length)).set(data);
  return ptr;
}

export interface GemmCase {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  /** Extra elements per row of A, B and C storage (views into wider matrices). */
  pad?: number;
  bias?: boolean;
  relu?: boolean;
}

/**
 * Runs one GEMM on the runtime and compares it with a float64 triple loop. The error of each element is
 * measured against sum_k |alpha·a·b| + |beta·c| + |bias|, the scale f32 rounding works on, so results that
 * cancel to nearly zero are judged fairly. Returns the largest such relative difference.
 */
export function checkGemm(rt: WasmRuntime, g: GemmCase, seed = 1): number {
  const { transA, transB, M, N, K, alpha, beta, pad = 0 } = g;
  const [ar, ac] = transA ? [K, M] : [M, K];
  const [br, bc] = transB ? [N, K] : [K, N];
  const lda = ac + pad;
  const ldb = bc + pad;
  const ldc = N + pad;
  const A = rand(ar * lda, seed);
  const B = rand(br * ldb, seed + 1);
  const C = rand(M * ldc, seed + 2);
  const bias = rand(N, seed + 3);
  const pa = put(rt, A);
  const pb = put(rt, B);
  const pc = put(rt, C);
  const pbias = put(rt, bias);
  rt.sgemm(transA, transB, M, N, K, alpha, pa, lda, pb, ldb, beta, pc, ldc, {
    bias: g.bias ? pbias : 0,
    relu: g.relu,
  });
  const got = rt.f32(pc, M * ldc).slice();
  let worst = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let sum = 0;
      let scale = 0;
      for (let k = 0; k < K; k++) {
        const p = alpha * A[transA ? k * lda + i : i * lda + k]! * B[transB ? j * ldb + k : k * ldb + j]!;
        sum += p;
        scale += Math.abs(p);
      }
      if (beta !== 0) {
        sum += beta * C[i * ldc + j]!;
        scale += Math.abs(beta * C[i * ldc + j]!);
      }
      if (g.bias) {
        sum += bias[j]!;
        scale += Math.abs(bias[j]!);
      }
      if (g.relu) sum = Math.max(sum, 0);
      worst = Math.max(worst, Math.abs(got[i * ldc + j]! - sum) / Math.max(scale, 1e-30));
    }
    for (let j = N; j < ldc; j++) assert.equal(got[i * ldc + j], C[i * ldc + j], 'padding of C was written');
  }
  for (const p of [pa, pb, pc, pbias]) rt.free(p);
  return worst;
}

/**
 * Asserts |got - want| <= tol·max(floor, |want|) elementwise (non-finite values must match exactly) and
 * prints the largest difference (llm.c style). floor 1 makes it absolute for small values.
 */
export function assertClose(
  label: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  floor = 1,
): void {
  assert.equal(got.length, want.length, `${label}: length`);
  let maxdiff = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (Number.isNaN(w) || !Number.isFinite(w)) {
      assert.ok(
        Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)),
        `${label}[${i}]: got ${g}, want ${w}`,
      );
      continue;
    }
    const d = Math.abs(g - w) / Math.max(floor, Math.abs(w));
    assert.ok(d <= tol, `${label}[${i}]: got ${g}, want ${w} (relative difference ${d})`);
    maxdiff = Math.max(maxdiff, d);
  }
  console.log(`${label}: OK maxdiff=${maxdiff.toExponential(2)}`);
}
