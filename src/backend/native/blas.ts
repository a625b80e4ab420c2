/**
 * The machine's BLAS through the `koffi` FFI: find a CBLAS library at run time (OpenBLAS, MKL or BLIS on
 * Linux, Accelerate on macOS, or the one `MINIBATCH_BLAS` / the `library` option names), and call
 * `cblas_sgemm` directly on Float32Array storage (koffi passes a TypedArray as a pointer to its bytes: no copy).
 *
 * OpenBLAS builds older than the processor misdetect it and run a generic core several times slower (Debian's
 * 0.3.21 on some newer CPUs picks `Prescott`). Unless the user set `OPENBLAS_CORETYPE`, the core is chosen here
 * from the CPU's flags and put in the environment just for the `dlopen` (OpenBLAS reads it while loading).
 *
 * Node only: Node modules are reached through `process.getBuiltinModule`, koffi through a dynamic import whose
 * specifier bundlers do not follow, so a browser bundle neither breaks nor carries any of this.
 */

/** The part of koffi used here (typed locally: koffi is an optional dependency). */
export interface Koffi {
  load(path: string): KoffiLib;
}
interface KoffiLib {
  func(declaration: string): (...args: unknown[]) => unknown;
}

/** CBLAS enums (the same values in every CBLAS). */
const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

export interface Blas {
  /** The name or path that loaded. */
  readonly library: string;
  readonly vendor: 'OpenBLAS' | 'MKL' | 'BLIS' | 'Accelerate' | 'CBLAS';
  /** OpenBLAS only: `openblas_get_config()`, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell MAX_THREADS=64`. */
  readonly config: string | undefined;
  /** OpenBLAS only: the core it runs (`openblas_get_corename()`) and how it was chosen (or what went wrong). */
  readonly core: string | undefined;
  readonly coreNote: string | undefined;
  /** Threads last set (0 where the library has no call for it: Accelerate). */
  readonly threads: number;
  setThreads(n: number): void;
  /** Row-major C = alpha·op(A)·op(B) + beta·C on Float32Arrays (pass `subarray(offset)` for an offset). */
  sgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    A: Float32Array,
    lda: number,
    B: Float32Array,
    ldb: number,
    beta: number,
    C: Float32Array,
    ldc: number,
  ): void;
  /** y += alpha·x and x ·= alpha over n contiguous floats (level 1; absent where the library lacks them). */
  saxpy?(n: number, alpha: number, x: Float32Array, y: Float32Array): void;
  sscal?(n: number, alpha: number, x: Float32Array): void;
  /**
   * Row-major y (rows or cols) = alpha·op(A)·x + beta·y with A (rows, cols) of leading dimension lda, op(A) = A
   * or Aᵀ; x every incx-th float (level 2; absent where the library lacks it).
   */
  sgemv?(
    trans: boolean,
    rows: number,
    cols: number,
    alpha: number,
    A: Float32Array,
    lda: number,
    x: Float32Array,
    incx: number,
    beta: number,
    y: Float32Array,
  ): void;
}

/** Library names tried in order, per platform (the first that loads and has `cblas_sgemm` wins). */
const LIBRARIES: Record<string, Record<string, string[]>> = {
  linux: {
    openblas: ['libopenblas.so.0', 'libopenblas.so'],
    mkl: ['libmkl_rt.so.2', 'libmkl_rt.so'],
    blis: ['libblis.so.4', 'libblis.so'],
  },
  darwin: {
    accelerate: ['/System/Library/Frameworks/Accelerate.framework/Accelerate'],
    openblas: [
      'libopenblas.dylib',
      '/opt/homebrew/opt/openblas/lib/libopenblas.dylib',
      '/usr/local/opt/openblas/lib/libopenblas.dylib',
    ],
  },
  win32: { openblas: ['libopenblas.dll', 'openblas.dll'], mkl: ['mkl_rt.2.dll', 'mkl_rt.dll'] },
};
// Other POSIX systems koffi covers (the BSDs) name libraries as Linux does.
for (const os of ['freebsd', 'openbsd']) LIBRARIES[os] = { openblas: LIBRARIES.linux!.openblas! };

/**
 * The library names to try for `request` (a path, a file name, or one of `openblas`, `mkl`, `blis`,
 * `accelerate`); with no request, every known library of the platform in order of preference. The plain
 * reference BLAS (`libblas.so.3`) is never tried by default: it runs slower than the wasm kernels.
 */
export function blasCandidates(platform: string, request?: string): string[] {
  const known = LIBRARIES[platform] ?? {};
  if (request) return known[request.toLowerCase()] ?? [request];
  return Object.values(known).flat();
}

/**
 * The OpenBLAS core (`OPENBLAS_CORETYPE`) for the CPU described by `/proc/cpuinfo`, from its `flags` line;
 * undefined where there is none (not x86: OpenBLAS detects ARM and others well). The widest vector ISA the
 * CPU has picks the kernels: AVX-512 (F, VL, BW, DQ) SkylakeX, AVX2 with FMA Haswell (also right for AMD Zen,
 * whose OpenBLAS kernels are Haswell's), AVX Sandybridge, SSE4.2 Nehalem, SSSE3 Core2, else Prescott.
 */
export function coreTypeFor(cpuinfo: string): string | undefined {
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo);
  if (!line) return undefined;
  const flags = new Set(line[1]!.trim().split(/\s+/));
  const all = (...f: string[]) => f.every((x) => flags.has(x));
  if (all('avx512f', 'avx512vl', 'avx512bw', 'avx512dq', 'avx2', 'fma')) return 'SkylakeX';
  if (all('avx2', 'fma')) return 'Haswell';
  if (all('avx')) return 'Sandybridge';
  if (all('sse4_2')) return 'Nehalem';
  if (all('ssse3')) return 'Core2';
  return 'Prescott';
}

interface NodeProcess {
  platform: string;
  env: Record<string, string | undefined>;
  getBuiltinModule?: (id: string) => unknown;
}

/** The Node process, or undefined (a browser); Node before 20.16 lacks `getBuiltinModule`. */
export function nodeProcess(): NodeProcess | undefined {
  const p = (globalThis as { process?: NodeProcess & { versions?: { node?: string } } }).process;
  return p?.versions?.node ? p : undefined;
}

/** Import koffi; throws a plain reason where it is missing or does not cover this platform. */
export async function importKoffi(): Promise<Koffi> {
  const spec = 'koffi'; // Not a literal in the import: bundlers leave it alone.
  try {
    const m = (await import(spec)) as { default?: Koffi } & Koffi;
    return m.default ?? m;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    throw new Error(
      (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND'
        ? 'the koffi package is not installed (npm install koffi)'
        : `koffi does not load on this platform (${msg})`,
    );
  }
}

/** Read a small text file (`/proc/...`); undefined when it cannot be read. */
function readText(proc: NodeProcess, path: string): string | undefined {
  const fs = proc.getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined;
  try {
    return fs?.readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Declare an optional function; undefined where the library lacks it. */
function optional(lib: KoffiLib, declaration: string): ((...args: unknown[]) => unknown) | undefined {
  try {
    return lib.func(declaration);
  } catch {
    return undefined;
  }
}

/**
 * Keeps a loaded library in memory until the process ends (glibc's dlopen with RTLD_NODELETE): koffi unloads
 * its libraries as Node exits, and a library whose worker threads outlive that (the OpenMP OpenBLAS: libgomp's
 * threads) then crashes the exit with a segfault: 25 of 25 runs of a 2-thread GEMM script, 0 of 25 pinned.
 * Best effort (Linux): where the call is missing, nothing changes.
 */
function pin(lib: KoffiLib, name: string): void {
  // dlopen is looked up through the library's own handle (it links libc), so no other library is loaded.
  const dlopen = optional(lib, 'void *dlopen(const char *filename, int flags)');
  dlopen?.(name, RTLD_NOW | RTLD_NODELETE);
}
const RTLD_NOW = 2;
const RTLD_NODELETE = 0x1000;

/**
 * Tensor storage is malloc'ed (V8's array buffers) and freed only when the GC collects the tensors, many at
 * once. glibc then gives the freed top of its heap back to the OS (trim threshold 128 KiB by default) and maps
 * blocks of 128 KiB and more afresh (mmap), so op outputs keep faulting their pages in again: relu of a
 * 512×256 tensor took 30-40 page faults per call and 170-210 µs (median of 7 × 500 calls) against 0.5 and
 * 106 µs with this change; a 128×784×256 `linear` 5-10 faults per call. PyTorch frees each tensor at once and
 * glibc reuses the block. Here glibc keeps up to 128 MiB free at the heap top (more than V8 lets external
 * memory grow between collections) and serves blocks up to 32 MiB (its maximum) from the heap: the resident
 * size stays at its peak instead of following each collection down. Skipped where the user tuned malloc
 * (`GLIBC_TUNABLES`, `MALLOC_*_`); musl's mallopt does nothing.
 */
function keepFreedHeap(lib: KoffiLib, proc: NodeProcess): void {
  const env = proc.env;
  if (/glibc\.malloc/.test(env.GLIBC_TUNABLES ?? '') || Object.keys(env).some((k) => /^MALLOC_.*_$/.test(k)))
    return;
  const mallopt = optional(lib, 'int mallopt(int param, int value)');
  if (!mallopt) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
}
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

/**
 * Load the first BLAS of the candidates that has `cblas_sgemm` and computes a 2×2 product right (which also
 * catches a 64-bit-integer build whose ints do not match). Throws one message listing each failure.
 */
export function loadBlas(koffi: Koffi, proc: NodeProcess, request?: string): Blas {
  const candidates = blasCandidates(proc.platform, request);
  // Choose the OpenBLAS core before any dlopen (the choice is harmless to MKL and BLIS, which ignore it).
  const userCore = proc.env.OPENBLAS_CORETYPE || undefined;
  const cpuinfo = proc.platform === 'linux' && !userCore ? readText(proc, '/proc/cpuinfo') : undefined;
  const chosen = cpuinfo ? coreTypeFor(cpuinfo) : undefined;
  const maps = proc.platform === 'linux' ? readText(proc, '/proc/self/maps') : undefined;
  const preloaded = maps !== undefined && /libopenblas/.test(maps);
  const failures: string[] = [];
  for (const name of candidates) {
    let lib: KoffiLib;
    if (chosen) proc.env.OPENBLAS_CORETYPE = chosen;
    try {
      lib = koffi.load(name);
    } catch (e) {
      failures.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    } finally {
      // Only the dlopen needs it: child processes (another program's OpenBLAS) keep their own detection.
      if (chosen) delete proc.env.OPENBLAS_CORETYPE;
    }
    const sgemm = optional(
      lib,
      'void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)',
    );
    if (!sgemm) {
      failures.push(`${name}: has no cblas_sgemm`);
      continue;
    }
    const c = new Float32Array(4);
    sgemm(
      ROW_MAJOR,
      NO_TRANS,
      TRANS,
      2,
      2,
      2,
      1,
      Float32Array.of(1, 2, 3, 4),
      2,
      Float32Array.of(5, 6, 7, 8),
      2,
      0,
      c,
      2,
    );
    if (c.join() !== '17,23,39,53') {
      failures.push(
        `${name}: cblas_sgemm computed [${c.join(', ')}], not [17, 23, 39, 53] (an ILP64 build?)`,
      );
      continue;
    }
    if (proc.platform === 'linux') {
      pin(lib, name);
      keepFreedHeap(lib, proc);
    }
    return wrap(lib, name, sgemm, { userCore, chosen, preloaded });
  }
  throw new Error(`no BLAS library could be loaded (${failures.join('; ')})`);
}

function wrap(
  lib: KoffiLib,
  library: string,
  sgemm: (...args: unknown[]) => unknown,
  core: { userCore: string | undefined; chosen: string | undefined; preloaded: boolean },
): Blas {
  const axpy = optional(
    lib,
    'void cblas_saxpy(int n, float alpha, const float *x, int incx, float *y, int incy)',
  );
  const scal = optional(lib, 'void cblas_sscal(int n, float alpha, float *x, int incx)');
  const gemv = optional(
    lib,
    'void cblas_sgemv(int order, int trans, int M, int N, float alpha, const float *A, int lda, const float *x, int incx, float beta, float *y, int incy)',
  );
  const corename = optional(lib, 'const char *openblas_get_corename(void)');
  const getConfig = optional(lib, 'const char *openblas_get_config(void)');
  const openblasThreads = optional(lib, 'void openblas_set_num_threads(int n)');
  const mklThreads = optional(lib, 'void MKL_Set_Num_Threads(int n)');
  const blisThreads = optional(lib, 'void bli_thread_set_num_threads(int64_t n)');
  const setNum = openblasThreads ?? mklThreads ?? blisThreads;
  const vendor: Blas['vendor'] = corename
    ? 'OpenBLAS'
    : mklThreads
      ? 'MKL'
      : blisThreads
        ? 'BLIS'
        : /Accelerate/.test(library)
          ? 'Accelerate'
          : 'CBLAS';
  const running = corename ? String(corename()) : undefined;
  let coreNote: string | undefined;
  if (running) {
    const same = (a: string | undefined) => a !== undefined && a.toLowerCase() === running.toLowerCase();
    if (core.userCore) coreNote = `OPENBLAS_CORETYPE=${core.userCore} (set by the user)`;
    else if (!core.chosen) coreNote = 'detected by OpenBLAS';
    else if (same(core.chosen))
      coreNote = `chosen by minibatch from the CPU flags (OPENBLAS_CORETYPE=${core.chosen})`;
    else if (core.preloaded)
      coreNote = `WRONG: OpenBLAS was already loaded in this process with core ${running} before minibatch could choose ${core.chosen}; start node with OPENBLAS_CORETYPE=${core.chosen}`;
    else
      coreNote = `WRONG: minibatch chose ${core.chosen} from the CPU flags but this OpenBLAS runs ${running} (a build without that core?)`;
  }
  let threads = 0;
  return {
    library,
    vendor,
    config: getConfig ? String(getConfig()).trim() : undefined,
    core: running,
    coreNote,
    get threads() {
      return threads;
    },
    setThreads(n: number) {
      if (!setNum || n === threads) return;
      setNum(n);
      threads = n;
    },
    ...(axpy && scal
      ? {
          saxpy: (n: number, alpha: number, x: Float32Array, y: Float32Array) =>
            void axpy(n, alpha, x, 1, y, 1),
          sscal: (n: number, alpha: number, x: Float32Array) => void scal(n, alpha, x, 1),
        }
      : {}),
    ...(gemv
      ? {
          sgemv: (trans, rows, cols, alpha, A, lda, x, incx, beta, y) =>
            void gemv(ROW_MAJOR, trans ? TRANS : NO_TRANS, rows, cols, alpha, A, lda, x, incx, beta, y, 1),
        }
      : {}),
    sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) {
      sgemm(
        ROW_MAJOR,
        transA ? TRANS : NO_TRANS,
        transB ? TRANS : NO_TRANS,
        M,
        N,
        K,
        alpha,
        A,
        lda,
        B,
        ldb,
        beta,
        C,
        ldc,
      );
    },
  };
}
