#!/usr/bin/python3
"""/metrics for real: Debian's promtool accepts the exposition, and a
Prometheus server on loopback (temp dir, 1 s scrape interval, the bearer
token from a file) scrapes nnlabd and answers a query for the steps counter
of a job that ran."""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

TOKEN = "prometheus-test-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnlabd", required=True)
    ap.add_argument("--nnlab", required=True)
    ap.add_argument("--spec", required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nnlab-prom-")
    procs = []
    try:
        token_file = os.path.join(tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN)
        log = open(os.path.join(tmp, "nnlabd.log"), "w")
        nnlabd = subprocess.Popen(
            [a.nnlabd, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
             f"--data_dir={tmp}/data", f"--token_file={token_file}",
             "--blas_threads=1"], stdout=subprocess.PIPE, stderr=log, text=True)
        procs.append(nnlabd)
        grpc = int(re.search(r"port (\d+)", nnlabd.stdout.readline()).group(1))
        http = int(re.search(r"http on port (\d+)", nnlabd.stdout.readline()).group(1))

        def cli(*args):
            return subprocess.run(
                [a.nnlab, f"--server=127.0.0.1:{grpc}", f"--token={TOKEN}", *args],
                check=True, capture_output=True, text=True).stdout
        cli("models", "create", "--spec", a.spec, "--id", "mlp")
        job = cli("train", "--model", "mlp", "--dataset", "mnist",
                  "--max_steps", "30", "--label", "prom", "-q").strip()
        wait_for("the job", lambda: "COMPLETED" in cli("jobs", "get", job).upper())

        req = urllib.request.Request(f"http://127.0.0.1:{http}/metrics",
                                     headers={"Authorization": "Bearer " + TOKEN})
        text = urllib.request.urlopen(req, timeout=10).read()
        check = subprocess.run(["promtool", "check", "metrics"], input=text,
                               capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr
        print(f"promtool check metrics: OK ({len(text)} bytes)")

        port = free_port()
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: nnlabd
    authorization:
      credentials_file: {token_file}
    static_configs:
      - targets: ["127.0.0.1:{http}"]
""")
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={tmp}/tsdb", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prom.log"), "w"))
        procs.append(prom)
        query = urllib.parse.quote(f'nnlab_job_steps_total{{job_id="{job}"}}')

        def answer():
            try:
                r = json.load(urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v1/query?query={query}", timeout=5))
            except OSError:
                return None
            result = r.get("data", {}).get("result", [])
            return result[0] if result else None
        got = wait_for("Prometheus to scrape nnlabd", answer, timeout=90)
        assert got["metric"]["label"] == "prom", got
        assert got["metric"]["model_id"] == "mlp", got
        assert float(got["value"][1]) == 30, got
        print(f"Prometheus query: {got['metric']['__name__']} = {got['value'][1]}")
        nnlabd.terminate()
        code = nnlabd.wait(timeout=30)
        if code != 0:
            log.close()
            with open(log.name) as f:
                sys.stderr.write(f.read()[-20000:])
            raise AssertionError(f"nnlabd exited with {code}")
        print("PASS")
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
