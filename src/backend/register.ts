/**
 * Registers every backend this platform can run: the reference `js` backend always, `wasm` where the engine
 * has WebAssembly SIMD, `native` on Node where a system BLAS loads through koffi (each outranks the one before
 * and becomes the default; native takes its missing kernels from wasm, wasm from js).
 */
import './js/kernels.js';
import './wasm/backend.js';
import './native/backend.js';
