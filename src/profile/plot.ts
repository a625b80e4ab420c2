/**
 * Charts as self-contained SVG, from Vega-Lite specs rendered headless in Node (no browser, no canvas).
 *
 * Vega and Vega-Lite load at the first render, not with this module: the CLI imports it, and with them in
 * the heap V8 ran a mark-compact every ~10 ms of training (90 against 7-9 over six epochs), its concurrent
 * marking on the core OpenBLAS's second thread works on: the native epoch at batch 512 ran 54-65k samples/s
 * instead of 78-100k.
 */
import type * as vl from 'vega-lite';

export type Row = Record<string, number | string>;

/** Render a Vega-Lite spec (data inlined) to an SVG string. */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * One line chart per metric, side by side, against a shared x field (log scale optional).
 * @example await lineCharts(rows, 'batch_size', [{ field: 'samples_per_sec', title: 'samples/s' }], { logX: true })
 */
export function lineCharts(
  rows: readonly object[],
  x: string,
  metrics: { field: string; title: string; log?: boolean }[],
  { logX = false, xTitle = x, title = '' }: { logX?: boolean; xTitle?: string; title?: string } = {},
): vl.TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    ...(title && { title }),
    data: { values: rows },
    hconcat: metrics.map((m) => ({
      width: 300,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: x,
          type: 'quantitative',
          title: xTitle,
          scale: logX ? { type: 'log', base: 2 } : { zero: false },
          // Epochs, steps and batch sizes are integers: no ticks at 1.5.
          axis: { tickMinStep: 1, format: 'd' },
        },
        y: {
          field: m.field,
          type: 'quantitative',
          title: m.title,
          scale: m.log ? { type: 'log' } : { zero: false },
        },
      },
    })),
  } as vl.TopLevelSpec;
}
