#!/usr/bin/python3
"""What browsers on the dashboard cost training: the same MNIST job run with
no event-stream clients, with N clients reading /api/jobs/<id>/events, and
with N clients that connect and never read (stalled browsers), alternating
so that drift in the machine's load hits every configuration alike.

  /usr/bin/python3 bench/sse_load.py --nnlabd build/server/nnlabd \
      --nnlab build/client/nnlab [--clients 50] [--steps 3000] [--rounds 3]

Prints each run's training time (the job's end_time - start_time, measured
by the server) and, per configuration, the median's ratio to the median
with no clients. Not a test: timings need a quiet machine."""
import argparse
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOKEN = "bench-token"


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


class Clients:
    """`n` SSE connections to a job's event stream; `read` False: never read."""

    def __init__(self, port, job, n, read):
        self.socks, self.threads, self.bytes = [], [], 0
        self.lock = threading.Lock()
        request = (f"GET /api/jobs/{job}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {TOKEN}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            if not read:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(request)
            self.socks.append(s)
            if read:
                t = threading.Thread(target=self._drain, args=(s,), daemon=True)
                t.start()
                self.threads.append(t)

    def _drain(self, s):
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.bytes += len(chunk)

    def close(self):
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self.threads:
            t.join(timeout=5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnlabd", required=True)
    ap.add_argument("--nnlab", required=True)
    ap.add_argument("--spec", default=os.path.join(
        os.path.dirname(__file__), "..", "examples", "mnist_mlp_100.textproto"))
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nnlab-sse-bench-")
    with open(os.path.join(tmp, "token"), "w") as f:
        f.write(TOKEN)
    server = subprocess.Popen(
        [a.nnlabd, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
         f"--data_dir={tmp}/data", f"--token_file={tmp}/token", "--blas_threads=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        grpc = int(re.search(r"port (\d+)", server.stdout.readline()).group(1))
        http = int(re.search(r"http on port (\d+)", server.stdout.readline()).group(1))

        def cli(*args):
            return subprocess.run(
                [a.nnlab, f"--server=127.0.0.1:{grpc}", f"--token={TOKEN}", *args],
                check=True, capture_output=True, text=True).stdout
        cli("models", "create", "--spec", a.spec, "--id", "mlp")
        configs = [("none", 0, True), ("reading", a.clients, True),
                   ("stalled", a.clients, False)]
        times = {name: [] for name, _, _ in configs}
        for r in range(a.rounds):
            for name, n, read in configs:
                # Queued behind nothing (max_jobs 1, previous job ended), so
                # clients attach before the first step.
                job = cli("train", "--model", "mlp", "--dataset", "mnist",
                          "--max_steps", str(a.steps), "--epochs", "1000",
                          "--stats_every", "1",
                          "--batch", "32", "-q").strip()
                clients = Clients(http, job, n, read)
                while True:
                    j = json.loads(cli("--json", "jobs", "get", job))
                    if j["state"] not in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING"):
                        break
                    time.sleep(0.2)
                clients.close()
                assert j["state"] == "JOB_STATE_COMPLETED", j
                secs = (parse_time(j["endTime"]) - parse_time(j["startTime"])).total_seconds()
                times[name].append(secs)
                print(f"round {r}: {name:8s} {n:3d} clients: {secs:7.3f} s"
                      f"{f', {clients.bytes / 1e6:.1f} MB streamed' if read and n else ''}",
                      flush=True)
        base = statistics.median(times["none"])
        print(f"\nload average: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} CPUs")
        for name, n, _ in configs:
            m = statistics.median(times[name])
            print(f"{name:8s} {n:3d} clients: median {m:.3f} s, ratio {m / base:.3f}")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
