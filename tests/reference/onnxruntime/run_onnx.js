// Runs an ONNX file in onnxruntime (CPU) for the export reference test and the export benchmark.
//
//   node run_onnx.js FILE.onnx INPUT.bin BATCH SIZE OUTPUT.bin [THREADS]
//       runs INPUT.bin (float32 [BATCH, 3, SIZE, SIZE], or float16 when the file's input is float16) once;
//       OUTPUT.bin holds every output as float32, in the session's output order. Prints JSON
//       {"outputs": [{"name", "dims"}]} so the reader can split the file.
//   node run_onnx.js --bench FILE.onnx INPUT.bin COUNT SIZE THREADS PASSES
//       runs the COUNT images of INPUT.bin one at a time (batch 1, a float32 file), PASSES times after one
//       warm-up run, and prints {"images", "seconds", "images_per_second", "onnxruntime"}.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

function toFloat16Bits(values) {
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; ++i) {
    f[0] = values[i];
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    let exp = ((x >>> 23) & 0xff) - 127 + 15;
    let mant = x & 0x7fffff;
    if (exp <= 0) {  // subnormal or zero
      if (exp < -10) { out[i] = sign; continue; }
      mant |= 0x800000;
      const shift = 14 - exp;
      let half = mant >>> shift;
      const rest = mant & ((1 << shift) - 1), mid = 1 << (shift - 1);
      if (rest > mid || (rest === mid && (half & 1))) half++;
      out[i] = sign | half;
      continue;
    }
    if (exp >= 31) { out[i] = sign | 0x7c00; continue; }
    let half = (exp << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++;
    out[i] = sign | half;
  }
  return out;
}

function fromFloat16Bits(bits) {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; ++i) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1, exp = (h >>> 10) & 0x1f, mant = h & 0x3ff;
    if (exp === 0) out[i] = sign * mant * Math.pow(2, -24);
    else if (exp === 31) out[i] = mant ? NaN : sign * Infinity;
    else out[i] = sign * (1 + mant / 1024) * Math.pow(2, exp - 15);
  }
  return out;
}

async function session(file, threads) {
  return ort.InferenceSession.create(file, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all',
  });
}

function inputTensor(inputFile, batch, size, half) {
  const raw = fs.readFileSync(inputFile);
  const values = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  if (values.length !== batch * 3 * size * size) throw new Error(`input has ${values.length} values, expected ${batch * 3 * size * size}`);
  return half ? new ort.Tensor('float16', toFloat16Bits(values), [batch, 3, size, size])
              : new ort.Tensor('float32', Float32Array.from(values), [batch, 3, size, size]);
}

// The feeds for the file's input: float32, or float16 when the session refuses float32 (this version of
// onnxruntime-node does not expose input types).
async function feedsFor(sess, inputFile, batch, size) {
  const float32 = {[sess.inputNames[0]]: inputTensor(inputFile, batch, size, false)};
  try {
    await sess.run(float32);
    return float32;
  } catch (e) {
    if (!/type|float16/i.test(e.message)) throw e;
    return {[sess.inputNames[0]]: inputTensor(inputFile, batch, size, true)};
  }
}

async function runOnce(args) {
  const [file, inputFile, batch, size, outFile, threads] = args;
  const sess = await session(file, Number(threads || 1));
  const feeds = await feedsFor(sess, inputFile, Number(batch), Number(size));
  const results = await sess.run(feeds);
  const parts = [], described = [];
  for (const name of sess.outputNames) {
    const t = results[name];
    const data = t.type === 'float16' ? fromFloat16Bits(t.data) : Float32Array.from(t.data, Number);
    parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    described.push({name, dims: t.dims, type: t.type});
  }
  fs.writeFileSync(outFile, Buffer.concat(parts));
  console.log(JSON.stringify({outputs: described}));
}

async function bench(args) {
  const [file, inputFile, count, size, threads, passes] = args;
  const n = Number(count), s = Number(size);
  const sess = await session(file, Number(threads));
  const raw = fs.readFileSync(inputFile);
  const all = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const per = 3 * s * s;
  if (all.length !== n * per) throw new Error(`input has ${all.length} values, expected ${n * per}`);
  const images = [];
  for (let i = 0; i < n; ++i) images.push({[sess.inputNames[0]]: new ort.Tensor('float32', all.slice(i * per, (i + 1) * per), [1, 3, s, s])});
  await sess.run(images[0]);  // warm-up
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < Number(passes); ++p)
    for (const feeds of images) await sess.run(feeds);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const version = require(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json')).version;
  console.log(JSON.stringify({images: n * Number(passes), seconds, images_per_second: n * Number(passes) / seconds, onnxruntime: version}));
}

const argv = process.argv.slice(2);
(argv[0] === '--bench' ? bench(argv.slice(1)) : runOnce(argv)).catch((e) => {
  console.error(`run_onnx.js: ${e.message}`);
  process.exit(1);
});
