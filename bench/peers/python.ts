/**
 * Runs bench/peers/peer.py (NumPy and PyTorch, where installed) and returns its JSON. Nothing is installed:
 * without python3 or a package the result says what was skipped and why.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The script sits next to this file's source (bench/peers/), two levels above the compiled build/bench/peers. */
const SCRIPT = fileURLToPath(new URL('../../../bench/peers/peer.py', import.meta.url));

export interface PyTiming {
  ms: number;
  minMs: number;
  maxMs: number;
  runs: number;
  reps: number;
}

export interface PyResult {
  python?: string;
  numpy?: { version: string; blas: string };
  torch?: { version: string; threads: number };
  skipped: Record<string, string>;
  gemmNumpy?: ({ shape: [number, number, number] } & PyTiming)[];
  gemmTorch?: ({ shape: [number, number, number] } & PyTiming)[];
  tinyNumpy?: Record<'add' | 'matmul', PyTiming>;
  tinyTorch?: Record<'add' | 'matmul', PyTiming>;
  mlpTorch?: {
    model: string;
    batch: number;
    seed: number;
    maxSamples: number;
    samples: number;
    seconds: number;
    accuracy: number | null;
  }[];
  inferTorch?: ({ batch: number } & PyTiming)[];
}

export interface PyConfig {
  sections: string[];
  /** Threads for BLAS and torch; all cores when left out. */
  threads?: number;
  /** Skip torch entirely (e.g. a NumPy-only run). */
  torch?: boolean;
  gemmShapes?: [number, number, number][];
  dataDir?: string;
  mlp?: { model: string; batch: number; maxSamples: number; seed: number }[];
  inferBatches?: number[];
}

/**
 * The interpreter: MINIBATCH_BENCH_PYTHON if set, else the first of `python3` (PATH) and the system's
 * /usr/bin/python3 that imports torch (Debian's python3-torch lives in the system interpreter, which a pyenv or
 * venv python3 on PATH hides), else the first that imports numpy, else `python3`. Probed once.
 */
let interpreter: string | undefined;
function python(): string {
  if (interpreter) return interpreter;
  const fromEnv = process.env.MINIBATCH_BENCH_PYTHON;
  if (fromEnv) return (interpreter = fromEnv);
  const candidates = ['python3', '/usr/bin/python3'];
  const has = (exe: string, mod: string) =>
    spawnSync(exe, ['-c', `import ${mod}`], { stdio: 'ignore', timeout: 60_000 }).status === 0;
  interpreter =
    candidates.find((c) => has(c, 'torch')) ?? candidates.find((c) => has(c, 'numpy')) ?? 'python3';
  return interpreter;
}

/**
 * Debian's OpenBLAS has a pthread and an OpenMP build; PyTorch runs its own OpenMP threads, and the pthread
 * build's threads fight them, so torch gets the OpenMP build where it is installed. Debian's 0.3.21 also
 * misdetects recent CPUs (see src/backend/native/blas.ts): the core minibatch chose is passed on.
 */
const OPENMP_OPENBLAS = '/usr/lib/x86_64-linux-gnu/openblas-openmp';

export function runPython(cfg: PyConfig, timeoutMs: number, blasCore?: string): PyResult {
  const env = { ...process.env };
  if (existsSync(OPENMP_OPENBLAS)) {
    env.LD_LIBRARY_PATH = [OPENMP_OPENBLAS, env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  }
  if (blasCore && !env.OPENBLAS_CORETYPE) env.OPENBLAS_CORETYPE = blasCore;
  if (cfg.threads !== undefined) {
    for (const v of [
      'OMP_NUM_THREADS',
      'OPENBLAS_NUM_THREADS',
      'MKL_NUM_THREADS',
      'VECLIB_MAXIMUM_THREADS',
    ]) {
      env[v] = String(cfg.threads);
    }
  }
  const r = spawnSync(python(), [SCRIPT, JSON.stringify(cfg)], {
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 1 << 24,
  });
  if (r.error) {
    const why = (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'python3 not found' : r.error.message;
    return { skipped: { numpy: why, torch: why } };
  }
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as PyResult;
  } catch {
    const why = `peer.py failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`;
    return { skipped: { numpy: why, torch: why } };
  }
}
