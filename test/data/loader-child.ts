/**
 * Child process for the DataLoader exit test: leaves workers behind in the three ways a program can (a loop
 * broken early, persistent workers never closed, an iterator dropped after one batch), prints 'done' and
 * returns. The process must then exit by itself, promptly.
 */
import '../../src/index.js';
import { DataLoader } from '../../src/data/dataloader.js';
import { Range } from './loader-datasets.js';

const options = { batchSize: 4, numWorkers: 2 };
for await (const _ of new DataLoader(new Range(400, { delays: [1] }), options)) break;

const persistent = new DataLoader(new Range(16), { ...options, persistentWorkers: true });
for await (const _ of persistent);

const dropped = new DataLoader(new Range(400, { delays: [1] }), options)[Symbol.asyncIterator]();
await dropped.next();

console.log('done');
