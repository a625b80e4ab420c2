/**
 * `train --report FILE.html`: one self-contained page (inline SVG, no scripts, no network) with the loss and
 * accuracy curves, the learning-rate schedule and the run's summary. Written atomically.
 */
import { atomicWriteFile } from '../io/atomic.js';
import type { Schedule } from '../optim/schedules.js';
import { lineCharts, type Row, renderSvg } from '../profile/plot.js';
import type { EpochLog } from '../train/fit.js';

const esc = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** An HTML table from rows of the same keys. */
export function htmlTable(rows: Row[]): string {
  if (!rows.length) return '';
  const keys = Object.keys(rows[0]!);
  const cell = (v: number | string) =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : esc(v);
  return `<table><tr>${keys.map((k) => `<th>${esc(k)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${keys.map((k) => `<td>${cell(r[k]!)}</td>`).join('')}</tr>`).join('')}</table>`;
}

export function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}svg{max-width:100%}
</style></head><body><h1>${esc(title)}</h1>${body}</body></html>`;
}

export async function writeReport(
  path: string,
  r: {
    title: string;
    result: Record<string, number | string>;
    history: EpochLog[];
    schedule: Schedule;
    updates: number;
  },
): Promise<void> {
  const curves = r.history.map((e) => ({
    epoch: e.epoch,
    train_loss: e.trainLoss,
    test_loss: e.valLoss ?? Number.NaN,
    train_accuracy: e.trainAccuracy,
    test_accuracy: e.valAccuracy ?? Number.NaN,
  }));
  const lossSvg = await renderSvg(
    lineCharts(curves, 'epoch', [
      { field: 'train_loss', title: 'train loss' },
      { field: 'test_loss', title: 'test loss' },
      { field: 'test_accuracy', title: 'test accuracy' },
    ]),
  );
  const every = Math.max(1, Math.floor(r.updates / 200));
  const lrRows = Array.from({ length: Math.ceil(r.updates / every) }, (_, i) => ({
    step: i * every,
    lr: r.schedule(i * every),
  }));
  const lrSvg = await renderSvg(
    lineCharts(lrRows, 'step', [{ field: 'lr', title: 'learning rate' }], { xTitle: 'optimizer update' }),
  );
  const summary = Object.entries(r.result).map(([key, value]) => ({ key, value }));
  const body = `<h2>Summary</h2>${htmlTable(summary)}<h2>Loss and accuracy</h2>${lossSvg}<h2>Learning-rate schedule</h2>${lrSvg}<h2>Epochs</h2>${htmlTable(curves)}`;
  await atomicWriteFile(path, page(r.title, body));
}
