/**
 * Runs bench/peers/peer.py (NumPy and PyTorch, where installed) and returns its JSON. Nothing is installed:
 * without python3 or a package the result says what was skipped and why.
 */
import { spawnSync } from 'node:child_process';
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

export function runPython(cfg: PyConfig, timeoutMs: number): PyResult {
  const env = { ...process.env };
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
  const r = spawnSync('python3', [SCRIPT, JSON.stringify(cfg)], {
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
