/**
 * The `wasm` backend: WebAssembly SIMD kernels (runtime.ts) behind the kernel registry. Tensor storage stays
 * in the JavaScript heap (ARCHITECTURE.md, "Memory"); a kernel copies its operands into one reusable scratch
 * region of the wasm memory, runs there (across the thread pool for large work) and copies the result out.
 * Kernels this backend does not register fall back to the reference kernels, listed in `backendInfo()`.
 *
 * Shape legend: B batch entries (broadcast leading dims flattened), M×K @ K×N.
 */
import {
  type AttentionGeometry,
  type AttentionMaskView,
  type KernelTable,
  registerBackend,
  reportUnavailable,
  type View,
} from '../backend.js';
import { gatherMatrix, gemmLayout, gemmSpan } from '../gemm-layout.js';
import { denseOffset, jsKernels, rowOffsets } from '../js/kernels.js';
import { type AttentionArgs, type BinaryOp, initWasm, type WasmRuntime } from './runtime.js';

/**
 * Below this many multiply-adds a GEMM stays in the reference kernel: copying operands in and out and the
 * call itself cost about 1-2 µs, which is what the JS loop needs for ~4k multiply-adds.
 */
export const WASM_MIN_MACS = 4096;
/** Elementwise ops below this many elements stay in JS: the two copies would cost more than the loop saves. */
export const WASM_MIN_ELEMENTWISE = 1 << 14;

let rt: WasmRuntime | undefined;
let scratchPtr = 0;
let scratchBytes = 0;

/** A scratch region of at least `bytes` in wasm memory, reused across calls (grown, never shrunk). */
function scratch(bytes: number): number {
  if (bytes > scratchBytes) {
    if (scratchPtr) rt!.free(scratchPtr);
    scratchBytes = Math.max(bytes, scratchBytes * 2, 1 << 20);
    scratchPtr = rt!.alloc(scratchBytes);
  }
  return scratchPtr;
}

function matmul(a: View, b: View, out: Float32Array): void {
  const r = a.shape.length;
  const [M, K, N] = [a.shape[r - 2]!, a.shape[r - 1]!, b.shape[r - 1]!];
  if (M * N === 0) return;
  if (M * N * K < WASM_MIN_MACS) {
    jsKernels.matmul(a, b, out);
    return;
  }
  let la = gemmLayout(a.strides, M, K);
  let lb = gemmLayout(b.strides, K, N);
  // An operand in no GEMM-able layout (rare: a permuted view) is gathered first.
  if (!la) {
    a = gatherMatrix(a);
    la = { trans: false, ld: K };
  }
  if (!lb) {
    b = gatherMatrix(b);
    lb = { trans: false, ld: N };
  }
  const batch = a.shape.slice(0, -2);
  const aOff = rowOffsets([...batch, 1], [...a.strides.slice(0, -2), 0], a.offset);
  const bOff = rowOffsets([...batch, 1], [...b.strides.slice(0, -2), 0], b.offset);
  const B = aOff.length;
  const sa = gemmSpan(M, K, la);
  const sb = gemmSpan(K, N, lb);
  // Shared operands (weights broadcast over the batch) are copied once.
  const aShared = B > 1 && aOff.every((o) => o === aOff[0]);
  const bShared = B > 1 && bOff.every((o) => o === bOff[0]);
  const na = aShared ? 1 : B;
  const nb = bShared ? 1 : B;
  const base = scratch(4 * (na * sa + nb * sb + B * M * N) + 256);
  const pa = base;
  const pb = pa + 4 * na * sa;
  const pc = pb + 4 * nb * sb;
  const heapA = rt!.f32(pa, na * sa);
  for (let t = 0; t < na; t++) heapA.set((a.data as Float32Array).subarray(aOff[t]!, aOff[t]! + sa), t * sa);
  const heapB = rt!.f32(pb, nb * sb);
  for (let t = 0; t < nb; t++) heapB.set((b.data as Float32Array).subarray(bOff[t]!, bOff[t]! + sb), t * sb);
  rt!.sgemmBatched(
    la.trans,
    lb.trans,
    M,
    N,
    K,
    1,
    pa,
    la.ld,
    aShared ? 0 : sa,
    pb,
    lb.ld,
    bShared ? 0 : sb,
    0,
    pc,
    N,
    M * N,
    B,
  );
  out.set(rt!.f32(pc, B * M * N));
}

const isDense = (v: View) => denseOffset(v) >= 0;

/** Same-shape dense float32 operands run in wasm; anything else (broadcasts, views, ints) in the reference. */
function binary(op: BinaryOp): KernelTable['add'] {
  return (a, b, out) => {
    const n = out.length;
    if (
      n < WASM_MIN_ELEMENTWISE ||
      a.dtype !== 'float32' ||
      b.dtype !== 'float32' ||
      !(out instanceof Float32Array) ||
      !isDense(a) ||
      !isDense(b)
    ) {
      return jsKernels[op](a, b, out);
    }
    const p = scratch(12 * n);
    rt!.f32(p, n).set((a.data as Float32Array).subarray(a.offset, a.offset + n));
    rt!.f32(p + 4 * n, n).set((b.data as Float32Array).subarray(b.offset, b.offset + n));
    rt!.binary(op, p, p + 4 * n, p + 8 * n, n);
    out.set(rt!.f32(p + 8 * n, n));
  };
}

function unaryOp(name: 'relu' | 'exp'): KernelTable['relu'] {
  return (x, out) => {
    const n = out.length;
    if (n < WASM_MIN_ELEMENTWISE || x.dtype !== 'float32' || !isDense(x)) return jsKernels[name](x, out);
    const p = scratch(8 * n);
    rt!.f32(p, n).set((x.data as Float32Array).subarray(x.offset, x.offset + n));
    rt![name](p, p + 4 * n, n);
    out.set(rt!.f32(p + 4 * n, n));
  };
}

/**
 * Lays out one attention call in the scratch region: blocks of `floats` float32s (64-byte aligned) in order,
 * then the mask's storage and its batch offsets. Returns the block pointers and the kernel's arguments (q, k,
 * v being the first three blocks).
 */
function attentionCall(
  g: AttentionGeometry,
  mask: AttentionMaskView | null,
  tiles: [number, number],
  floats: number[],
): { ptr: number[]; args: AttentionArgs } {
  const sizes = [...floats.map((n) => 4 * n), mask ? mask.data.byteLength : 0, mask ? 4 * g.B : 0];
  const ptr: number[] = [];
  let total = 0;
  for (const bytes of sizes) {
    ptr.push(total);
    total += Math.ceil(bytes / 64) * 64;
  }
  const base = scratch(total);
  for (let i = 0; i < ptr.length; i++) ptr[i]! += base;
  const [pMask, pOff] = ptr.slice(-2) as [number, number];
  if (mask) {
    const d = mask.data;
    new Uint8Array(rt!.memory.buffer, pMask, d.byteLength).set(
      new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
    );
    rt!.i32(pOff, g.B).set(mask.batchOffset);
  }
  const args: AttentionArgs = {
    q: ptr[0]!,
    k: ptr[1]!,
    v: ptr[2]!,
    mask: mask ? pMask : 0,
    maskKind: mask ? (mask.additive ? 1 : 2) : 0,
    maskOff: mask ? pOff : 0,
    strideL: mask?.strideL ?? 0,
    strideS: mask?.strideS ?? 0,
    B: g.B,
    L: g.L,
    S: g.S,
    E: g.E,
    Ev: g.Ev,
    scale: g.scale,
    causal: g.causal,
    bq: tiles[0],
    bk: tiles[1],
  };
  return { ptr, args };
}

/** Tiles that fit the kernels' scratch, or null where the reference runs (empty sizes, heads of thousands). */
function attentionTiles(g: AttentionGeometry): [number, number] | null {
  if (g.B * g.L * g.S * g.E * g.Ev === 0) return null;
  return rt!.attentionTiles(g.blockQ, g.blockK, g.E, g.Ev);
}

/** q, k, v are copied into wasm memory; the kernel's own scratch is a fixed block per thread. */
const attentionForward: KernelTable['attentionForward'] = (q, k, v, g, mask, out, lse) => {
  const tiles = attentionTiles(g);
  if (!tiles) return jsKernels.attentionForward(q, k, v, g, mask, out, lse);
  const { ptr, args } = attentionCall(g, mask, tiles, [q.length, k.length, v.length, out.length, lse.length]);
  rt!.f32(args.q, q.length).set(q);
  rt!.f32(args.k, k.length).set(k);
  rt!.f32(args.v, v.length).set(v);
  rt!.attentionForward(args, ptr[3]!, ptr[4]!);
  out.set(rt!.f32(ptr[3]!, out.length));
  lse.set(rt!.f32(ptr[4]!, lse.length));
};

const attentionBackward: KernelTable['attentionBackward'] = (
  q,
  k,
  v,
  out,
  dOut,
  lse,
  g,
  mask,
  dq,
  dk,
  dv,
  dmask,
) => {
  const tiles = attentionTiles(g);
  if (!tiles) return jsKernels.attentionBackward(q, k, v, out, dOut, lse, g, mask, dq, dk, dv, dmask);
  const inputs = [q, k, v, out, dOut, lse];
  const grads = [dq, dk, dv, dmask];
  const { ptr, args } = attentionCall(g, mask, tiles, [
    ...inputs.map((t) => t.length),
    ...grads.map((t) => t?.length ?? 0),
  ]);
  for (let i = 0; i < inputs.length; i++) rt!.f32(ptr[i]!, inputs[i]!.length).set(inputs[i]!);
  if (dmask) rt!.f32(ptr[9]!, dmask.length).set(dmask);
  const [pq, pk, pv, pm] = grads.map((t, i) => (t ? ptr[6 + i]! : 0)) as [number, number, number, number];
  rt!.attentionBackward(args, ptr[3]!, ptr[4]!, ptr[5]!, pq, pk, pv, pm);
  grads.forEach((t, i) => {
    t?.set(rt!.f32(ptr[6 + i]!, t.length));
  });
};

/** Try to enable relaxed SIMD on Node 20 (a V8 flag Node 22+ has on), before the module is compiled. */
function enableRelaxedSimd(): void {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const v8 = proc?.getBuiltinModule?.('node:v8') as { setFlagsFromString(f: string): void } | undefined;
  try {
    v8?.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // An engine without the flag simply runs the plain SIMD kernels.
  }
}

/** Why the wasm backend is unavailable, when it is (shown by backendInfo of the active backend). */
export let wasmUnavailable: string | undefined;

try {
  enableRelaxedSimd();
  rt = initWasm();
  const kernels: Partial<KernelTable> = {
    matmul,
    add: binary('add'),
    sub: binary('sub'),
    mul: binary('mul'),
    div: binary('div'),
    relu: unaryOp('relu'),
    exp: unaryOp('exp'),
    attentionForward,
    attentionBackward,
  };
  registerBackend(
    {
      name: 'wasm',
      priority: 10,
      alloc: (dtype, n) =>
        (dtype === 'float32'
          ? new Float32Array(n)
          : dtype === 'int32'
            ? new Int32Array(n)
            : new Uint8Array(n)) as never,
      describe: () => ({
        kind: 'WebAssembly SIMD',
        relaxedSimd: rt!.features.relaxedSimd,
        sharedMemory: rt!.features.sharedMemory,
        threads: rt!.threads,
      }),
    },
    kernels,
  );
} catch (e) {
  wasmUnavailable = (e as Error).message;
  reportUnavailable('wasm', wasmUnavailable);
}

/** The wasm runtime (undefined where WebAssembly SIMD is unavailable): threads can be set here. */
export function wasmRuntime(): WasmRuntime | undefined {
  return rt;
}
