/**
 * The `minibatch` command line: train, profile, find-batch-size, bench. Libraries throw; this is the one place
 * errors become a single line on stderr and a non-zero exit code (the stack only with --verbose).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { backendInfo } from '../backend/backend.js';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { MinibatchError, ValueError } from '../errors.js';
import { atomicWriteFile } from '../io/atomic.js';
import { lineCharts, renderSvg } from '../profile/plot.js';
import {
  findBatchSize,
  type ProfileMode,
  profileBatchSizes,
  profileConvergence,
} from '../profile/profile.js';
import type { Precision } from '../tensor/autocast.js';
import { Generator } from '../tensor/random.js';
import { buildModel, MODEL_NAMES, type ModelName, sampleShape } from '../train/models.js';
import '../backend/register.js';
import {
  checkTrainArgs,
  datasetOptions,
  OPTIMIZERS,
  type OptimizerName,
  PRECISIONS,
  RULES,
  RUN_SETTINGS,
  type Rule,
  resumeSettings,
  SCHEDULES,
  type TrainArgs,
  toTensors,
  train,
  UsageError,
} from './train.js';

const USAGE = `usage: minibatch <command> [options]

commands:
  train            train a model on Fashion-MNIST (the subset shipped in the package unless --data)
  profile          throughput and memory per batch size (--mode inference|train), or --mode convergence
  find-batch-size  the largest batch that fits a memory budget, and the fastest one
  bench            the benchmark suite of bench/ (from a source checkout): minibatch bench --help

train options:
  --data DIR|full      a directory with Fashion-MNIST IDX files, or 'full' for the installed dataset
                       (MINIBATCH_DATA, /usr/share/datasets/fashion-mnist); default: the shipped subset
  --model mlp|mlp-bn|cnn   (mlp)          --epochs N (5)            --batch-size B (64)
  --optimizer sgd|adam|adamw|rmsprop|adagrad (sgd)
  --lr X (0.05 sgd, 0.01 adagrad, else 0.001)
  --warmup-steps W (0)  --schedule cosine|step|constant (cosine)    --accumulate K (1)
  --precision fp32|bf16|fp16 (fp32)       --workers N (0)           --seed S (0)
  --save FILE  --resume FILE  --report FILE.html  --json  --quiet
                       (a resumed run saves over the checkpoint it resumed from unless --save names another)
profile options:
  --model M (mlp)  --batch-sizes 8,32,128,512  --mode inference|train|convergence (inference)
  --plot FILE.svg  --json       (batch 1 is always measured: the base of the speedup)
  convergence mode: --budget-seconds S | --budget-samples N (one pass over the training set)
                    --scale-lr linear|sqrt|none (sqrt)  --lr X (0.05 at batch 64, scaled)  --data DIR|full
find-batch-size options:
  --model M (mlp)  --memory-budget MB (512: tensor storage a training step allocates)
  --max-batch N (8192: batch sizes tried are 1, 2, 4, ... up to it)  --json
common: --backend js|wasm|native  --verbose  --help
exit status: 0 done, 1 the run failed (data, files, checkpoint), 2 a bad command line`;

const BENCH_SECTIONS = ['gemm', 'ops', 'mlp', 'infer', 'accuracy'] as const; // bench/run.ts's SECTIONS

const BENCH_USAGE = `usage: minibatch bench [--quick] [--only ${BENCH_SECTIONS.join(',')}] [--peers name,...] [--out FILE.json]

The benchmark suite of bench/ (from a source checkout): minibatch against its peers, in one run, with ratios.
Markdown tables on stdout; the same as JSON in --out (bench/results/latest.json).
  --quick       a CI-sized smoke run (the shipped data subset, one batch size, short runs)
  --only LIST   some sections of ${BENCH_SECTIONS.join(', ')}
  --peers LIST  the peers whose name contains one of the words (minibatch always runs)
  --verbose     the stack of an error`;

const BACKENDS = ['js', 'wasm', 'native'] as const;

function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!allowed.includes(v as T))
    throw new UsageError('minibatch', `--${flag} must be one of ${allowed.join(', ')} (got '${v}')`);
  return v as T;
}

/**
 * The number a flag gives, held to `rule` if one is given; a bad value is reported as typed (`--lr=1e-400`:
 * "got 1e-400", not the 0 it parses to).
 */
function num(flag: string, v: string | undefined, dflt: number, rule?: Rule): number;
function num(flag: string, v: string | undefined, dflt?: number, rule?: Rule): number | undefined;
function num(flag: string, v: string | undefined, dflt?: number, rule?: Rule): number | undefined {
  if (v === undefined) return dflt;
  // Decimal only: Number() would also take '0x10', '0b1' and '' (as 16, 1 and 0).
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(v.trim()))
    throw new UsageError('minibatch', `--${flag} expects a number (got '${v}')`);
  const n = Number(v);
  // 1e400 passes the pattern and is Infinity: a budget that never ends, an lr that gives NaN.
  if (!Number.isFinite(n)) throw new UsageError('minibatch', `--${flag} must be finite (got '${v}')`);
  if (rule && !rule.ok(n))
    throw new UsageError('minibatch', `--${flag} must be ${rule.what} (got ${v.trim()})`);
  return n;
}

/** `must be positive` (a budget, a memory size): any finite number above 0. */
const POSITIVE: Rule = { ok: (n) => (n as number) > 0, what: 'positive' };

/**
 * `--lr -1`: parseArgs reads "-1" as an option, not as the value (and explains so on three lines). A value
 * that looks like a negative number is joined to its option (`--lr=-1`), so the check of the value reports it.
 */
function joinNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const opt = (OPTIONS as Record<string, { type: string }>)[a.slice(2)];
    if (a.startsWith('--') && opt?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/**
 * An output file's directory must exist and be writable, and the path must not be a directory: checked before
 * the work, so a typo or a read-only place costs nothing (the atomic write would fail only at the end).
 */
function checkOutput(flag: string, path: string | undefined, hint = ''): void {
  if (path === undefined) return;
  const fail = (detail: string) => new ValueError('minibatch', `--${flag} ${path}${detail}${hint}`);
  const dir = dirname(resolve(path));
  const kind = (p: string) => {
    try {
      return statSync(p).isDirectory() ? 'dir' : 'file';
    } catch {
      return 'none';
    }
  };
  const dirKind = kind(dir);
  if (dirKind === 'none') throw fail(`: directory ${dir} does not exist`);
  if (dirKind === 'file') throw fail(`: ${dir} is a file, not a directory`);
  if (kind(path) === 'dir') throw fail(' is a directory');
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw fail(`: directory ${dir} is not writable`);
  }
}

/** Two outputs (or an output and the checkpoint resumed from) naming one file: the later write would destroy the other. */
function distinctFiles(paths: [string, string | undefined][]): void {
  const seen = new Map<string, string>();
  for (const [flag, p] of paths) {
    if (p === undefined) continue;
    const key = resolve(p);
    const other = seen.get(key);
    if (other) throw new UsageError('minibatch', `--${flag} and --${other} name the same file (${p})`);
    seen.set(key, flag);
  }
}

/** The options each command reads (the common ones aside): any other is refused rather than ignored. */
const COMMAND_FLAGS: Record<string, readonly string[]> = {
  train: [
    'data',
    'model',
    'epochs',
    'batch-size',
    'optimizer',
    'lr',
    'warmup-steps',
    'schedule',
    'accumulate',
    'precision',
    'workers',
    'seed',
    'save',
    'resume',
    'report',
    'json',
    'quiet',
  ],
  profile: [
    'model',
    'batch-sizes',
    'mode',
    'plot',
    'json',
    'quiet',
    'data',
    'budget-seconds',
    'budget-samples',
    'scale-lr',
    'lr',
  ],
  'find-batch-size': ['model', 'memory-budget', 'max-batch', 'json', 'quiet'],
  // Its own options come after the word `bench` and are parsed by benchArgs; --backend means nothing there
  // (the bench measures every backend).
  bench: [],
};
const COMMON_FLAGS = ['backend', 'verbose', 'help'];
const BENCH_COMMON = ['verbose', 'help'];

function checkFlags(command: string, v: Record<string, unknown>): void {
  const allowed = COMMAND_FLAGS[command];
  if (!allowed) return; // an unknown command: reported as such
  for (const [flag, value] of Object.entries(v)) {
    if (value === undefined) continue;
    if (!allowed.includes(flag) && !(command === 'bench' ? BENCH_COMMON : COMMON_FLAGS).includes(flag))
      throw new UsageError('minibatch', `--${flag} is not an option of ${command}`);
    // An empty value (--resume '') would silently mean "none" (a fresh run over the checkpoint).
    if (value === '') throw new UsageError('minibatch', `--${flag} needs a value`);
  }
}

// Batch 1 is measured anyway as the speedup's base (skipped where BatchNorm cannot train on one sample).
function batchSizes(v: string | undefined): number[] {
  const list = (v ?? '8,32,128,512').split(',').map((s) => num('batch-sizes', s.trim(), Number.NaN));
  if (list.some((b) => !Number.isInteger(b) || b <= 0))
    throw new UsageError('minibatch', `--batch-sizes must be positive integers (got '${v}')`);
  return list;
}

const OPTIONS = {
  data: { type: 'string' },
  model: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'batch-sizes': { type: 'string' },
  optimizer: { type: 'string' },
  lr: { type: 'string' },
  'warmup-steps': { type: 'string' },
  schedule: { type: 'string' },
  accumulate: { type: 'string' },
  precision: { type: 'string' },
  workers: { type: 'string' },
  seed: { type: 'string' },
  save: { type: 'string' },
  resume: { type: 'string' },
  report: { type: 'string' },
  mode: { type: 'string' },
  plot: { type: 'string' },
  'budget-seconds': { type: 'string' },
  'budget-samples': { type: 'string' },
  'scale-lr': { type: 'string' },
  'memory-budget': { type: 'string' },
  'max-batch': { type: 'string' },
  backend: { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Where the command word is in `argv` (-1 if none): the first argument that is neither an option nor the
 * value of one. `minibatch --backend js bench --quick`: 2.
 */
function commandIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return i + 1 < argv.length ? i + 1 : -1;
    if (!a.startsWith('-') || a === '-') return i;
    const opt = (OPTIONS as Record<string, { type: string }>)[a.slice(2)];
    if (a.startsWith('--') && opt?.type === 'string') i++; // --flag VALUE (--flag=VALUE is one argument)
  }
  return -1;
}

const BENCH_OPTIONS = {
  quick: { type: 'boolean' },
  only: { type: 'string' },
  peers: { type: 'string' },
  out: { type: 'string' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * The options of `minibatch bench` (those of bench/run.ts's parse(), and --verbose, --help), checked here so a
 * bad one is a usage error before the bench starts. Returns the arguments for bench/run.js, or 'help'.
 */
export function benchArgs(argv: string[]): { args: string[]; verbose: boolean } | 'help' {
  const { values: b, positionals } = parseArgs({
    args: argv,
    options: BENCH_OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  if (b.help) return 'help';
  if (positionals.length) throw new UsageError('minibatch', `unexpected argument '${positionals[0]}'`);
  for (const [flag, value] of Object.entries(b))
    if (value === '') throw new UsageError('minibatch', `--${flag} needs a value`);
  const list = (flag: string, v: string) => {
    const items = v.split(',').map((x) => x.trim());
    if (items.some((x) => x === ''))
      throw new UsageError('minibatch', `--${flag} takes a comma-separated list (got '${v}')`);
    return items;
  };
  const args: string[] = [];
  if (b.quick) args.push('--quick');
  if (b.only !== undefined) {
    const only = list('only', b.only);
    const bad = only.filter((x) => !(BENCH_SECTIONS as readonly string[]).includes(x));
    if (bad.length)
      throw new UsageError(
        'minibatch',
        `--only: unknown section ${bad.join(', ')} (expected ${BENCH_SECTIONS.join(', ')})`,
      );
    args.push('--only', only.join(','));
  }
  if (b.peers !== undefined) args.push('--peers', list('peers', b.peers).join(','));
  if (b.out !== undefined) {
    checkOutput('out', b.out);
    args.push('--out', b.out);
  }
  return { args, verbose: !!b.verbose };
}

/**
 * Run a bench script in a child node with the terminal; an error it does not catch (a stack trace by default)
 * becomes the CLI's one line, `error: bench: ...`, and exit code 1 (the stack too with `verbose`).
 */
export function runBenchScript(script: string, args: string[], verbose: boolean): number {
  const hook = `process.on('uncaughtException', (e) => {
    const m = e instanceof Error ? e.message.split('\\n')[0] : String(e);
    process.stderr.write('error: bench: ' + m + '\\n' + (${verbose} && e?.stack ? e.stack + '\\n' : ''));
    process.exit(1);
  });`;
  // --import arrived in Node 20.6: before it, the script's errors are its own.
  const preload = process.allowedNodeEnvironmentFlags.has('--import')
    ? ['--import', `data:text/javascript,${encodeURIComponent(hook)}`]
    : [];
  const r = spawnSync(process.execPath, [...preload, script, ...args], { stdio: 'inherit' });
  if (r.error) throw new ValueError('bench', `cannot run ${script}: ${r.error.message}`);
  if (r.signal) throw new ValueError('bench', `the benchmark was stopped by ${r.signal}`);
  return r.status ?? 1;
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

async function profileCommand(v: Values, out: (s: string) => void, log: (s: string) => void): Promise<void> {
  const model = oneOf('model', v.model, MODEL_NAMES, 'mlp');
  const mode = oneOf('mode', v.mode, ['inference', 'train', 'convergence'] as const, 'inference');
  const sizes = batchSizes(v['batch-sizes']);
  const makeModel = () => buildModel(model, new Generator(0));
  const backend = backendInfo().name;
  checkOutput('plot', v.plot);
  if (mode !== 'convergence') {
    for (const flag of ['data', 'budget-seconds', 'budget-samples', 'scale-lr', 'lr'] as const) {
      if (v[flag] !== undefined)
        throw new UsageError('minibatch', `--${flag} is only used by profile --mode convergence`);
    }
  }
  if (mode === 'convergence') {
    const budgetSeconds = num('budget-seconds', v['budget-seconds'], undefined, POSITIVE);
    const budgetSamples = num('budget-samples', v['budget-samples'], undefined, RULES.positiveInt);
    if (budgetSeconds !== undefined && budgetSamples !== undefined)
      throw new UsageError('minibatch', 'give one of --budget-seconds and --budget-samples, not both');
    const baseLr = num('lr', v.lr, 0.05, RULES.positive);
    const ds = loadFashionMnist(datasetOptions(v.data));
    const [x, y] = toTensors(ds.train.images, ds.train.labels, model);
    const [xTest, yTest] = toTensors(ds.test.images, ds.test.labels, model);
    const rows = profileConvergence({
      makeModel,
      x,
      y,
      xTest,
      yTest,
      batchSizes: sizes,
      baseLr,
      // The lr is given for batch 64 (train's default) and scaled to each size: given for the smallest
      // batch (1 by default), 0.05 with momentum diverged there and at every size scaled from it.
      baseBatch: 64,
      scaleLr: oneOf('scale-lr', v['scale-lr'], ['linear', 'sqrt', 'none'] as const, 'sqrt'),
      ...(budgetSeconds !== undefined ? { budgetSeconds } : { budgetSamples: budgetSamples ?? x.shape[0]! }),
      onRow: (r) =>
        log(
          `batch ${r.batch_size}: lr ${r.lr.toPrecision(3)}, ${r.updates} updates, train loss ${r.final_train_loss.toFixed(4)}, test accuracy ${(100 * r.test_accuracy).toFixed(2)}%, ${r.seconds.toFixed(1)} s`,
        ),
    });
    if (v.plot) {
      const spec = lineCharts(
        rows,
        'batch_size',
        [
          { field: 'final_train_loss', title: 'final train loss' },
          { field: 'test_accuracy', title: 'test accuracy' },
          { field: 'seconds', title: 'wall time (s)' },
        ],
        { logX: true, xTitle: 'batch size', title: `convergence at equal budget (${backend})` },
      );
      await atomicWriteFile(v.plot, await renderSvg(spec));
    }
    if (v.json) out(JSON.stringify({ backend, mode, model, rows }));
    else out(table(rows));
    return;
  }
  const rows = profileBatchSizes({
    makeModel,
    sampleShape: sampleShape(model),
    batchSizes: sizes,
    mode: mode as ProfileMode,
    onRow: (r) =>
      log(`${r.label}: ${Math.round(r.samples_per_sec)} samples/s, ${r.ms_per_batch.toFixed(3)} ms/batch`),
  });
  if (v.plot) {
    const spec = lineCharts(
      rows.filter((r) => r.label !== 'per-sample loop'),
      'batch_size',
      [
        { field: 'samples_per_sec', title: 'samples/s', log: true },
        { field: 'ms_per_batch', title: 'ms per batch', log: true },
        { field: 'alloc_mb_per_batch', title: 'tensor MB per batch', log: true },
      ],
      { logX: true, xTitle: 'batch size', title: `${model} ${mode} on ${backend}` },
    );
    await atomicWriteFile(v.plot, await renderSvg(spec));
  }
  if (v.json) {
    out(
      JSON.stringify({
        backend,
        mode,
        model,
        rows,
      }),
    );
  } else out(table(rows));
}

function table(rows: object[]): string {
  const keys = Object.keys(rows[0] ?? {});
  const fmt = (x: unknown) =>
    typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toPrecision(4)) : String(x);
  const cells = rows.map((r) => keys.map((k) => fmt((r as Record<string, unknown>)[k])));
  const w = keys.map((k, i) => Math.max(k.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((s, i) => s.padStart(w[i]!)).join('  ');
  return [line(keys), ...cells.map(line)].join('\n');
}

/** Run the CLI; returns the exit code. `out` gets results (stdout), `log` progress and messages (stderr). */
export async function main(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(`${s}\n`),
  log: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
): Promise<number> {
  let verbose = argv.includes('--verbose');
  try {
    // `bench` passes on the options after it: they are its own, parsed by benchArgs.
    const at = commandIndex(argv);
    const rest = argv[at] === 'bench' ? argv.slice(at + 1) : undefined;
    const { values: v, positionals } = parseArgs({
      args: joinNegativeValues(rest ? argv.slice(0, at + 1) : argv),
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    });
    verbose = !!v.verbose || !!rest?.includes('--verbose');
    const [command, ...extra] = positionals;
    if (v.help) {
      out(USAGE);
      return 0;
    }
    if (!command) {
      log(USAGE); // a usage error: on stderr, as the other errors
      return 2;
    }
    if (extra.length) throw new UsageError('minibatch', `unexpected argument '${extra[0]}'`);
    checkFlags(command, v);
    // --quiet: results on stdout and errors only (no progress bar, no progress lines).
    const say = v.quiet ? () => {} : log;
    if (v.backend) {
      const { setBackend } = await import('../backend/backend.js');
      setBackend(oneOf('backend', v.backend, BACKENDS, 'js')); // an unavailable one fails here, exit 1
    }
    switch (command) {
      case 'train': {
        const args = {
          // Resolved: a checkpoint names the data wherever the run is resumed from.
          ...(v.data !== undefined && { data: v.data === 'full' ? 'full' : resolve(v.data) }),
          model: oneOf('model', v.model, MODEL_NAMES, 'mlp') as ModelName,
          epochs: num('epochs', v.epochs, 5, RULES.positiveInt),
          batchSize: num('batch-size', v['batch-size'], 64, RULES.positiveInt),
          optimizer: oneOf('optimizer', v.optimizer, Object.keys(OPTIMIZERS) as OptimizerName[], 'sgd'),
          ...(v.lr !== undefined && { lr: num('lr', v.lr, undefined, RULES.positive) }),
          warmupSteps: num('warmup-steps', v['warmup-steps'], 0, RULES.nonNegativeInt),
          schedule: oneOf('schedule', v.schedule, SCHEDULES, 'cosine'),
          accumulate: num('accumulate', v.accumulate, 1, RULES.positiveInt),
          precision: oneOf('precision', v.precision, PRECISIONS, 'fp32') as Precision,
          workers: num('workers', v.workers, 0, RULES.nonNegativeInt),
          seed: num('seed', v.seed, 0, RULES.seed),
          // A resumed run saves over the checkpoint it resumed from, unless --save names another file.
          ...(v.save !== undefined ? { save: v.save } : v.resume !== undefined && { save: v.resume }),
          ...(v.resume !== undefined && { resume: v.resume }),
          ...(v.report !== undefined && { report: v.report }),
          json: !!v.json,
          quiet: !!v.quiet || !process.stderr.isTTY,
        };
        checkTrainArgs(args);
        if (args.resume !== undefined) {
          const st = existsSync(args.resume) ? statSync(args.resume) : undefined;
          if (!st?.isFile())
            throw new ValueError(
              'minibatch',
              `--resume ${args.resume}: ${st ? 'a directory, not a checkpoint file' : 'no such file'}`,
            );
        }
        if (v.save !== undefined) checkOutput('save', args.save);
        else checkOutput('resume', args.save, ' (a resumed run saves over it: --save FILE saves elsewhere)');
        checkOutput('report', args.report);
        distinctFiles([
          ['save', args.save],
          ['report', args.report],
        ]);
        distinctFiles([
          ['resume', args.resume],
          ['report', args.report],
        ]);
        const given = new Set(
          Object.entries(RUN_SETTINGS)
            .filter(([, flag]) => v[flag] !== undefined)
            .map(([key]) => key),
        );
        const r = await train(args.resume ? await resumeSettings(args as TrainArgs, given) : args, say);
        if (v.json) out(JSON.stringify(r));
        else
          out(
            `test accuracy ${(100 * r.test_accuracy).toFixed(2)}% (test loss ${r.test_loss.toFixed(4)}) after ${r.epochs} epoch${r.epochs === 1 ? '' : 's'}, ${Math.round(r.samples_per_sec)} samples/s on ${r.backend}, ${r.seconds.toFixed(1)} s`,
          );
        return 0;
      }
      case 'profile':
        await profileCommand(v, out, say);
        return 0;
      case 'find-batch-size': {
        const model = oneOf('model', v.model, MODEL_NAMES, 'mlp');
        const budget = num('memory-budget', v['memory-budget'], 512, POSITIVE);
        const maxBatch = num('max-batch', v['max-batch'], 8192, RULES.positiveInt);
        const r = findBatchSize({
          makeModel: () => buildModel(model, new Generator(0)),
          sampleShape: sampleShape(model),
          memoryBudgetMb: budget,
          maxBatch,
        });
        if (!r.rows.length)
          throw new ValueError('find-batch-size', `not even batch size 1 of ${model} fits in ${budget} MB`);
        if (v.json)
          out(
            JSON.stringify({
              backend: backendInfo().name,
              model,
              memory_budget_mb: budget,
              max_batch: maxBatch,
              largest_fitting: r.largestFitting,
              best_throughput: r.bestThroughput,
              rows: r.rows,
            }),
          );
        else
          out(
            `${table(r.rows)}\nlargest batch within ${budget} MB of tensor storage per step: ${r.largestFitting}` +
              `${r.largestFitting * 2 > maxBatch ? ` (the --max-batch ${maxBatch} cap: larger may fit)` : ''}; ` +
              `best throughput: ${r.bestThroughput}`,
          );
        return 0;
      }
      case 'bench': {
        const b = benchArgs(rest ?? []);
        if (b === 'help') {
          out(BENCH_USAGE);
          return 0;
        }
        verbose ||= b.verbose;
        const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
        const script = [join(root, 'build/bench/run.js'), join(root, 'bench/run.js')].find(existsSync);
        if (!script)
          throw new ValueError(
            'bench',
            'the benchmarks ship with the source checkout: run `npm run bench` there',
          );
        return runBenchScript(script, b.args, verbose);
      }
      default:
        throw new UsageError(
          'minibatch',
          `unknown command '${command}' (expected train, profile, find-batch-size or bench)`,
        );
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    // parseArgs explains some errors over several lines: the first says what is wrong.
    const msg = err.code?.startsWith('ERR_PARSE_ARGS')
      ? `minibatch: ${err.message.split('\n')[0]}`
      : err instanceof MinibatchError
        ? err.message
        : `minibatch: ${err.message}`;
    log(`error: ${msg}`);
    if (e instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS'))
      log("run 'minibatch --help' for usage");
    if (verbose && err.stack) log(err.stack);
    return e instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
  }
}
