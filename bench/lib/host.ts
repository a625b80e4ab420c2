/**
 * A peer in a child process of its own (a "host"), as PyTorch runs in its own Python process. tfjs and jax-js
 * are hosted: run in minibatch's process, they changed how it runs. After tfjs-cpu had trained 640 samples
 * there, minibatch's native epoch at batch 512 fell from 61-77k to 52-53k samples/s, and allocating a 512 KiB
 * buffer went from 4 to 26-38 µs: V8 now ran a mark-compact every 20-30 ms instead of scavenges. In a user's
 * process there is one library; so here too, and the runner still orders every measurement itself.
 *
 * The parent sends one call at a time (`PeerHost.call`); the child (`serve`) answers it with the peer it
 * loaded. Timings use the same rules (bench/lib/measure.ts) on both sides.
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { Data, Peer, TrainResult, TrainSpec } from './common.js';
import { type TimeOptions, type Timing, timeCalls } from './measure.js';

/** A measurement, whole: the child builds the call and times it where the peer lives. */
export type HostCall =
  | { kind: 'describe' }
  | { kind: 'activate' }
  | { kind: 'gemm'; shape: [number, number, number]; opts: TimeOptions }
  | { kind: 'tinyOp'; op: 'add' | 'matmul'; opts: TimeOptions }
  | { kind: 'infer'; batch: number; opts: TimeOptions }
  | { kind: 'train'; spec: Omit<TrainSpec, 'train' | 'test'> };

type Reply = { id: number; value?: unknown; error?: string };

/** The measurements a peer may offer (the optional methods of Peer). */
const MEASUREMENTS = ['gemm', 'tinyOp', 'train', 'infer'] as const;

/** What the runner learns of a hosted peer without loading its library (the answer to `describe`). */
export interface PeerDescription {
  threads: number;
  note?: string;
  measurements: (typeof MEASUREMENTS)[number][];
  info?: Record<string, unknown>;
}

/**
 * The runner's stand-in for the peer `name` served by `host`: its name, threads, note and facts, and one
 * method per measurement it offers. The runner only asks whether a peer has a measurement; `onPeer` sends the
 * call itself to the host, so the stand-in methods are never called.
 */
export async function hostedPeer(
  name: string,
  host: PeerHost,
): Promise<Peer & { info: () => Record<string, unknown> }> {
  const d = await host.call<PeerDescription>({ kind: 'describe' });
  const elsewhere = () => {
    throw new Error(`${name} runs in its host process: measure it through the host`);
  };
  return {
    name,
    threads: d.threads,
    ...(d.note === undefined ? {} : { note: d.note }),
    ...Object.fromEntries(d.measurements.map((m) => [m, elsewhere])),
    info: () => d.info ?? {},
    host,
  };
}

/** The parent's end: starts `script ...args` at the first call; calls fail with the child's error message. */
export class PeerHost {
  private child: ChildProcess | undefined;
  private next = 0;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  constructor(
    private readonly script: string,
    private readonly args: string[],
  ) {}

  /** The call's answer: a Timing, a TrainResult (train), a PeerDescription (describe) or nothing (activate). */
  call<T extends Timing | TrainResult | PeerDescription | undefined>(c: HostCall): Promise<T> {
    const child = (this.child ??= this.start());
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, ...c });
    });
  }

  /** Ends the child (the runner's own exit would too: the child leaves when its channel closes). */
  close(): void {
    this.child?.kill();
    this.child = undefined;
  }

  private start(): ChildProcess {
    // Without minibatch's native backend (MINIBATCH_BLAS=none): no BLAS loaded, malloc left as the peer finds it.
    // Structured clone, not JSON: a training spec's maxSeconds is Infinity.
    const child = fork(this.script, this.args, {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { ...process.env, MINIBATCH_BLAS: 'none' },
    });
    child.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error === undefined) p?.resolve(m.value);
      else p?.reject(new Error(m.error));
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`peer host exited (${signal ?? code})`));
      this.pending.clear();
      if (this.child === child) this.child = undefined;
    });
    return child;
  }
}

/** A call answered with `peer` in this process: the child's answers, and the runner's own peers'. */
export async function runCall(peer: Peer, c: HostCall, data: () => Data): Promise<unknown> {
  switch (c.kind) {
    case 'describe':
      return {
        threads: peer.threads,
        ...(peer.note === undefined ? {} : { note: peer.note }),
        measurements: MEASUREMENTS.filter((m) => peer[m] !== undefined),
        ...(peer.info ? { info: await peer.info() } : {}),
      } satisfies PeerDescription;
    case 'activate':
      return void (await peer.activate?.());
    case 'gemm':
      return timeCalls(peer.gemm!(...c.shape), c.opts);
    case 'tinyOp':
      return timeCalls(peer.tinyOp!(c.op), c.opts);
    case 'infer':
      return timeCalls(peer.infer!(c.batch, data().test), c.opts);
    case 'train':
      return peer.train!({ ...c.spec, train: data().train, test: data().test });
  }
}

/** The child's end: answers each call with `peer`; resolves when the parent goes away. */
export function serve(peer: Peer, data: () => Data): Promise<void> {
  let loaded: Data | undefined;
  const split = () => (loaded ??= data());
  process.on('message', (m: HostCall & { id: number }) => {
    runCall(peer, m, split).then(
      (value) => process.send!({ id: m.id, value } satisfies Reply),
      (e: unknown) => process.send!({ id: m.id, error: (e as Error)?.message ?? String(e) } satisfies Reply),
    );
  });
  return new Promise((resolve) => process.once('disconnect', resolve));
}
