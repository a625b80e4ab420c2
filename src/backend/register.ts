/**
 * Registers every backend this platform can run: the reference `js` backend always, `wasm` where the engine
 * has WebAssembly SIMD (it then becomes the default, having the higher priority).
 */
import './js/kernels.js';
import './wasm/backend.js';
