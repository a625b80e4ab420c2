import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FormatError, ValueError } from '../../src/errors.js';
import {
  bf16ToF32,
  decodeSafetensors,
  encodeSafetensors,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  fromFloat32Array,
  loadSafetensors,
  MAX_HEADER_SIZE,
  saveSafetensors,
  type TensorEntry,
  toFloat32Array,
} from '../../src/io/safetensors.js';

// Compiled to build/test/io/, fixtures stay in test/fixtures/.
const fixtureUrl = (name: string) => new URL(`../../../test/fixtures/${name}`, import.meta.url);
const mlpBytes = new Uint8Array(readFileSync(fixtureUrl('mlp.safetensors')));
const mlp = JSON.parse(readFileSync(fixtureUrl('mlp_training.json'), 'utf8')).cases[0];

const root = mkdtempSync(join(tmpdir(), 'minibatch-safetensors-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A file with the given header text (not padded) and data buffer. */
function makeFile(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function headerOf(bytes: Uint8Array): { n: number; text: string } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { n, text: new TextDecoder().decode(bytes.subarray(8, 8 + n)) };
}

describe('decodeSafetensors on the PyTorch-made mlp.safetensors', () => {
  const { tensors, metadata } = decodeSafetensors(mlpBytes, 'mlp.safetensors');

  it('has the state_dict keys, dtypes and shapes, and the metadata', () => {
    const layout = Object.fromEntries(
      [...tensors].map(([k, t]) => [k, `${t.dtype}${JSON.stringify(t.shape)}`]),
    );
    assert.deepEqual(layout, {
      '1.num_batches_tracked': 'I64[]',
      '0.bias': 'F32[16]',
      '0.weight': 'F32[16,12]',
      '1.bias': 'F32[16]',
      '1.running_mean': 'F32[16]',
      '1.running_var': 'F32[16]',
      '1.weight': 'F32[16]',
      '3.bias': 'F32[8]',
      '3.weight': 'F32[8,16]',
      '5.bias': 'F32[3]',
      '5.weight': 'F32[3,8]',
      'extra.bf16': 'BF16[4]',
      'extra.half': 'F16[3,2]',
    });
    assert.deepEqual(metadata, { format: 'pt' });
  });

  it("holds the model's final state_dict (after the 3 SGD steps), value for value", () => {
    // generate.py writes the file from the model mlp_training() returns, i.e. after training.
    const want = mlp.final_state_dict as Record<string, { shape: number[]; data: number[] }>;
    let checked = 0;
    for (const [key, ref] of Object.entries(want)) {
      const t = tensors.get(key)!;
      assert.deepEqual(t.shape, ref.shape, key);
      if (t.dtype === 'I64') {
        assert.deepEqual([...t.data], ref.data.map(BigInt), key);
        continue;
      }
      assert.equal(t.dtype, 'F32');
      let maxDiff = 0;
      (t.data as Float32Array).forEach((v, i) => {
        maxDiff = Math.max(maxDiff, Math.abs(v - Math.fround(ref.data[i]!)));
      });
      assert.equal(maxDiff, 0, key);
      checked += t.data.length;
    }
    console.log(`mlp.safetensors vs final_state_dict: OK ${checked} floats, max diff = 0`);
    assert.equal((tensors.get('1.num_batches_tracked')!.data as BigInt64Array)[0], 3n);
    // ...and not the initial one. (Not '0.bias': BatchNorm follows, so its gradient is 0 and it never moves.)
    assert.notEqual(
      (tensors.get('0.weight')!.data as Float32Array)[0],
      Math.fround(mlp.init_state_dict['0.weight'].data[0]),
    );
  });

  it('converts its F16 and BF16 tensors', () => {
    // Expected values from Python's struct module on the same bytes: '<e' for F16, '<f' of 2 zero bytes + the
    // bf16 bytes for BF16 (independent of the code under test).
    assert.deepEqual(
      [...toFloat32Array(tensors.get('extra.half')!)],
      [-2.123046875, -0.28076171875, 0.80322265625, -0.40673828125, -1.0361328125, 0.84228515625],
    );
    assert.deepEqual([...tensors.get('extra.half')!.data], [0xc03f, 0xb47e, 0x3a6d, 0xb682, 0xbc25, 0x3abd]);
    assert.deepEqual(
      [...toFloat32Array(tensors.get('extra.bf16')!)],
      [-1.2734375, -0.4765625, -2.046875, -0.54296875],
    );
  });

  it('re-encodes to the same layout and bytes (metadata first, as the Rust writer puts it)', () => {
    const again = encodeSafetensors(tensors, metadata);
    const a = headerOf(again);
    const b = headerOf(mlpBytes);
    assert.equal(a.n, b.n);
    assert.deepEqual(JSON.parse(a.text), JSON.parse(b.text));
    const names = (text: string) => Object.keys(JSON.parse(text)).filter((k) => k !== '__metadata__');
    assert.deepEqual(names(a.text), names(b.text));
    assert.deepEqual(again.subarray(8 + a.n), mlpBytes.subarray(8 + b.n));
  });

  it('returns zero-copy views when aligned, copies otherwise', () => {
    const w = tensors.get('0.weight')!;
    assert.equal(w.data.buffer, mlpBytes.buffer);
    const shifted = new Uint8Array(mlpBytes.length + 1);
    shifted.set(mlpBytes, 1);
    const u = decodeSafetensors(shifted.subarray(1)).tensors.get('0.weight')!;
    assert.notEqual(u.data.buffer, shifted.buffer);
    assert.deepEqual(u.data, w.data);
  });
});

describe('encodeSafetensors', () => {
  const entries: Record<string, TensorEntry> = {
    b_bool: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
    u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
    i8: { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) },
    i16: { dtype: 'I16', shape: [1], data: new Int16Array([-32768]) },
    f16: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xfc00]) },
    bf16: { dtype: 'BF16', shape: [1], data: new Uint16Array([0x7fc0]) },
    i32: { dtype: 'I32', shape: [2, 1], data: new Int32Array([-1, 2147483647]) },
    f32: { dtype: 'F32', shape: [2, 2], data: new Float32Array([1.5, -0, Infinity, 3e-45]) },
    empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    f64: { dtype: 'F64', shape: [], data: new Float64Array([Math.PI]) },
    i64: { dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 63n), 2n ** 62n]) },
    '0': { dtype: 'F32', shape: [1], data: new Float32Array([7]) },
  };

  it('round-trips every dtype, scalars and empty tensors', () => {
    const { tensors, metadata } = decodeSafetensors(encodeSafetensors(entries, { format: 'pt', note: 'é' }));
    assert.deepEqual(metadata, { format: 'pt', note: 'é' });
    assert.deepEqual(Object.fromEntries(tensors), entries);
    assert.equal(decodeSafetensors(encodeSafetensors(entries)).metadata, undefined);
  });

  it('pads the header with spaces to a multiple of 8, orders by descending dtype then name, aligns data', () => {
    const bytes = encodeSafetensors(entries);
    const { n, text } = headerOf(bytes);
    assert.equal(n % 8, 0);
    assert.match(text, /^\{.*\} *$/);
    const header = JSON.parse(text) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    // Names in file order (Object.keys would move the integer-like '0' first).
    const order = [...text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]!);
    assert.deepEqual(order, [
      'i64',
      'f64',
      '0',
      'empty',
      'f32',
      'i32',
      'bf16',
      'f16',
      'i16',
      'i8',
      'u8',
      'b_bool',
    ]);
    let pos = 0;
    for (const {
      dtype,
      data_offsets: [begin, end],
    } of order.map((k) => header[k]!)) {
      assert.equal(begin, pos);
      const size = { I64: 8, F64: 8, F32: 4, I32: 4, BF16: 2, F16: 2, I16: 2 }[dtype] ?? 1;
      assert.equal((8 + n + begin) % size, 0, `${dtype} aligned`);
      pos = end;
    }
    assert.equal(8 + n + pos, bytes.length);
  });

  it("matches the reference writer's bytes (tests of safetensors/src/tensor.rs)", () => {
    assert.deepEqual([...encodeSafetensors({})], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const meta = encodeSafetensors({}, { framework: 'pt' });
    assert.deepEqual(headerOf(meta), { n: 40, text: '{"__metadata__":{"framework":"pt"}}     ' });
    const attn = encodeSafetensors({
      attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
    });
    assert.deepEqual(headerOf(attn), {
      n: 72,
      text: '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ',
    });
    assert.deepEqual([...attn.subarray(80, 88)], [0, 0, 0, 0, 0, 0, 128, 63]);
  });

  it('rejects bad entries', () => {
    const f32 = (shape: number[], n: number): TensorEntry => ({
      dtype: 'F32',
      shape,
      data: new Float32Array(n),
    });
    assert.throws(
      () => encodeSafetensors({ w: f32([2, 3], 5) }),
      /encodeSafetensors: tensor 'w': data length does not match shape \[2,3\] \(got 5, expected 6\)/,
    );
    assert.throws(
      () =>
        encodeSafetensors({
          w: { dtype: 'F16', shape: [1], data: new Float32Array(1) } as unknown as TensorEntry,
        }),
      /tensor 'w': F16 data must be a Uint16Array \(got Float32Array\)/,
    );
    assert.throws(
      () => encodeSafetensors({ w: f32([-1], 0) }),
      /tensor 'w': shape must be an array of non-negative/,
    );
    assert.throws(() => encodeSafetensors({ __metadata__: f32([1], 1) }), /'__metadata__' is reserved/);
    assert.throws(
      () => encodeSafetensors({}, { epoch: 3 } as unknown as Record<string, string>),
      /metadata must map strings to strings \(key 'epoch' has number\)/,
    );
    assert.throws(
      () =>
        encodeSafetensors({
          w: { dtype: 'F17', shape: [], data: new Float32Array(1) } as unknown as TensorEntry,
        }),
      ValueError,
    );
  });
});

describe('decodeSafetensors rejects corrupt files with a FormatError naming the file and the problem', () => {
  const f32Info = (begin: number, end: number, shape = [(end - begin) / 4]) =>
    `{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":[${begin},${end}]}`;
  const rejects = (bytes: Uint8Array, message: RegExp) =>
    assert.throws(
      () => decodeSafetensors(bytes, 'bad.safetensors'),
      (err: Error) => {
        assert.ok(err instanceof FormatError, `FormatError, got ${err}`);
        assert.equal(err.file, 'bad.safetensors');
        assert.match(err.message, /^decodeSafetensors: bad\.safetensors: /);
        assert.match(err.message, message);
        return true;
      },
    );

  it('truncated files', () => {
    rejects(
      mlpBytes.subarray(0, mlpBytes.length - 10),
      /tensor 'extra.half' ends at byte 1768 of the data buffer, which has only 1758 bytes/,
    );
    rejects(
      mlpBytes.subarray(0, 100),
      /header length 912 runs past the end of the file \(got 100 bytes, expected at least 920\)/,
    );
    rejects(mlpBytes.subarray(0, 5), /file is too short for the 8-byte header length \(got 5 bytes\)/);
  });

  it('a header length beyond MAX_HEADER_SIZE', () => {
    const bytes = makeFile('{}');
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    rejects(bytes, /header length 18446744073709551615 exceeds MAX_HEADER_SIZE \(100000000\)/);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(MAX_HEADER_SIZE + 1), true);
    rejects(bytes, /exceeds MAX_HEADER_SIZE/);
  });

  it('headers that are not a JSON object', () => {
    rejects(makeFile('{"a": '), /header is not valid JSON \(/);
    rejects(makeFile(' {}'), /header must start with '\{' \(got " \{\}"\)/);
    rejects(makeFile('[]'), /header must start with '\{'/);
    rejects(makeFile('\uFEFF{}'), /header must start with '\{'/);
    const badUtf8 = makeFile('{  }');
    badUtf8[9] = 0xff;
    rejects(badUtf8, /header is not valid UTF-8/);
  });

  it('unknown and unsupported dtypes, bad shapes and offsets', () => {
    const data = new Uint8Array(4);
    rejects(
      makeFile('{"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}', data),
      /tensor 'w': unknown dtype "F17" \(expected one of BOOL, U8/,
    );
    rejects(
      makeFile('{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}', data),
      /tensor 'w': dtype F8_E4M3 is not supported/,
    );
    rejects(
      makeFile('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', data),
      /tensor 'w': shape must be a list of non-negative integers \(got \[-1\]\)/,
    );
    rejects(
      makeFile('{"w":{"dtype":"F32","shape":[0.5],"data_offsets":[0,4]}}', data),
      /shape must be a list of non-negative integers/,
    );
    rejects(
      makeFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', data),
      /data_offsets must be \[BEGIN, END\] with 0 <= BEGIN <= END \(got \[4,0\]\)/,
    );
    rejects(makeFile('{"w":{"dtype":"F32","shape":[1]}}', data), /tensor 'w': data_offsets must be/);
    rejects(
      makeFile('{"w":[1,2]}', data),
      /tensor 'w': expected \{dtype, shape, data_offsets\} \(got \[1,2\]\)/,
    );
  });

  it('a byte count that does not match dtype and shape', () => {
    rejects(
      makeFile(`{"w":${f32Info(0, 12, [2])}}`, new Uint8Array(12)),
      /tensor 'w': data_offsets \[0,12\] do not fit F32\[2\] \(got 12 bytes, expected 8\)/,
    );
  });

  it('holes, overlaps and trailing bytes in the data buffer', () => {
    rejects(
      makeFile(`{"a":${f32Info(0, 4)},"b":${f32Info(8, 12)}}`, new Uint8Array(12)),
      /hole in the data buffer: bytes \[4,8\) belong to no tensor/,
    );
    rejects(makeFile(`{"b":${f32Info(4, 8)}}`, new Uint8Array(8)), /hole in the data buffer: bytes \[0,4\)/);
    rejects(
      makeFile(`{"a":${f32Info(0, 8)},"b":${f32Info(4, 12)}}`, new Uint8Array(12)),
      /tensors 'a' \[0,8\) and 'b' \[4,12\) overlap/,
    );
    rejects(
      makeFile(`{"a":${f32Info(0, 8)},"b":${f32Info(0, 8)}}`, new Uint8Array(8)),
      /tensors 'a' \[0,8\) and 'b' \[0,8\) overlap/,
    );
    rejects(
      makeFile(`{"a":${f32Info(0, 8)}}`, new Uint8Array(12)),
      /data buffer has 12 bytes but the tensors cover only 8/,
    );
  });

  it('duplicate keys, also when spelled differently, also nested', () => {
    rejects(
      makeFile(`{"a":${f32Info(0, 4)},"a":${f32Info(4, 8)}}`, new Uint8Array(8)),
      /duplicate key "a" in the header/,
    );
    rejects(
      makeFile(`{"a":${f32Info(0, 4)},"\\u0061":${f32Info(0, 4)}}`, new Uint8Array(4)),
      /duplicate key "a"/,
    );
    rejects(
      makeFile('{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)),
      /duplicate key "dtype"/,
    );
  });

  it('metadata that is not a string to string map', () => {
    rejects(
      makeFile('{"__metadata__":{"epoch":3}}'),
      /'__metadata__' must map strings to strings \(key 'epoch' has number\)/,
    );
    rejects(makeFile('{"__metadata__":["pt"]}'), /'__metadata__' must be an object \(got \["pt"\]\)/);
  });

  it('accepts the edge cases the format allows', () => {
    // Zero-size tensors anywhere, no tensors at all, keys in any order, extra whitespace.
    const ok = decodeSafetensors(
      makeFile(
        `{ "b" : ${f32Info(4, 8)}, "z":{"dtype":"I64","shape":[2,0],"data_offsets":[4,4]}, "a":${f32Info(0, 4)} }   `,
        new Uint8Array(8),
      ),
    );
    assert.deepEqual([...ok.tensors.keys()], ['a', 'z', 'b']);
    assert.equal(decodeSafetensors(makeFile('{}')).tensors.size, 0);
  });
});

describe('saveSafetensors / loadSafetensors', () => {
  it('round-trips through a file, atomically', async () => {
    const path = join(root, 'model.safetensors');
    const entries = { w: fromFloat32Array(new Float32Array([1, 2, 3, 4]), [2, 2]) };
    await saveSafetensors(path, entries, { format: 'pt' });
    const loaded = await loadSafetensors(path);
    assert.deepEqual(Object.fromEntries(loaded.tensors), entries);
    assert.deepEqual(readdirSync(root), ['model.safetensors']);
    // A save that fails leaves the previous file untouched.
    const bad = { w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } as TensorEntry };
    await assert.rejects(saveSafetensors(path, bad), /encodeSafetensors: tensor 'w'/);
    assert.deepEqual(readFileSync(path), Buffer.from(encodeSafetensors(entries, { format: 'pt' })));
  });

  it('names the path in errors', async () => {
    const path = join(root, 'corrupt.safetensors');
    writeFileSync(path, mlpBytes.subarray(0, 1000));
    await assert.rejects(loadSafetensors(path), (err: Error) => {
      assert.ok(err instanceof FormatError);
      assert.ok(err.message.startsWith(`loadSafetensors: ${path}: `), err.message);
      return true;
    });
  });

  it('a directory is a FormatError naming it (Node says EISDIR without the path)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minibatch-safetensors-dir-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    await assert.rejects(loadSafetensors(dir), (err: Error) => {
      assert.ok(err instanceof FormatError, String(err));
      assert.equal(err.message, `loadSafetensors: ${dir}: is a directory, not a safetensors file`);
      assert.equal((err as { code?: string }).code, 'EISDIR');
      return true;
    });
    // A missing file keeps Node's error, which names the path.
    await assert.rejects(loadSafetensors(join(dir, 'none.safetensors')), { code: 'ENOENT' });
  });
});

describe('float16 and bfloat16 conversions', () => {
  it('f32ToF16 rounds to nearest even, with overflow, subnormals, signed zero and NaN right', () => {
    // [input (a float32), expected bits]: from Python's struct.pack('<e'), except the overflows (struct raises
    // OverflowError where IEEE rounding gives infinity).
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2.5, 0xc100],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00],
      [-1e5, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [9.99999993922529e-9, 0x0000],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie -> even (0)
      [3 * 2 ** -25, 0x0002], // tie -> even (2)
      [1.5 * 2 ** -24, 0x0002],
      [2.5 * 2 ** -24, 0x0002],
      [2 ** -14, 0x0400],
      [2 ** -14 - 2 ** -24, 0x03ff],
      [2 ** -14 - 2 ** -25, 0x0400], // subnormal rounding up into the normals
      [1 + 2 ** -11, 0x3c00], // tie -> even
      [1 + 3 * 2 ** -11, 0x3c02], // tie -> even
      [1.0004892349243164, 0x3c01],
      [0.10000000149011612, 0x2e66],
      [3.1415927410125732, 0x4248],
      [5.999999848427251e-5, 0x03ef],
    ];
    for (const [x, bits] of cases) assert.equal(f32ToF16(x), bits, `f32ToF16(${x})`);
    assert.equal(f32ToF16(Number.NaN) & 0x7fff, 0x7e00);
  });

  it('f16 -> f32 -> f16 is the identity on all 65536 patterns (NaNs become quiet NaNs)', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = f16ToF32(h);
      if (Number.isNaN(x)) assert.equal(f32ToF16(x) & 0x7fff, 0x7e00);
      else assert.equal(f32ToF16(x), h, `pattern ${h.toString(16)}`);
    }
    assert.equal(f16ToF32(0x0001), 2 ** -24);
    assert.equal(f16ToF32(0x7bff), 65504);
    assert.equal(Object.is(f16ToF32(0x8000), -0), true);
  });

  it('f32ToBf16 rounds to nearest even as c10::BFloat16 does', () => {
    assert.equal(f32ToBf16(1), 0x3f80);
    assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // halfway between 0x3f80 and 0x3f81: even
    assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // halfway between 0x3f81 and 0x3f82: even
    assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
    assert.equal(f32ToBf16(-0), 0x8000);
    assert.equal(f32ToBf16(3.4028234663852886e38), 0x7f80); // max float rounds up to inf
    assert.equal(f32ToBf16(-Infinity), 0xff80);
    assert.equal(f32ToBf16(Number.NaN), 0x7fc0);
    for (let b = 0; b < 0x10000; b++) {
      const x = bf16ToF32(b);
      if (!Number.isNaN(x)) assert.equal(f32ToBf16(x), b);
    }
  });

  it('toFloat32Array / fromFloat32Array convert every float dtype', () => {
    const x = new Float32Array([1, -2.5, 0.1]);
    assert.equal(toFloat32Array({ dtype: 'F32', shape: [3], data: x }), x);
    assert.deepEqual(toFloat32Array(fromFloat32Array(x, [3], 'F64')), x);
    assert.deepEqual(fromFloat32Array(x, [3], 'F16').data, new Uint16Array([0x3c00, 0xc100, 0x2e66]));
    assert.deepEqual(
      toFloat32Array(fromFloat32Array(x, [3], 'F16')),
      new Float32Array([1, -2.5, 0.0999755859375]),
    );
    assert.deepEqual(
      toFloat32Array(fromFloat32Array(x, [3], 'BF16')),
      new Float32Array([1, -2.5, 0.10009765625]),
    );
    assert.throws(
      () => toFloat32Array({ dtype: 'I32', shape: [1], data: new Int32Array(1) }),
      /toFloat32Array: dtype I32 is not a float dtype/,
    );
  });
});
