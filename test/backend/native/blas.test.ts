/**
 * The BLAS loader's logic, without any BLAS: the OpenBLAS core chosen from fixed /proc/cpuinfo texts, the
 * library names tried per platform, and loadBlas over a fake koffi (the core is in the environment exactly
 * during the dlopen, the user's choice is kept, a library running another core is reported, failures listed).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blasCandidates, coreTypeFor, type Koffi, loadBlas } from '../../../src/backend/native/blas.js';

const cpu = (flags: string) =>
  `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: ${flags}\nbugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t\t: ${flags}\n`;
const BASE =
  'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2';

describe('coreTypeFor (cpuinfo flags -> OPENBLAS_CORETYPE)', () => {
  const cases: [string, string, string | undefined][] = [
    [
      'Skylake-SP / Ice Lake (AVX-512 F, VL, BW, DQ)',
      `${BASE} pni ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw avx512vl`,
      'SkylakeX',
    ],
    [
      'AMD Zen 4 (AVX-512 with BF16)',
      `${BASE} pni ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16`,
      'SkylakeX',
    ],
    [
      'AMD EPYC Zen 3 (this machine: AVX2, FMA)',
      `${BASE} pni ssse3 fma sse4_1 sse4_2 avx avx2 sse4a`,
      'Haswell',
    ],
    ['Haswell desktop', `${BASE} pni ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2`, 'Haswell'],
    [
      'Knights Landing (AVX-512 F without VL/BW/DQ)',
      `${BASE} pni ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512pf avx512er avx512cd`,
      'Haswell',
    ],
    ['AVX2 without FMA (some virtual CPUs)', `${BASE} pni ssse3 sse4_1 sse4_2 avx avx2`, 'Sandybridge'],
    ['Sandy Bridge (AVX)', `${BASE} pni ssse3 sse4_1 sse4_2 avx`, 'Sandybridge'],
    ['Nehalem (SSE4.2)', `${BASE} pni ssse3 sse4_1 sse4_2 popcnt`, 'Nehalem'],
    ['Core 2 (SSSE3)', `${BASE} pni ssse3`, 'Core2'],
    ['Pentium 4 (SSE3 only)', `${BASE} pni`, 'Prescott'],
    [
      'ARM (a Features line, no flags: OpenBLAS detects it)',
      'processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\nCPU implementer\t: 0x41\n',
      undefined,
    ],
    ['empty', '', undefined],
  ];
  for (const [label, text, want] of cases) {
    it(`${label} -> ${want}`, () => {
      assert.equal(coreTypeFor(text.includes('Features') || !text ? text : cpu(text)), want);
    });
  }
  it('reads only a whole flag (avx512f is not avx, sse4_2 needs its own token)', () => {
    assert.equal(coreTypeFor(cpu('sse sse2 avx512fx')), 'Prescott');
  });
});

describe('blasCandidates', () => {
  it('Linux tries OpenBLAS, then MKL, then BLIS, never the reference libblas', () => {
    const c = blasCandidates('linux');
    assert.equal(c[0], 'libopenblas.so.0');
    assert.ok(c.indexOf('libmkl_rt.so.2') > c.indexOf('libopenblas.so'));
    assert.ok(c.indexOf('libblis.so.4') > c.indexOf('libmkl_rt.so'));
    assert.ok(!c.some((n) => n.startsWith('libblas')));
  });
  it('macOS prefers Accelerate', () => {
    assert.match(blasCandidates('darwin')[0]!, /Accelerate\.framework/);
  });
  it('a short name picks a vendor, anything else is taken as a file name or path', () => {
    assert.deepEqual(blasCandidates('linux', 'MKL'), ['libmkl_rt.so.2', 'libmkl_rt.so']);
    assert.deepEqual(blasCandidates('linux', '/opt/x/libopenblas.so'), ['/opt/x/libopenblas.so']);
    assert.deepEqual(blasCandidates('aix'), []);
  });
});

/** A fake koffi: libraries by name, each a table of functions; records OPENBLAS_CORETYPE at each load. */
function fakeKoffi(
  env: Record<string, string | undefined>,
  libs: Record<string, { core?: string; broken?: boolean; noCblas?: boolean }>,
): { koffi: Koffi; loads: { name: string; coretype: string | undefined }[]; threads: number[] } {
  const loads: { name: string; coretype: string | undefined }[] = [];
  const threads: number[] = [];
  const koffi: Koffi = {
    load(name) {
      loads.push({ name, coretype: env.OPENBLAS_CORETYPE });
      const spec = libs[name];
      if (!spec) throw new Error(`${name}: cannot open shared object file: No such file or directory`);
      // The core an OpenBLAS runs: the one asked for, else what it detects (spec.core).
      const core = env.OPENBLAS_CORETYPE ?? spec.core;
      const fns: Record<string, (...a: unknown[]) => unknown> = {
        cblas_sgemm: (...a: unknown[]) => {
          const [, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc] = a as [
            number,
            number,
            number,
            number,
            number,
            number,
            number,
            Float32Array,
            number,
            Float32Array,
            number,
            number,
            Float32Array,
            number,
          ];
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              let s = 0;
              for (let k = 0; k < K; k++) {
                s += A[ta === 112 ? k * lda + i : i * lda + k]! * B[tb === 112 ? j * ldb + k : k * ldb + j]!;
              }
              C[i * ldc + j] = alpha * s + (beta ? beta * C[i * ldc + j]! : 0) + (spec.broken ? 1 : 0);
            }
          }
        },
      };
      if (spec.noCblas) delete fns.cblas_sgemm;
      if (spec.core) {
        fns.openblas_get_corename = () => core;
        fns.openblas_get_config = () => `OpenBLAS 0.3.21 DYNAMIC_ARCH ${core} MAX_THREADS=64`;
        fns.openblas_set_num_threads = (n) => threads.push(n as number);
      }
      return {
        func(declaration: string) {
          const fname = /(\w+)\s*\(/.exec(declaration)![1]!;
          const f = fns[fname];
          if (!f) throw new Error(`Cannot find function '${fname}' in shared library`);
          return f;
        },
      };
    },
  };
  return { koffi, loads, threads };
}

/** A fake Node process on Linux with these /proc files. */
function fakeProc(env: Record<string, string | undefined>, cpuinfo: string, maps = '') {
  const files: Record<string, string> = { '/proc/cpuinfo': cpuinfo, '/proc/self/maps': maps };
  return {
    platform: 'linux',
    env,
    getBuiltinModule: (id: string) =>
      id === 'node:fs'
        ? {
            readFileSync: (p: string) => {
              if (!(p in files)) throw new Error('ENOENT');
              return files[p];
            },
          }
        : undefined,
  };
}

const AVX2 = cpu(`${BASE} pni ssse3 fma sse4_1 sse4_2 avx avx2`);

describe('loadBlas (over a fake koffi)', () => {
  it('sets OPENBLAS_CORETYPE from the CPU flags only for the dlopen, and says so', () => {
    const env: Record<string, string | undefined> = {};
    const { koffi, loads, threads } = fakeKoffi(env, { 'libopenblas.so.0': { core: 'Prescott' } });
    const blas = loadBlas(koffi, fakeProc(env, AVX2));
    assert.deepEqual(loads, [{ name: 'libopenblas.so.0', coretype: 'Haswell' }]);
    assert.equal(env.OPENBLAS_CORETYPE, undefined, 'removed again after the load');
    assert.equal(blas.vendor, 'OpenBLAS');
    assert.equal(blas.core, 'Haswell');
    assert.match(blas.coreNote!, /chosen by minibatch from the CPU flags \(OPENBLAS_CORETYPE=Haswell\)/);
    assert.match(blas.config!, /Haswell/);
    blas.setThreads(3);
    blas.setThreads(3);
    assert.deepEqual(threads, [3], 'set once, not again for the same count');
    const c = new Float32Array(6);
    blas.sgemm(false, true, 2, 3, 1, 2, Float32Array.of(1, 2), 1, Float32Array.of(1, 2, 3), 1, 0, c, 3);
    assert.deepEqual([...c], [2, 4, 6, 4, 8, 12]);
  });

  it("keeps the user's OPENBLAS_CORETYPE", () => {
    const env: Record<string, string | undefined> = { OPENBLAS_CORETYPE: 'Sandybridge' };
    const { koffi, loads } = fakeKoffi(env, { 'libopenblas.so.0': { core: 'Prescott' } });
    const blas = loadBlas(koffi, fakeProc(env, AVX2));
    assert.equal(loads[0]!.coretype, 'Sandybridge');
    assert.equal(env.OPENBLAS_CORETYPE, 'Sandybridge');
    assert.equal(blas.core, 'Sandybridge');
    assert.match(blas.coreNote!, /set by the user/);
  });

  it('says WRONG when OpenBLAS was loaded before minibatch could choose the core', () => {
    const env: Record<string, string | undefined> = {};
    const { koffi } = fakeKoffi(env, { 'libopenblas.so.0': { core: 'Prescott' } });
    // Already in the process: the dlopen returns the loaded library, which keeps its core.
    const preloaded = {
      load: (name: string) => {
        const lib = koffi.load(name);
        return {
          func: (d: string) => (/openblas_get_corename/.test(d) ? () => 'Prescott' : lib.func(d)),
        };
      },
    };
    const proc = fakeProc(env, AVX2, '7f00-7f10 r-xp /usr/lib/x86_64-linux-gnu/libopenblasp-r0.3.21.so\n');
    const blas = loadBlas(preloaded, proc);
    assert.equal(blas.core, 'Prescott');
    assert.match(
      blas.coreNote!,
      /^WRONG: OpenBLAS was already loaded .* start node with OPENBLAS_CORETYPE=Haswell/,
    );
  });

  it('goes down the list past missing and broken libraries, and lists every failure when none loads', () => {
    const env: Record<string, string | undefined> = {};
    const { koffi, loads } = fakeKoffi(env, {
      'libopenblas.so': { noCblas: true },
      'libmkl_rt.so.2': { broken: true },
      'libblis.so.4': {},
    });
    const blas = loadBlas(koffi, fakeProc(env, AVX2));
    assert.equal(blas.library, 'libblis.so.4');
    assert.equal(blas.core, undefined);
    assert.deepEqual(
      loads.map((l) => l.name),
      ['libopenblas.so.0', 'libopenblas.so', 'libmkl_rt.so.2', 'libmkl_rt.so', 'libblis.so.4'],
    );
    assert.throws(
      () => loadBlas(koffi, fakeProc(env, AVX2), 'mkl'),
      (e: Error) =>
        /no BLAS library could be loaded/.test(e.message) &&
        /libmkl_rt\.so\.2: cblas_sgemm computed \[18, 24, 40, 54\]/.test(e.message) &&
        /libmkl_rt\.so: cannot open shared object file/.test(e.message),
    );
  });
});
