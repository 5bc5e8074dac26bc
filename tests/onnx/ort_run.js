// Runs an ONNX model through ONNX Runtime (onnxruntime-node, CPU) and
// prints its outputs as JSON: {"name": {"dims": [...], "data": [...]}}.
// Usage: node ort_run.js MODEL.onnx INPUT.f32 DIM0,DIM1,...
// INPUT.f32 holds the "input" tensor as little-endian float32.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, inputPath, dims] = process.argv.slice(2);
  const buf = fs.readFileSync(inputPath);
  const data = new Float32Array(
      buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const shape = dims.split(',').map(Number);
  const session = await ort.InferenceSession.create(model);
  const results =
      await session.run({input: new ort.Tensor('float32', data, shape)});
  const out = {};
  for (const name of session.outputNames) {
    out[name] = {dims: results[name].dims, data: Array.from(results[name].data)};
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
