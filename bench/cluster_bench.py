#!/usr/bin/python3
"""Data-parallel training through the service: one nnlabd with T threads
against N nnlabd processes (a coordinator and N-1 workers on loopback) with
T threads each, for bench/throughput.cc's wide-mlp and resnet-small, using
the same model specs, optimizers and per-replica batches through the CLI.

For each configuration it starts fresh servers, runs one job with
`nnlab --json train --watch --every 1`, and reads every step event:
step time = the interval between consecutive step events on rank 0 (the
event's `time`), allreduce time = the event's `comm_seconds`, compute =
step - allreduce. It reports medians over the steps after a warm-up, the
global samples/s they imply (replicas x per-replica batch / median step),
and the gradient bytes each replica puts into the one allreduce per step
(4 bytes x (parameters + 2): the flat buffer also carries loss and correct
count) with what a ring sends per replica, 2(N-1)/N x that.

Usage (from the repository root, after building nnlabd and nnlab):
  /usr/bin/python3 bench/cluster_bench.py                  # 1x2 vs 2x1
  /usr/bin/python3 bench/cluster_bench.py --threads 1 --replicas 1,2,4,8
  options: --runs RxT,... --workloads wide-mlp,resnet-small --steps N
           --warmup N --rounds N --nnlabd PATH --nnlab PATH --json
A run of R replicas x T threads wants R x T free cores: on a machine with
fewer, the replicas share cores and the numbers say so.
"""

import argparse
import calendar
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WIDE_MLP = """
name: "wide-mlp"
input_shape: [784]
layers { dense { units: 1024 } }
layers { relu {} }
layers { dense { units: 1024 } }
layers { relu {} }
layers { dense { units: 10 } }
loss: LOSS_SOFTMAX_CROSS_ENTROPY
init: INIT_HE
seed: 1
"""

# bench/throughput.cc's workloads: model, data set, optimizer flags and the
# per-replica batch.
WORKLOADS = {
    "wide-mlp": {
        "spec_text": WIDE_MLP,
        "dataset": "mnist",
        "train": ["--optimizer", "adam", "--lr", "0.001", "--batch", "256"],
        "batch": 256,
    },
    "resnet-small": {
        "spec_file": os.path.join(REPO, "examples", "resnet_fashion.textproto"),
        "dataset": "fashion-mnist",
        "train": ["--optimizer", "momentum", "--lr", "0.05", "--momentum",
                  "0.9", "--batch", "64", "--sample_shape", "1,28,28"],
        "batch": 64,
    },
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """R nnlabd processes on loopback, T BLAS threads each; rank 0 is the
    coordinator the CLI talks to."""

    def __init__(self, args, replicas, threads, scratch):
        self.args = args
        self.procs = []
        self.token = os.path.join(scratch, "token")
        with open(self.token, "w") as f:
            f.write(os.urandom(16).hex() + "\n")
        self.server = "127.0.0.1:%d" % free_port()
        for r in range(replicas):
            listen = self.server if r == 0 else "127.0.0.1:%d" % free_port()
            cmd = [args.nnlabd, "--listen=" + listen,
                   "--data_dir=" + os.path.join(scratch, "member%d" % r),
                   "--token_file=" + self.token,
                   "--blas_threads=%d" % threads,
                   "--collective_listen=127.0.0.1"]
            if r > 0:
                cmd.append("--join=" + self.server)
            log = open(os.path.join(scratch, "member%d.log" % r), "w")
            self.procs.append(subprocess.Popen(cmd, stdout=log,
                                               stderr=subprocess.STDOUT))
            self.wait(lambda: self.cli("health", check=False).returncode == 0,
                      "member %d to serve" % r)
        self.wait(lambda: self.members() == replicas,
                  "%d members to join" % replicas)

    def cli(self, *argv, check=True, json_out=False, timeout=60):
        cmd = [self.args.nnlab, "--server", self.server, "--token_file",
               self.token, "--timeout", str(timeout)]
        if json_out:
            cmd.append("--json")
        p = subprocess.run(cmd + list(argv), capture_output=True, text=True)
        if check and p.returncode != 0:
            sys.exit("nnlab %s failed (%d): %s" %
                     (" ".join(argv), p.returncode, p.stderr.strip()))
        return p

    def members(self):
        p = self.cli("cluster", "list", check=False, json_out=True)
        if p.returncode != 0:
            return 0
        members = json.loads(p.stdout).get("members", [])
        return sum(1 for m in members if m.get("alive"))

    def wait(self, ok, what):
        for _ in range(240):
            for p in self.procs:
                if p.poll() is not None:
                    sys.exit("an nnlabd exited while waiting for " + what)
            if ok():
                return
            time.sleep(0.25)
        sys.exit("timed out waiting for " + what)

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def parse_time(stamp):
    """RFC 3339 UTC ("2026-12-05T00:11:12.123456789Z") -> seconds."""
    date, frac = stamp.rstrip("Z"), "0"
    if "." in date:
        date, frac = date.split(".")
    whole = calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S"))
    return whole + float("0." + frac)


def run_one(args, name, replicas, threads):
    w = WORKLOADS[name]
    scratch = tempfile.mkdtemp(prefix="nnlab-cluster-bench-")
    cluster = None
    try:
        cluster = Cluster(args, replicas, threads, scratch)
        spec = w.get("spec_file")
        if spec is None:
            spec = os.path.join(scratch, name + ".textproto")
            with open(spec, "w") as f:
                f.write(w["spec_text"])
        model = cluster.cli("models", "create", "-q", "--spec",
                            spec).stdout.strip()
        info = json.loads(cluster.cli("models", "get", model,
                                      json_out=True).stdout)
        params = int(info.get("parameterCount", 0))
        # No evaluation or checkpoint inside the timed steps.
        far = str(10 * (args.steps + 1))
        p = cluster.cli("train", "--model", model, "--dataset", w["dataset"],
                        *w["train"], "--max_steps", str(args.steps),
                        "--eval_every", far, "--checkpoint_every", far,
                        "--stats_every", "-1", "--replicas", str(replicas),
                        "--epochs", "1000",  # --max_steps ends the job
                        "--watch", "--every", "1", "--no_layers",
                        json_out=True, check=False, timeout=600)
        steps = {}
        final = None
        for line in p.stdout.splitlines():
            o = json.loads(line)
            if o.get("phase") == "PHASE_TRAIN":
                steps[int(o["step"])] = o
            elif "jobId" in o and "state" in o:
                final = o
        if p.returncode != 0 or final is None or \
                final.get("state") != "JOB_STATE_COMPLETED":
            sys.exit("%s %dx%d: job did not complete: %s %s" %
                     (name, replicas, threads, p.stderr.strip(),
                      (final or {}).get("error", "")))
        order = sorted(steps)
        step_s, comm_s, compute_s = [], [], []
        for prev, cur in zip(order, order[1:]):
            if cur <= args.warmup or cur != prev + 1:
                continue
            dt = parse_time(steps[cur]["time"]) - \
                parse_time(steps[prev]["time"])
            comm = float(steps[cur].get("commSeconds", 0))
            step_s.append(dt)
            comm_s.append(comm)
            compute_s.append(dt - comm)
        if len(step_s) < 5:
            sys.exit("%s %dx%d: only %d timed steps" %
                     (name, replicas, threads, len(step_s)))
        return params, step_s, comm_s, compute_s
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def summarise(name, replicas, threads, params, step_s, comm_s, compute_s):
    step = statistics.median(step_s)
    comm = statistics.median(comm_s)
    buffer_bytes = 4 * (params + 2)
    batch = WORKLOADS[name]["batch"]
    return {
        "workload": name, "replicas": replicas, "threads": threads,
        "batch_per_replica": batch, "parameters": params,
        "timed_steps": len(step_s),
        "step_ms": 1e3 * step, "comm_ms": 1e3 * comm,
        "compute_ms": 1e3 * statistics.median(compute_s),
        "comm_share": comm / step,
        "samples_per_sec": replicas * batch / step,
        "allreduce_buffer_bytes": buffer_bytes if replicas > 1 else 0,
        "ring_bytes_per_replica": 2 * (replicas - 1) / replicas * buffer_bytes,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nnlabd", default=os.path.join(REPO, "build", "server",
                                                     "nnlabd"))
    ap.add_argument("--nnlab", default=os.path.join(REPO, "build", "client",
                                                    "nnlab"))
    ap.add_argument("--workloads", default="wide-mlp,resnet-small")
    ap.add_argument("--runs", default="1x2,2x1",
                    help="replicas x threads per replica, comma-separated")
    ap.add_argument("--replicas", help="e.g. 1,2,4,8 (with --threads): "
                    "a scaling series instead of --runs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the configurations in turn this many times "
                    "and pool their steps (drifting load hits all alike)")
    ap.add_argument("--json", action="store_true",
                    help="one JSON object per configuration")
    args = ap.parse_args()
    if args.replicas:
        runs = [(int(r), args.threads) for r in args.replicas.split(",")]
    else:
        runs = [tuple(int(x) for x in r.split("x"))
                for r in args.runs.split(",")]
    if args.steps <= args.warmup + 5:
        sys.exit("--steps must exceed --warmup by more than 5")
    for name in args.workloads.split(","):
        if name not in WORKLOADS:
            sys.exit("unknown workload %s (known: %s)" %
                     (name, ", ".join(WORKLOADS)))

    load_before = open("/proc/loadavg").read().split()[:3]
    print("# cores %d, load average before: %s" %
          (os.cpu_count(), " ".join(load_before)), flush=True)
    if not args.json:
        print("| workload | replicas x threads | batch (global) | samples/s "
              "| step ms | compute ms | allreduce ms | allreduce share | "
              "allreduce buffer / ring bytes per replica per step |")
        print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for name in args.workloads.split(","):
        pooled = {run: [0, [], [], []] for run in runs}
        for _ in range(args.rounds):
            for run in runs:
                params, step_s, comm_s, compute_s = run_one(args, name, *run)
                pooled[run][0] = params
                for i, xs in enumerate((step_s, comm_s, compute_s)):
                    pooled[run][i + 1].extend(xs)
        base = None
        for replicas, threads in runs:
            r = summarise(name, replicas, threads, *pooled[(replicas, threads)])
            results.append(r)
            if base is None:
                base = r
            r["samples_per_sec_vs_first"] = \
                r["samples_per_sec"] / base["samples_per_sec"]
            if args.json:
                print(json.dumps(r), flush=True)
                continue
            print("| %s | %d x %d | %d (%d) | %.0f (%.2fx) | %.1f | %.1f | "
                  "%.2f | %.1f%% | %s |" %
                  (name, replicas, threads, r["batch_per_replica"],
                   replicas * r["batch_per_replica"], r["samples_per_sec"],
                   r["samples_per_sec_vs_first"], r["step_ms"],
                   r["compute_ms"], r["comm_ms"], 100 * r["comm_share"],
                   "-" if replicas == 1 else "%.2f MB / %.2f MB" %
                   (r["allreduce_buffer_bytes"] / 1e6,
                    r["ring_bytes_per_replica"] / 1e6)), flush=True)
    load_after = open("/proc/loadavg").read().split()[:3]
    print("# load average after: %s; parameters: %s" %
          (" ".join(load_after),
           ", ".join("%s %d" % (r["workload"], r["parameters"])
                     for r in results if r["replicas"] == runs[0][0])))


if __name__ == "__main__":
    main()
