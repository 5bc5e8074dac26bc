#!/usr/bin/python3
"""The workloads of bench/throughput.cc in PyTorch, for the side-by-side table.

Same data (the IDX files under data/, MNIST 8,000 train / 2,000 test,
Fashion-MNIST for the CNN), same models, hyperparameters, batch sizes and
epoch definitions as nnlab's throughput tool; prints one JSON line per
(workload, threads) in the same schema. Run with Debian's /usr/bin/python3
(apt-get install python3-torch).

  torch_reference.py [--workload=NAME[,NAME...]] [--threads=N[,N...]]
                     [--epochs=N] [--json] [--list]

Threads: torch.set_num_threads(N) plus OMP_NUM_THREADS / OPENBLAS_NUM_THREADS
(Debian's torch does its matrix products in OpenBLAS, which sizes its own
pool from the environment), so both pools are capped at N. Each
(workload, threads) runs in a fresh interpreter (this script re-executed),
so the thread settings take effect before torch loads and peak RSS belongs
to one workload. bench/compare.sh runs it twice, out of the box and tuned
(OMP_WAIT_POLICY=PASSIVE and glibc malloc tunables), and keeps the better.
"""

import json
import os
import resource
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NNLAB_DATASETS_DIR", os.path.join(REPO, "data"))

# name -> (description, default timed epochs)
WORKLOADS = {
    "lecture-b10": ("[784,30,30,30,30,10] sigmoid, SGD 0.1, batch 10", 7),
    "lecture-b64": ("[784,30,30,30,30,10] sigmoid, SGD 0.1, batch 64", 7),
    "wide-mlp": ("[784,1024,1024,10] ReLU, Adam 1e-3, batch 256", 5),
    "wide-mlp-bn-dropout": ("[784,1024,1024,10] dense-BN-ReLU-dropout 0.5, "
                            "Adam 1e-3, batch 256", 5),
    "lstm-rows": ("MNIST rows 28x28, LSTM 128 many-to-one, dense 10, Adam, "
                  "batch 64", 3),
    "resnet-small": ("Fashion-MNIST (6,400-image epochs), conv16 stem + 3 "
                     "residual blocks (16/32/64), GAP, dense 10, SGD momentum "
                     "0.9, batch 64", 3),
    "gan-mlp": ("MNIST, G 64->256 ReLU->784 tanh, D 784->256 leaky ReLU->1, "
                "Adam 2e-4 (beta1 0.5), batch 64, 1 D + 1 G step", 3),
}


def read_idx(path, magic):
    with open(path, "rb") as f:
        data = f.read()
    got, = struct.unpack(">I", data[:4])
    if got != magic:
        raise ValueError(f"{path}: magic {got:#x}, expected {magic:#x}")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def load_images(images, labels):
    import numpy as np
    import torch
    dims, pixels = read_idx(images, 0x803)
    _, lab = read_idx(labels, 0x801)
    x = np.frombuffer(pixels, dtype=np.uint8).reshape(dims[0], dims[1] * dims[2])
    y = np.frombuffer(lab, dtype=np.uint8)
    # Scaled once to [0, 1] floats: what a PyTorch user keeps in memory.
    return (torch.from_numpy(x.astype(np.float32) / 255.0),
            torch.from_numpy(y.astype(np.int64)))


def load(kind):
    if kind == "fashion":
        d = os.path.join(DATA, "fashion-mnist")
        xtr, ytr = load_images(os.path.join(d, "train-images-idx3-ubyte"),
                               os.path.join(d, "train-labels-idx1-ubyte"))
        xte, yte = load_images(os.path.join(d, "t10k-images-idx3-ubyte"),
                               os.path.join(d, "t10k-labels-idx1-ubyte"))
        return xtr, ytr, xte, yte
    d = os.path.join(DATA, "mnist")
    x, y = load_images(os.path.join(d, "digits-images-idx3-ubyte"),
                       os.path.join(d, "digits-labels-idx1-ubyte"))
    return x[:8000], y[:8000], x[8000:], y[8000:]


def mlp(widths, activation, bn_dropout):
    import torch.nn as nn
    layers = []
    for i in range(1, len(widths)):
        layers.append(nn.Linear(widths[i - 1], widths[i]))
        if i + 1 == len(widths):
            break
        if bn_dropout:
            layers.append(nn.BatchNorm1d(widths[i], momentum=0.1))
        layers.append(activation())
        if bn_dropout:
            layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers)


def resnet_small():
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout),
                nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout))
            # nnlab's projection: a 1x1 (strided) convolution with bias.
            self.proj = (nn.Conv2d(cin, cout, 1, stride)
                         if cin != cout or stride != 1 else None)

        def forward(self, x):
            s = x if self.proj is None else self.proj(x)
            return self.body(x) + s

    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(),
        Block(16, 16, 1), nn.ReLU(), Block(16, 32, 2), nn.ReLU(),
        Block(32, 64, 2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def lstm_model():
    import torch.nn as nn

    class LstmRows(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, x):
            out, _ = self.lstm(x.view(-1, 28, 28))
            return self.head(out[:, -1])

    return LstmRows()


def summarise(values):
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return {"median": med, "min": v[0], "max": v[-1]}


def classifier(name, epochs):
    import torch
    import torch.nn as nn
    torch.manual_seed(1)
    if name.startswith("lecture"):
        batch = 10 if name == "lecture-b10" else 64
        model = mlp([784, 30, 30, 30, 30, 10], nn.Sigmoid, False)
        # The lecture's N(0, 1) weights and biases, as nnlab builds it.
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight)
                nn.init.normal_(m.bias)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        data = load("mnist")
    elif name.startswith("wide-mlp"):
        batch = 256
        model = mlp([784, 1024, 1024, 10], nn.ReLU, name.endswith("dropout"))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        data = load("mnist")
    elif name == "lstm-rows":
        batch = 64
        model = lstm_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        data = load("mnist")
    elif name == "resnet-small":
        batch = 64
        model = resnet_small()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        xtr, ytr, xte, yte = load("fashion")
        data = (xtr[:6400], ytr[:6400], xte[:2000], yte[:2000])
    else:
        raise ValueError(name)
    xtr, ytr, xte, yte = data
    loss_fn = nn.CrossEntropyLoss()
    n = xtr.shape[0]
    rates, cpu_rates = [], []
    loss = None
    for epoch in range(epochs + 1):  # Epoch 0 warms up.
        model.train()
        start, cpu_start = time.perf_counter(), time.process_time()
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            x, y = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if epoch > 0:
            rates.append(n / wall)
            cpu_rates.append(n / cpu)
    model.eval()
    infer = []
    with torch.inference_mode():
        for p in range(max(3, epochs) + 1):
            start = time.perf_counter()
            for i in range(0, xte.shape[0], batch):
                model(xte[i:i + batch])
            if p > 0:
                infer.append(xte.shape[0] / (time.perf_counter() - start))
    return batch, n, rates, cpu_rates, infer, xte.shape[0], float(loss)


def gan(epochs):
    import torch
    import torch.nn as nn
    torch.manual_seed(1)
    g = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 784),
                      nn.Tanh())
    d = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2),
                      nn.Linear(256, 1))
    for m in list(g) + list(d):
        if isinstance(m, nn.Linear):  # nnlab's Glorot uniform, zero bias.
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    xtr, _, _, _ = load("mnist")
    b = 64
    steps = (xtr.shape[0] + b - 1) // b
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
    rates, cpu_rates = [], []
    g_loss = None
    for epoch in range(epochs + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            # Discriminator: a real batch (drawn with replacement, as
            # nnlab's DatasetSampler) and a generated one.
            real = xtr[torch.randint(0, xtr.shape[0], (b,))]
            with torch.no_grad():
                fake = g(torch.randn(b, 64))
            d_opt.zero_grad(set_to_none=True)
            d_loss = bce(d(real), ones) + bce(d(fake), zeros)
            d_loss.backward()
            d_opt.step()
            # Generator: fresh noise, non-saturating loss through D.
            g_opt.zero_grad(set_to_none=True)
            g_loss = bce(d(g(torch.randn(b, 64))), ones)
            g_loss.backward()
            g_opt.step()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if epoch > 0:
            rates.append(steps * b / wall)
            cpu_rates.append(steps * b / cpu)
    infer = []
    g.eval()
    with torch.inference_mode():
        for p in range(max(3, epochs) + 1):
            start = time.perf_counter()
            for i in range(0, 2000, b):
                g(torch.randn(min(b, 2000 - i), 64))
            if p > 0:
                infer.append(2000 / (time.perf_counter() - start))
    return b, steps * b, rates, cpu_rates, infer, 2000, float(g_loss)


def run_one(name, threads, epochs, as_json):
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    if name == "gan-mlp":
        batch, n, rates, cpu_rates, infer, n_infer, loss = gan(epochs)
    else:
        batch, n, rates, cpu_rates, infer, n_infer, loss = classifier(
            name, epochs)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    tuned = os.environ.get("OMP_WAIT_POLICY", "") == "PASSIVE"
    r = {
        "tool": "pytorch", "workload": name, "threads": threads,
        "variant": "tuned" if tuned else "default",
        "torch_version": torch.__version__, "batch": batch, "epochs": epochs,
        "train_samples_per_epoch": n,
        "train_samples_per_s": summarise(rates),
        "train_samples_per_cpu_s": summarise(cpu_rates),
        "infer_samples_per_s": summarise(infer), "infer_samples": n_infer,
        "peak_rss_mb": round(rss, 1), "final_loss": round(loss, 4),
    }
    if as_json:
        print(json.dumps(r), flush=True)
    else:
        t = r["train_samples_per_s"]
        print(f"| {name} | {threads} | {r['variant']} | {t['median']:.0f} | "
              f"{t['min']:.0f}-{t['max']:.0f} | "
              f"{r['infer_samples_per_s']['median']:.0f} | {rss:.1f} |",
              flush=True)


def main(argv):
    names, threads, epochs, as_json, child = list(WORKLOADS), [1, 2], 0, False, False
    for arg in argv[1:]:
        if arg.startswith("--workload="):
            names = [n for n in arg.split("=", 1)[1].split(",") if n]
        elif arg.startswith("--threads="):
            threads = [int(t) for t in arg.split("=", 1)[1].split(",") if t]
        elif arg.startswith("--epochs="):
            epochs = int(arg.split("=", 1)[1])
        elif arg == "--json":
            as_json = True
        elif arg == "--child":
            child = True
        elif arg == "--list":
            for n, (desc, _) in WORKLOADS.items():
                print(f"{n:20s} {desc}")
            return 0
        else:
            print(__doc__, file=sys.stderr)
            return 2
    for n in names:
        if n not in WORKLOADS:
            print(f"unknown workload {n!r} (see --list)", file=sys.stderr)
            return 2
    if child:
        name = names[0]
        run_one(name, threads[0], epochs or WORKLOADS[name][1], as_json)
        return 0
    if not as_json:
        print("| workload | threads | variant | train samples/s (median) | "
              "train min-max | infer samples/s | peak RSS MB |\n"
              "|---|---|---|---|---|---|---|", flush=True)
    failures = 0
    for n in names:
        for t in threads:
            env = dict(os.environ, OMP_NUM_THREADS=str(t),
                       OPENBLAS_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
            cmd = [sys.executable, os.path.abspath(__file__), "--child",
                   f"--workload={n}", f"--threads={t}"]
            if epochs:
                cmd.append(f"--epochs={epochs}")
            if as_json:
                cmd.append("--json")
            failures += subprocess.call(cmd, env=env) != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
