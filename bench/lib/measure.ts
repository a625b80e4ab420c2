/**
 * Timing helpers shared by every peer of the benchmark runner (bench/run.ts): the same warm-up, repetition
 * and median rules for minibatch and for the libraries it is compared with.
 */

export interface Timing {
  /** Median milliseconds per call over the timed runs. */
  ms: number;
  /** Fastest and slowest run, ms per call. */
  minMs: number;
  maxMs: number;
  /** Timed runs, and calls in each. */
  runs: number;
  reps: number;
}

export interface TimeOptions {
  /** Timed runs (default 5; 3 when one call takes over `slowMs`). */
  runs?: number;
  /** A run repeats the call until it lasts about this long (default 150 ms). */
  minRunMs?: number;
  /** Untimed calls before timing, for JIT tier-up and caches, after calibration (default: 100 ms worth). */
  warmupMs?: number;
  /** Above this many ms per call, do 3 runs of one call each (default 400). */
  slowMs?: number;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Median ms per call of `fn`. Calibration doubles the calls per batch until a batch lasts a quarter of
 * `minRunMs` (so even sub-microsecond calls are timed over many calls, not against the timer's resolution),
 * then warm-up calls for `warmupMs`, then `runs` runs of about `minRunMs` each. A call slower than `slowMs`
 * is instead timed 3 times, once each, after the calibration call that served as warm-up.
 */
export function timeCalls(fn: () => void, opts: TimeOptions = {}): Timing {
  const { minRunMs = 150, warmupMs = 100, slowMs = 400 } = opts;
  const batch = (reps: number) => {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    return performance.now() - t0;
  };
  let reps = 1;
  let t = batch(1); // the first call also pays for compilation and first allocations
  if (t <= slowMs) t = batch(1);
  if (t > slowMs) return summarize([batch(1), batch(1), batch(1)], 1);
  while (t < minRunMs / 4 && reps < 1 << 26) {
    reps *= 2;
    t = batch(reps);
  }
  const perCall = Math.max(t / reps, 1e-6);
  batch(Math.ceil(warmupMs / perCall));
  reps = Math.max(1, Math.round(minRunMs / perCall));
  const runs = opts.runs ?? 5;
  const perRun: number[] = [];
  for (let r = 0; r < runs; r++) perRun.push(batch(reps) / reps);
  return summarize(perRun, reps);
}

function summarize(perCall: number[], reps: number): Timing {
  return {
    ms: median(perCall),
    minMs: Math.min(...perCall),
    maxMs: Math.max(...perCall),
    runs: perCall.length,
    reps,
  };
}

/** A number with about three significant digits, thousands separated: 12,345 / 123 / 12.3 / 1.23 / 0.123. */
export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

/** A speed ratio: `2.4×`. */
export const fmtRatio = (r: number | undefined): string =>
  r === undefined || !Number.isFinite(r) ? '' : `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}×`;

/** A Markdown table; the first column left-aligned, the others right-aligned. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...rows.map((r) => line(header.map((_, i) => r[i] ?? '')))].join('\n');
}
