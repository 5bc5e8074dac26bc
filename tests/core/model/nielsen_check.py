#!/usr/bin/python3
"""Checks nnlab's Nielsen ch. 5 learning speeds against float64 numpy.

Runs examples/nielsen_ch5 --seeds=1 --dump_dir=TMP, which writes seed 1's
initial parameters and nnlab's ||delta^l|| per hidden layer for
[784, 30, 30, 10], [784, 30, 30, 30, 10] and [784, 30, 30, 30, 30, 10]. Then,
on the same weights, computes in float64, independently of nnlab's code:
the first 1,000 training digits read from the IDX file (pixels / 255),
sigmoid hidden and output units, the cross-entropy cost summed over the ten
one-hot outputs and averaged over the 1,000 digits, backprop
(delta^L = a - y; delta^l = (W^{l+1}^T delta^{l+1}) * sigma'(z^l)), and
||mean over samples of delta^l|| per hidden layer. nnlab computes in float32;
the two must agree to a relative 1e-5 per layer (they agree to ~1e-7).

Usage: nielsen_check.py --nielsen_ch5 BIN --data_dir DIR
(NNLAB_DATASETS_DIR, if set, replaces --data_dir.)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

REL_TOL = 1e-5


def read_idx_images(path, count):
    with open(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    assert magic == 2051, f"{path}: not an IDX image file"
    pixels = np.frombuffer(data[16:], dtype=np.uint8, count=count * rows * cols)
    return pixels.reshape(count, rows * cols).astype(np.float64) / 255.0


def read_idx_labels(path, count):
    with open(path, "rb") as f:
        data = f.read()
    magic, _ = np.frombuffer(data[:8], dtype=">u4")
    assert magic == 2049, f"{path}: not an IDX label file"
    return np.frombuffer(data[8:], dtype=np.uint8, count=count).astype(int)


def load_net(net_dir):
    """[(W [out, in], b [out])] input to output, as float64."""
    layers = []
    with open(os.path.join(net_dir, "params.txt")) as f:
        entries = [line.split(" ", 1) for line in f.read().splitlines()]
    for name, shape in entries:
        dims = [int(d) for d in re.findall(r"\d+", shape)]
        value = np.fromfile(os.path.join(net_dir, name + ".f32"), dtype="<f4")
        value = value.astype(np.float64).reshape(dims)
        if name.endswith(".weight"):
            layers.append([value, None])
        else:
            assert name.endswith(".bias") and layers[-1][1] is None, name
            layers[-1][1] = value
    return layers


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def hidden_speeds(layers, x, labels):
    n = x.shape[0]
    y = np.zeros((n, layers[-1][0].shape[0]))
    y[np.arange(n), labels] = 1.0
    activations, zs = [x], []
    for w, b in layers:
        z = activations[-1] @ w.T + b
        zs.append(z)
        activations.append(sigmoid(z))
    # C = -1/n sum_n sum_k y ln a + (1 - y) ln(1 - a): dC/dz^L = (a - y) / n.
    delta = (activations[-1] - y) / n
    speeds = []
    for l in range(len(layers) - 2, -1, -1):
        s = sigmoid(zs[l])
        delta = (delta @ layers[l + 1][0]) * s * (1.0 - s)
        speeds.append(np.linalg.norm(delta.sum(axis=0)))
    return speeds[::-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nielsen_ch5", required=True)
    parser.add_argument("--data_dir", required=True)
    args = parser.parse_args()
    # The data sets nnlab reads: NNLAB_DATASETS_DIR wins, as in the core.
    data_dir = os.environ.get("NNLAB_DATASETS_DIR") or args.data_dir
    mnist = os.path.join(data_dir, "mnist")
    x = read_idx_images(os.path.join(mnist, "digits-images-idx3-ubyte"), 1000)
    labels = read_idx_labels(os.path.join(mnist, "digits-labels-idx1-ubyte"),
                             1000)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NNLAB_DATASETS_DIR=data_dir)
        subprocess.run([args.nielsen_ch5, "--seeds=1", "--dump_dir=" + tmp],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        for hidden in (2, 3, 4):
            net_dir = os.path.join(tmp, f"h{hidden}")
            with open(os.path.join(net_dir, "speeds.txt")) as f:
                nnlab = [float(v) for v in f.read().split()]
            want = hidden_speeds(load_net(net_dir), x, labels)
            assert len(nnlab) == hidden == len(want), (nnlab, want)
            for l, (got, ref) in enumerate(zip(nnlab, want)):
                rel = abs(got - ref) / ref
                ok = rel < REL_TOL
                failures += not ok
                print(f"{hidden} hidden, layer {l + 1}: nnlab {got:.6g} "
                      f"numpy {ref:.6g} rel {rel:.1e} "
                      f"{'ok' if ok else 'MISMATCH'}")
    if failures:
        print(f"{failures} layer(s) differ by more than {REL_TOL}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
