/**
 * A dataset module that, like a training script holding its own Dataset class, runs a DataLoader with
 * workers at its top level. Each worker imports it and so runs that loop too, which would start workers
 * importing it again, without end. The loop runs only inside workers, so that the test importing this
 * module in the main thread starts nothing by doing so.
 */
import { DataLoader } from '../../src/data/dataloader.js';
import type { Dataset, ModuleSpec } from '../../src/data/dataset.js';
import { workerInfo } from '../../src/data/dataset.js';

export class Script implements Dataset<number> {
  readonly length = 4;
  readonly spec: ModuleSpec = { module: import.meta.url, export: 'Script', args: [] };

  getItem(i: number): number {
    return i;
  }
}

if (workerInfo()) for await (const _ of new DataLoader(new Script(), { batchSize: 2, numWorkers: 1 }));
