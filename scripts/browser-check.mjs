// Checks the browser build in a real headless Chromium: `npm run test:browser` (builds dist/ first).
//
// Serves dist/ and a test page over http://127.0.0.1 twice: once without COOP/COEP headers (no
// SharedArrayBuffer: the wasm backend must run single-threaded) and once cross-origin isolated
// (Cross-Origin-Opener-Policy: same-origin + Cross-Origin-Embedder-Policy: require-corp: the wasm backend
// must run on Web Workers). In each, the page imports the library's browser entry, checks backendInfo(),
// runs computations against plain-JS values (matmul, exp, softmax, an MLP's training loss falling) and
// times a 512×512×512 matmul (informative only). Chromium is driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe), so no dependency is needed. Prints PASS/FAIL per check and a summary; exits
// 1 on a failure, 0 with SKIP when no Chromium is installed (CHROMIUM=/path/to/binary to choose one).
// MINIBATCH_BROWSER_VERBOSE=1 prints the pages' console.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const verbose = process.env.MINIBATCH_BROWSER_VERBOSE === '1';
const MODE_TIMEOUT_MS = 180_000;

function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  const names = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'chrome'];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of names) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {}
    }
  }
  return undefined;
}

// ---- the page -------------------------------------------------------------------------------------------

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>minibatch browser check</title>
<script type="module" src="/check.js"></script>
`;

// Runs in the page: window.__check resolves to { facts, checks: [{ name, ok, detail }], timings }.
const CHECK_JS = `
import * as mb from '/dist/browser.js';

const expect = new URLSearchParams(location.search).get('expect');
/** 'broken': isolated, but the server refuses worker.js: threads must fail cleanly, results stay right. */
const expectThreads = expect === 'threads' || expect === 'broken';
const checks = [];
const facts = {};
const timings = {};
const check = (name, ok, detail = '') => checks.push({ name, ok: !!ok, detail: String(detail) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const gen = new mb.Generator(1234);
const randn = (shape) => mb.randn(shape, { generator: gen });

/** Plain JS C = A·B (float64 sums) for row-major A (M,K), B (K,N). */
function jsMatmul(a, b, M, K, N) {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let k = 0; k < K; k++) {
      const aik = a[i * K + k];
      for (let j = 0; j < N; j++) c[i * N + j] += aik * b[k * N + j];
    }
  return c;
}

/** Largest |x - y| / (1 + |y|). */
function worst(x, y) {
  let w = 0;
  for (let i = 0; i < y.length; i++) w = Math.max(w, Math.abs(x[i] - y[i]) / (1 + Math.abs(y[i])));
  return x.length === y.length ? w : Infinity;
}

function matmulCheck(name, M, K, N) {
  const a = randn([M, K]);
  const b = randn([K, N]);
  const got = a.matmul(b).toTypedArray();
  const want = jsMatmul(a.toTypedArray(), b.toTypedArray(), M, K, N);
  const w = worst(got, want);
  check(name, w < 1e-4, 'max rel. diff ' + w.toExponential(2));
  return { a, b, got };
}

function timeMatmul(a, b, reps = 5) {
  a.matmul(b); // warm up
  const ms = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    a.matmul(b);
    ms.push(performance.now() - t0);
  }
  ms.sort((x, y) => x - y);
  return ms[reps >> 1];
}

async function run() {
  facts.userAgent = navigator.userAgent;
  facts.crossOriginIsolated = globalThis.crossOriginIsolated;
  facts.sharedArrayBuffer = typeof SharedArrayBuffer === 'function';
  facts.hardwareConcurrency = navigator.hardwareConcurrency;
  check('crossOriginIsolated is ' + expectThreads, globalThis.crossOriginIsolated === expectThreads);

  const info = mb.backendInfo();
  facts.backend = info.name;
  facts.backendFacts = info.facts;
  facts.unavailable = info.unavailable;
  check('backendInfo().name is wasm', info.name === 'wasm', info.name + ' ' + JSON.stringify(info.unavailable));
  check('facts.sharedMemory is ' + expectThreads, info.facts.sharedMemory === expectThreads);
  for (const k of ['matmul', 'softmax', 'exp']) check(k + ' runs in wasm', !info.fallbacks.includes(k));
  const rt = mb.wasmRuntime();
  check('runtime features.threads is ' + expectThreads, rt?.features.threads === expectThreads);
  if (!rt) return;
  facts.relaxedSimd = rt.features.relaxedSimd;
  if (expectThreads) {
    check('facts.threads > 1 by default', info.facts.threads > 1, 'threads ' + info.facts.threads);
    rt.threads = Math.max(2, rt.threads); // a one-core machine still exercises the pool
  } else {
    check('facts.threads is 1', info.facts.threads === 1, 'threads ' + info.facts.threads);
  }
  facts.threads = rt.threads;
  check('no worker started before any call', rt.workersStarted === 0, rt.workersStarted);

  // The first large call: on the caller alone (workers, if any, start in the background meanwhile).
  const first = matmulCheck('matmul 256x256x256 = JS triple loop (first call)', 256, 256, 256);

  if (expect === 'broken') {
    let error;
    await mb.startWasmThreads().catch((err) => {
      error = err;
    });
    check('startWasmThreads() rejects when worker.js does not load', error !== undefined, error?.message);
    const again = first.a.matmul(first.b).toTypedArray();
    check('matmul 256 after the failure = before (on the caller)', worst(again, first.got) === 0);
    check('no worker counted', rt.workersStarted === 0, rt.workersStarted);
    let second;
    await mb.startWasmThreads().catch((err) => {
      second = err;
    });
    check('a later startWasmThreads() rejects again, at once', second === error, second?.message);
  } else if (expectThreads) {
    const t0 = performance.now();
    while (rt.workersStarted === 0 && performance.now() - t0 < 20000) await sleep(10);
    timings.firstWorkerReadyMs = Math.round(performance.now() - t0);
    check('a worker started in the background after the first large call', rt.workersStarted > 0,
      'workersStarted ' + rt.workersStarted + ' after ' + timings.firstWorkerReadyMs + ' ms');
    const ready = await mb.startWasmThreads();
    facts.workersStarted = rt.workersStarted;
    check('await startWasmThreads() gives threads - 1 workers', ready === rt.threads - 1 && rt.workersStarted === ready,
      'ready ' + ready + ', threads ' + rt.threads);
    const again = first.a.matmul(first.b).toTypedArray();
    const w = worst(again, first.got);
    check('matmul 256 on the workers = on the caller', w < 1e-5, 'max rel. diff ' + w.toExponential(2));
  } else {
    check('startWasmThreads() resolves 0 without threads', (await mb.startWasmThreads()) === 0);
    check('no worker started', rt.workersStarted === 0);
  }

  const big = matmulCheck('matmul 512x512x512 = JS triple loop', 512, 512, 512);
  const bt = matmulCheck('matmul 300x200 @ 200x7 (odd sizes)', 300, 200, 7);
  void bt;

  {
    const x = randn([1 << 20]).mul(3);
    const got = x.exp().toTypedArray();
    const xs = x.toTypedArray();
    const want = Float64Array.from(xs, Math.exp);
    const w = worst(got, want);
    check('exp of 2^20 elements = Math.exp', w < 1e-5, 'max rel. diff ' + w.toExponential(2));
  }

  {
    const R = 64, C = 512;
    const x = randn([R, C]).mul(4);
    const got = mb.softmax(x, -1).toTypedArray();
    const xs = x.toTypedArray();
    const want = new Float64Array(R * C);
    for (let r = 0; r < R; r++) {
      let m = -Infinity, s = 0;
      for (let c = 0; c < C; c++) m = Math.max(m, xs[r * C + c]);
      for (let c = 0; c < C; c++) s += (want[r * C + c] = Math.exp(xs[r * C + c] - m));
      for (let c = 0; c < C; c++) want[r * C + c] /= s;
    }
    const w = worst(got, want);
    check('softmax (64, 512) = JS softmax', w < 1e-5, 'max rel. diff ' + w.toExponential(2));
  }

  {
    // A learnable rule: the class is the argmax of the first four features.
    const N = 256, D = 20, H = 64, K = 4;
    const x = randn([N, D]);
    const y = x.slice(1, 0, K).argmax(1);
    const model = new mb.Sequential(new mb.Linear(D, H), new mb.ReLU(), new mb.Linear(H, K));
    const opt = new mb.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    const losses = [];
    for (let step = 0; step < 40; step++) {
      const loss = mb.crossEntropy(model.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      losses.push(loss.item());
    }
    const [l0, l1] = [losses[0], losses[losses.length - 1]];
    check('MLP training: loss falls (Linear, ReLU, SGD, crossEntropy)', Number.isFinite(l1) && l1 < 0.6 * l0,
      'loss ' + l0.toFixed(4) + ' -> ' + l1.toFixed(4));
  }

  // Informative: a 512×512×512 matmul on one thread and on all.
  const threads = rt.threads;
  rt.threads = 1;
  timings.matmul512OneThreadMs = +timeMatmul(big.a, big.b).toFixed(2);
  rt.threads = threads;
  if (threads > 1 && expect === 'threads') {
    timings.matmul512ThreadedMs = +timeMatmul(big.a, big.b).toFixed(2);
    timings.threads = threads;
    const again = big.a.matmul(big.b).toTypedArray();
    const w = worst(again, big.got);
    check('matmul 512 threaded = after the timing runs', w < 1e-5 && rt.workersStarted > 0, 'max rel. diff ' + w.toExponential(2));
  }
  const gflops = (ms) => ((2 * 512 ** 3) / ms / 1e6).toFixed(1);
  timings.gflopsOneThread = +gflops(timings.matmul512OneThreadMs);
  if (timings.matmul512ThreadedMs) timings.gflopsThreaded = +gflops(timings.matmul512ThreadedMs);
}

window.__check = run().then(
  () => ({ facts, checks, timings }),
  (err) => {
    check('no exception', false, (err && err.stack) || err);
    return { facts, checks, timings };
  },
);
`;

// ---- the servers ----------------------------------------------------------------------------------------

const MIME = {
  '.js': 'text/javascript',
  '.map': 'application/json',
  '.html': 'text/html',
  '.json': 'application/json',
};

function serve(isolated, refuseWorker) {
  const headers = isolated
    ? {
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
        'Cross-Origin-Resource-Policy': 'same-origin',
      }
    : {};
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let body;
    let type;
    if (path === '/' || path === '/index.html') [body, type] = [PAGE, MIME['.html']];
    else if (path === '/check.js') [body, type] = [CHECK_JS, MIME['.js']];
    else if (refuseWorker && path.endsWith('/worker.js')) body = undefined;
    else if (path.startsWith('/dist/')) {
      const file = normalize(join(dist, path.slice('/dist/'.length)));
      if (file.startsWith(dist + sep) && existsSync(file)) {
        body = readFileSync(file);
        type = MIME[extname(file)] ?? 'application/octet-stream';
      }
    }
    if (body === undefined) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': type, 'Cache-Control': 'no-store' }).end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// ---- Chromium over the DevTools protocol (a pipe: fd 3 to the browser, fd 4 from it, NUL-separated JSON) --

function launch(binary, profile) {
  const args = [
    '--headless=new',
    '--remote-debugging-pipe',
    `--user-data-dir=${profile}`,
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-extensions',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--mute-audio',
  ];
  if (process.getuid?.() === 0) args.push('--no-sandbox'); // Chromium refuses to sandbox as root
  const child = spawn(binary, [...args, 'about:blank'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const toBrowser = child.stdio[3];
  const fromBrowser = child.stdio[4];
  let nextId = 1;
  const pending = new Map();
  const listeners = [];
  let buffer = '';
  let exited;
  const exitedPromise = new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  exitedPromise.then((e) => {
    exited = e;
    for (const { reject } of pending.values())
      reject(new Error(`chromium exited (${e.code ?? e.signal}): ${stderr.slice(-2000)}`));
    pending.clear();
  });
  fromBrowser.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    for (let end = buffer.indexOf('\0'); end >= 0; end = buffer.indexOf('\0')) {
      const msg = JSON.parse(buffer.slice(0, end));
      buffer = buffer.slice(end + 1);
      if (msg.id !== undefined && pending.has(msg.id)) {
        const { resolve, reject } = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) reject(new Error(`${msg.error.message} (${msg.error.code})`));
        else resolve(msg.result);
      } else if (msg.method) {
        for (const l of listeners) l(msg);
      }
    }
  });
  const send = (method, params = {}, sessionId) =>
    new Promise((resolve, reject) => {
      if (exited) {
        reject(new Error(`chromium exited (${exited.code ?? exited.signal}): ${stderr.slice(-2000)}`));
        return;
      }
      const id = nextId++;
      pending.set(id, { resolve, reject });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  const close = async () => {
    if (!exited) {
      send('Browser.close').catch(() => {});
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exitedPromise;
      clearTimeout(timer);
    }
  };
  return { send, on: (l) => listeners.push(l), close, stderr: () => stderr };
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function runMode(browser, url) {
  const { targetId } = await browser.send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await browser.send('Target.attachToTarget', { targetId, flatten: true });
  const consoleLines = [];
  let loaded;
  const loadedPromise = new Promise((resolve) => {
    loaded = resolve;
  });
  browser.on((msg) => {
    if (msg.sessionId !== sessionId) return;
    const p = msg.params;
    if (msg.method === 'Page.loadEventFired') loaded();
    else if (msg.method === 'Runtime.consoleAPICalled')
      consoleLines.push(`console.${p.type}: ${p.args.map((a) => a.value ?? a.description ?? '').join(' ')}`);
    else if (msg.method === 'Runtime.exceptionThrown')
      consoleLines.push(`exception: ${p.exceptionDetails.exception?.description ?? p.exceptionDetails.text}`);
    else if (msg.method === 'Log.entryAdded')
      consoleLines.push(`${p.entry.level}: ${p.entry.text} ${p.entry.url ?? ''}`);
  });
  await browser.send('Page.enable', {}, sessionId);
  await browser.send('Runtime.enable', {}, sessionId);
  await browser.send('Log.enable', {}, sessionId);
  const nav = await browser.send('Page.navigate', { url }, sessionId);
  if (nav.errorText) throw new Error(`navigation to ${url} failed: ${nav.errorText}`);
  await withTimeout(loadedPromise, 30_000, 'page load');
  const evaluated = await withTimeout(
    browser.send(
      'Runtime.evaluate',
      {
        expression:
          "window.__check ?? Promise.reject(new Error('check.js did not run (did /dist/browser.js fail to import?)'))",
        awaitPromise: true,
        returnByValue: true,
      },
      sessionId,
    ),
    MODE_TIMEOUT_MS,
    'the checks',
  );
  await browser.send('Target.closeTarget', { targetId }).catch(() => {});
  if (evaluated.exceptionDetails) {
    const d = evaluated.exceptionDetails;
    return {
      facts: {},
      checks: [{ name: 'page ran', ok: false, detail: d.exception?.description ?? d.text }],
      timings: {},
      consoleLines,
    };
  }
  return { ...evaluated.result.value, consoleLines };
}

// ---- main -----------------------------------------------------------------------------------------------

const binary = findChromium();
if (!binary) {
  console.log(
    'browser-check: SKIP: no Chromium found (looked for chromium, google-chrome on PATH; set CHROMIUM=path)',
  );
  process.exit(0);
}
if (!existsSync(join(dist, 'browser.js'))) {
  console.log(
    'browser-check: FAIL: dist/browser.js is missing: run `npm run build` first (npm run test:browser does)',
  );
  process.exit(1);
}

const profile = mkdtempSync(join(tmpdir(), 'minibatch-chromium-'));
const servers = [];
let failed = 0;
let browser;
try {
  browser = launch(binary, profile);
  const { product } = await withTimeout(browser.send('Browser.getVersion'), 30_000, 'chromium start');
  console.log(`browser-check: ${product} (${binary})`);
  const modes = [
    {
      name: 'plain (no COOP/COEP: no SharedArrayBuffer, single-threaded)',
      isolated: false,
      expect: 'single',
    },
    {
      name: 'cross-origin isolated (COOP/COEP: SharedArrayBuffer, Web Worker threads)',
      isolated: true,
      expect: 'threads',
    },
    {
      name: 'cross-origin isolated, worker.js refused (threads fail, the caller carries on)',
      isolated: true,
      expect: 'broken',
      refuseWorker: true,
    },
  ];
  const summary = [];
  for (const mode of modes) {
    const server = await serve(mode.isolated, mode.refuseWorker);
    servers.push(server);
    const url = `http://127.0.0.1:${server.address().port}/?expect=${mode.expect}`;
    console.log(`\n== ${mode.name}: ${url}`);
    let result;
    try {
      result = await runMode(browser, url);
    } catch (err) {
      result = {
        facts: {},
        checks: [{ name: 'page ran', ok: false, detail: err.message }],
        timings: {},
        consoleLines: [],
      };
    }
    if (result.checks.length === 0) result.checks.push({ name: 'any check ran', ok: false, detail: '' });
    const bad = result.checks.filter((c) => !c.ok).length;
    failed += bad;
    const f = result.facts;
    console.log(
      `   crossOriginIsolated=${f.crossOriginIsolated} SharedArrayBuffer=${f.sharedArrayBuffer} ` +
        `hardwareConcurrency=${f.hardwareConcurrency} backend=${f.backend} facts=${JSON.stringify(f.backendFacts)}` +
        (f.workersStarted !== undefined ? ` workersStarted=${f.workersStarted}` : ''),
    );
    for (const c of result.checks)
      console.log(`   ${c.ok ? 'PASS' : 'FAIL'}  ${c.name}${c.detail ? `  (${c.detail})` : ''}`);
    console.log(`   timings: ${JSON.stringify(result.timings)}`);
    if ((bad || verbose) && result.consoleLines.length) {
      console.log('   page console:');
      for (const line of result.consoleLines) console.log(`     ${line}`);
    }
    summary.push(
      `${bad ? 'FAIL' : 'PASS'}  ${mode.name}: ${result.checks.length - bad}/${result.checks.length} checks`,
    );
  }
  console.log(`\nbrowser-check summary:\n  ${summary.join('\n  ')}`);
} catch (err) {
  failed += 1;
  console.log(`browser-check: FAIL: ${err.message}`);
  if (browser) console.log(browser.stderr().slice(-3000));
} finally {
  await browser?.close();
  for (const s of servers) s.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(failed ? `browser-check: FAIL (${failed} failed)` : 'browser-check: PASS');
process.exit(failed ? 1 : 0);
