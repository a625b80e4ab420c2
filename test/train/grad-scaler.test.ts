import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GradScaler } from '../../src/train/grad-scaler.js';

// Compiled to build/test/train/, fixtures stay in test/fixtures/.
const fixture = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/grad_scaler.json', import.meta.url), 'utf8'),
);

describe('GradScaler', () => {
  it('replays the PyTorch scale sequence for a pattern of overflows exactly (grad_scaler.json)', () => {
    for (const c of fixture.cases) {
      const scaler = new GradScaler({
        initScale: c.init_scale,
        growthFactor: c.growth_factor,
        backoffFactor: c.backoff_factor,
        growthInterval: c.growth_interval,
      });
      const scales = (c.found_inf as boolean[]).map((inf) => {
        scaler.update(inf);
        return scaler.scale;
      });
      assert.deepEqual(scales, c.scales_after_update);
      console.log(`grad_scaler: OK ${scales.length} updates, max diff = 0`);
    }
  });

  it("has PyTorch's defaults", () => {
    assert.deepEqual(new GradScaler().stateDict(), {
      scale: 65536,
      growthFactor: 2,
      backoffFactor: 0.5,
      growthInterval: 2000,
      growthTracker: 0,
    });
  });

  it('unscale multiplies by the float32 inverse of the scale, not divides', () => {
    const scaler = new GradScaler({ initScale: 3 });
    const inv = Math.fround(1 / 3);
    // Values where v * fround(1/3) and v / 3 round to different float32s: the test must tell them apart.
    const values = Array.from({ length: 200 }, (_, i) => Math.fround(1 + i * 0.37));
    const distinguishing = values.filter((v) => Math.fround(v * inv) !== Math.fround(v / 3));
    assert.ok(distinguishing.length > 10);
    const g = Float32Array.from(values);
    assert.equal(scaler.unscale([g]), false);
    assert.deepEqual(
      g,
      Float32Array.from(values, (v) => Math.fround(v * inv)),
    );
  });

  it('unscale reports inf and NaN in any tensor, still unscaling every value', () => {
    for (const bad of [Infinity, -Infinity, NaN]) {
      const scaler = new GradScaler({ initScale: 4 });
      const a = new Float32Array([8, 4]);
      const b = new Float32Array([2, bad, 12]);
      assert.equal(scaler.unscale([a, b]), true);
      assert.deepEqual(a, new Float32Array([2, 1]));
      assert.deepEqual([b[0], b[2]], [0.5, 3]);
    }
    const big = new Float32Array([3.4028234663852886e38, -3.4028234663852886e38]);
    assert.equal(new GradScaler().unscale([big]), false);
    // Gradients held in fp16 (fit's fp16 precision) overflow past 65504.
    assert.equal(new GradScaler().unscale([new Float32Array([65504, -65504])], 65504), false);
    assert.equal(new GradScaler().unscale([new Float32Array([1, -65505])], 65504), true);
  });

  it('does not grow the scale past float32 range, but restarts counting', () => {
    const scaler = new GradScaler({ initScale: 2 ** 127, growthInterval: 1 });
    scaler.update(false);
    assert.equal(scaler.scale, 2 ** 127);
    assert.equal(scaler.stateDict().growthTracker, 0);
  });

  it('keeps the scale a float32 value, as the PyTorch tensor does', () => {
    const scaler = new GradScaler({ initScale: 3, backoffFactor: 0.1 });
    assert.equal(scaler.scale, 3);
    scaler.update(true);
    assert.equal(scaler.scale, Math.fround(0.30000000000000004));
    assert.notEqual(scaler.scale, 3 * 0.1);
  });

  it('counts clean steps and resets on overflow', () => {
    const scaler = new GradScaler({ initScale: 8, growthInterval: 3 });
    scaler.update(false);
    scaler.update(false);
    scaler.update(true); // 2 clean steps lost
    assert.deepEqual([scaler.scale, scaler.stateDict().growthTracker], [4, 0]);
    for (let i = 0; i < 3; i++) scaler.update(false);
    assert.equal(scaler.scale, 8);
  });

  it('stateDict / loadStateDict resume mid-interval', () => {
    const a = new GradScaler({ growthInterval: 3 });
    a.update(false);
    a.update(true);
    a.update(false);
    const b = new GradScaler();
    b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())));
    for (const inf of [false, false, false, true, false]) {
      a.update(inf);
      b.update(inf);
      assert.deepEqual(b.stateDict(), a.stateDict());
    }
  });

  it("loadStateDict refuses PyTorch's keys and bad values, changing nothing", () => {
    const s = new GradScaler({ initScale: 1024 });
    const torchDict = {
      scale: 2048,
      growth_factor: 2,
      backoff_factor: 0.5,
      growth_interval: 2000,
      _growth_tracker: 5,
    };
    assert.throws(
      () => s.loadStateDict(torchDict as never),
      /GradScaler.loadStateDict: the state dict lacks the numbers growthFactor, backoffFactor, growthInterval, growthTracker/,
    );
    assert.throws(
      () => s.loadStateDict({ ...s.stateDict(), backoffFactor: 2 }),
      /GradScaler.loadStateDict: out-of-range values/,
    );
    assert.throws(() => s.loadStateDict(null as never), /expected a GradScaler state dict, got null/);
    assert.equal(s.scale, 1024);
  });

  it('when disabled, is the identity', () => {
    const scaler = new GradScaler({ enabled: false });
    const g = new Float32Array([2, Infinity]);
    assert.equal(scaler.scale, 1);
    assert.equal(scaler.unscale([g]), false);
    assert.deepEqual(g, new Float32Array([2, Infinity]));
    scaler.update(true);
    assert.equal(scaler.scale, 1);
  });

  it('rejects bad options', () => {
    assert.throws(
      () => new GradScaler({ growthFactor: 1 }),
      /GradScaler: growthFactor must be > 1 \(got 1\)/,
    );
    assert.throws(
      () => new GradScaler({ backoffFactor: 1 }),
      /GradScaler: backoffFactor must be in \(0, 1\) \(got 1\)/,
    );
    assert.throws(
      () => new GradScaler({ growthInterval: 0 }),
      /growthInterval must be an integer >= 1 \(got 0\)/,
    );
    assert.throws(
      () => new GradScaler({ initScale: 0 }),
      /initScale must be a positive finite number \(got 0\)/,
    );
  });
});
