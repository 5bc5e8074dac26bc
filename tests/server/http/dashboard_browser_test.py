#!/usr/bin/python3
"""The dashboard in a real browser (Debian's chromium, headless, driven by
selenium + chromium-driver) against a real nnlabd training MNIST jobs:
login form, jobs table, a loss curve that gains points, one bar per
parametrised layer, pause from the page (checked over gRPC with the nnlab
CLI), a finished job's whole history replayed into a new page, and a
sweep started with `nnlab sweep` overlaid (one curve per trial). No console
errors. With --screenshot, saves a PNG of the dashboard."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import (NoSuchElementException,
                                        StaleElementReferenceException)
from selenium.webdriver.common.by import By

TOKEN = "browser-test-token"
GAN_SPEC = """name: "gan"
noise_dim: 8
generator { layers { dense { units: 32 } } layers { relu {} }
            layers { dense { units: 784 } } layers { sigmoid {} } }
discriminator { layers { dense { units: 32 } } layers { relu {} }
                layers { dense { units: 1 } } }
"""
# An LSTM on MNIST rows: its events carry ||dE/dh_t|| for t = 0..27.
LSTM_SPEC = """name: "rows"
input_shape: [28, 28]
layers { lstm { units: 16 } }
layers { dense { units: 10 } }
loss: LOSS_SOFTMAX_CROSS_ENTROPY
"""
# A small sweep started through the CLI: three learning rates, two at once.
SWEEP_SPEC = """name: "three-rates"
model { name: "m" input_shape: [784] layers { dense { units: 16 } }
        layers { relu {} } layers { dense { units: 10 } }
        loss: LOSS_SOFTMAX_CROSS_ENTROPY init: INIT_HE seed: 1 }
job { dataset: "mnist" epochs: 1 max_steps: 30 batch_size: 32
      eval_every_steps: 10 stats_every: 5 }
axes { field: "job.optimizer.learning_rate" values: ["0.1", "0.01", "0.001"] }
max_concurrent: 2
"""
SWEEP_LABELS = ["job.optimizer.learning_rate=" + lr for lr in ("0.1", "0.01", "0.001")]


def wait_for(what, predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Nnlabd:
    def __init__(self, binary, cli, tmp):
        token_file = os.path.join(tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.log = open(os.path.join(tmp, "nnlabd.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
             f"--data_dir={tmp}/data", f"--token_file={token_file}",
             "--blas_threads=1"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.grpc = int(re.search(r"port (\d+)", self.proc.stdout.readline()).group(1))
        self.http = int(re.search(r"http on port (\d+)", self.proc.stdout.readline()).group(1))
        self.cli = cli

    def nnlab(self, *args):
        out = subprocess.run(
            [self.cli, f"--server=127.0.0.1:{self.grpc}", f"--token={TOKEN}",
             "--json", *args], check=True, capture_output=True, text=True)
        return out.stdout

    def job(self, job_id):
        return json.loads(self.nnlab("jobs", "get", job_id))

    def stop(self):
        """SIGTERM; the server must exit 0 (a sanitizer report would not)."""
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self.log.close()
        if code != 0:
            with open(self.log.name) as f:
                sys.stderr.write(f.read()[-20000:])
            raise AssertionError(f"nnlabd exited with {code}")


def browser(tmp):
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1700",
                 f"--user-data-dir={tmp}/chromium"]:
        o.add_argument(flag)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def js(driver, expr):
    return driver.execute_script("return " + expr)


def click(driver, css):
    """Clicks `css`; False if it is not there or went stale (the jobs table
    is redrawn every 2 s), for wait_for to retry."""
    try:
        driver.find_element(By.CSS_SELECTOR, css).click()
        return True
    except (NoSuchElementException, StaleElementReferenceException):
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnlabd", required=True)
    ap.add_argument("--nnlab", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--screenshot", default="")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nnlab-browser-")
    server = Nnlabd(a.nnlabd, a.nnlab, tmp)
    driver = None
    try:
        server.nnlab("models", "create", "--spec", a.spec, "--id", "mlp")
        # A short job that completes first (replayed later), then one that
        # cannot finish before the test pauses it.
        done = json.loads(server.nnlab(
            "train", "--model", "mlp", "--dataset", "mnist", "--max_steps", "40",
            "--eval_every", "20", "--label", "short"))["jobId"]
        wait_for("the short job", lambda: server.job(done)["state"] == "JOB_STATE_COMPLETED")
        gan_spec = os.path.join(tmp, "gan.textproto")
        with open(gan_spec, "w") as f:
            f.write(GAN_SPEC)
        server.nnlab("models", "create", "--spec", gan_spec, "--id", "gan")
        gan = json.loads(server.nnlab(
            "train", "--model", "gan", "--dataset", "mnist", "--max_steps", "30",
            "--label", "gan"))["jobId"]
        wait_for("the GAN job", lambda: server.job(gan)["state"] == "JOB_STATE_COMPLETED")
        lstm_spec = os.path.join(tmp, "lstm.textproto")
        with open(lstm_spec, "w") as f:
            f.write(LSTM_SPEC)
        server.nnlab("models", "create", "--spec", lstm_spec, "--id", "rows")
        lstm = json.loads(server.nnlab(
            "train", "--model", "rows", "--dataset", "mnist", "--sample_shape",
            "28", "28", "--max_steps", "10", "--stats_every", "1",
            "--label", "lstm"))["jobId"]
        wait_for("the LSTM job", lambda: server.job(lstm)["state"] == "JOB_STATE_COMPLETED")
        long_job = json.loads(server.nnlab(
            "train", "--model", "mlp", "--dataset", "mnist", "--epochs", "10000",
            "--batch", "16", "--eval_every", "100", "--stats_every", "5",
            "--optimizer", "adam", "--label", "long"))["jobId"]

        driver = browser(tmp)
        base = f"http://127.0.0.1:{server.http}"
        driver.get(base + "/")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "login").click()
        wait_for("the dashboard", lambda: driver.find_elements(By.ID, "jobs"))
        driver.get_log("browser")  # The login page's 401 is expected.

        row = f'tr[data-job="{long_job}"]'
        wait_for("the jobs table", lambda: driver.find_elements(By.CSS_SELECTOR, row))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")) == 4
        wait_for("selecting the long job", lambda: click(driver, row + " td.job"))
        points = "(selected && selected.series.cols.train_loss ? selected.series.cols.train_loss.filter(v => v !== null).length : 0)"
        first = wait_for("loss points", lambda: js(driver, points))
        more = wait_for("more loss points", lambda: (n := js(driver, points)) > first + 20 and n)
        print(f"loss curve: {first} then {more} points")
        bars = wait_for("per-layer bars", lambda: driver.find_elements(By.CSS_SELECTOR, "#bars .bar"))
        assert len(bars) == 2, f"{len(bars)} bars for 2 dense layers"
        assert js(driver, "document.querySelectorAll('#chart-loss canvas').length") > 0
        if a.screenshot:
            time.sleep(1.5)
            driver.save_screenshot(a.screenshot)

        wait_for("the pause button", lambda: click(driver, row + " button.pause"))
        wait_for("the job paused over gRPC",
                 lambda: server.job(long_job)["state"] == "JOB_STATE_PAUSED")
        print("paused from the page; gRPC says PAUSED")
        server.nnlab("jobs", "cancel", long_job)

        # A new page, the finished job: its whole history replays.
        driver.get(base + "/")
        wait_for("the table again", lambda: driver.find_elements(By.CSS_SELECTOR, f'tr[data-job="{done}"]'))
        wait_for("selecting the short job",
                 lambda: click(driver, f'tr[data-job="{done}"] td.job'))
        wait_for("the replay to end", lambda: js(driver, f"selected && selected.id === '{done}' && selected.series.ended"))
        replayed = js(driver, points)
        assert replayed == 40, f"replayed {replayed} of 40 training steps"
        evals = js(driver, "selected.series.cols.test_acc.filter(v => v !== null).length")
        assert evals >= 2, f"{evals} evaluations replayed"
        print(f"replayed {replayed} steps and {evals} evaluations of the finished job")

        # The GAN's D and G curves.
        wait_for("selecting the GAN job",
                 lambda: click(driver, f'tr[data-job="{gan}"] td.job'))
        wait_for("the GAN replay", lambda: js(driver, f"selected && selected.id === '{gan}' && selected.series.ended"))
        wait_for("the GAN chart", lambda: js(
            driver, "!document.getElementById('gan').hidden && "
            "document.querySelectorAll('#chart-gan canvas').length > 0"))
        counts = js(driver, "['d_loss', 'g_loss', 'd_real', 'd_fake'].map("
                    "k => selected.series.cols[k].filter(v => v !== null).length)")
        assert all(n == 30 for n in counts), f"GAN points {counts}, want 30 each"
        print(f"GAN: D loss, G loss, D(x), D(G(z)) with {counts[0]} points each")

        # The LSTM's gradient norms through time: one curve, t = 0..27.
        wait_for("selecting the LSTM job",
                 lambda: click(driver, f'tr[data-job="{lstm}"] td.job'))
        wait_for("the LSTM replay", lambda: js(driver, f"selected && selected.id === '{lstm}' && selected.series.ended"))
        wait_for("the BPTT chart", lambda: js(
            driver, "!document.getElementById('bptt').hidden && "
            "document.querySelectorAll('#chart-bptt canvas').length > 0"))
        bptt = js(driver, "Object.entries(selected.series.bptt).map("
                  "([n, c]) => [n, c.t.length, c.t[0], c.t[c.t.length - 1]])")
        assert bptt == [["lstm0", 28, 0, 27]], f"BPTT curves {bptt}"
        assert js(driver, "selected.bpttChart.series.length") == 2
        print(f"BPTT: {bptt[0][0]} with ||dE/dh_t|| at t = 0..27")
        # Both jobs overlaid: marking them opens one stream each.
        for job in (done, long_job):
            wait_for("marking " + job, lambda: click(
                driver, f'tr[data-job="{job}"] input[type=checkbox]'))
        wait_for("the overlay", lambda: js(driver, "overlay.size === 2 && "
                 "document.querySelectorAll('#chart-overlay canvas').length > 0 && "
                 "!document.getElementById('overlay').hidden"))
        wait_for("both jobs' curves", lambda: js(driver, "[...overlay.values()].every("
                 "o => o.series.ended && o.series.x.length >= 40)"))
        print("overlay of both jobs drawn")

        # A sweep from the CLI, overlaid with one click: one curve per trial
        # in each chart, named by the learning rate, and the ranked table.
        sweep_spec = os.path.join(tmp, "sweep.textproto")
        with open(sweep_spec, "w") as f:
            f.write(SWEEP_SPEC)
        sweep = json.loads(server.nnlab("sweep", "--spec", sweep_spec))["sweepId"]
        wait_for("the sweep", lambda: json.loads(server.nnlab("sweep", "get", sweep))[
            "state"] == "SWEEP_STATE_COMPLETED", timeout=120)
        wait_for("the sweeps list", lambda: click(driver, f'tr[data-sweep="{sweep}"] button.overlay'))
        wait_for("the sweep overlay", lambda: js(
            driver, f"sweepView && sweepView.id === '{sweep}' && sweepView.final && "
            "!sweepView.busy && !sweepView.again && sweepView.charts !== null && "
            "!document.getElementById('sweep').hidden"))
        series = js(driver, "sweepView.charts.map(c => c.series.slice(1).map(s => s.label))")
        assert series == [SWEEP_LABELS] * 3, f"sweep chart series {series}"
        points = js(driver, "sweepView.curves.trials.map(t => [t.step.length, t.eval_step.length, t.speed.length])")
        assert all(p[0] == 30 and p[1] >= 3 and p[2] >= 6 for p in points), f"points per trial {points}"
        drawn = js(driver, "sweepView.charts.map(c => c.data.slice(1).map(col => col.filter(v => v !== null).length))")
        assert all(all(n > 0 for n in chart) for chart in drawn), f"drawn points {drawn}"
        legend = js(driver, "[...document.querySelectorAll('#chart-sweep-loss .u-legend .u-label')].map(e => e.textContent)")
        assert all(label in legend for label in SWEEP_LABELS), f"legend {legend}"
        ranked = js(driver, "[...document.querySelectorAll('#sweep-trials tbody tr')].map(r => r.children[7].textContent)")
        assert sorted(ranked) == sorted(SWEEP_LABELS), f"ranked table {ranked}"
        layers = js(driver, "sweepView.curves.layers")
        assert js(driver, "sweepView.curves.layer") == layers[0]
        driver.execute_script(f"const s = document.getElementById('sweep-layer'); s.value = '{layers[1]}'; "
                              "s.dispatchEvent(new Event('change'));")
        wait_for("the other layer", lambda: js(
            driver, f"sweepView.curves.layer === '{layers[1]}' && sweepView.key.startsWith('{layers[1]}|')"))
        if a.screenshot:
            driver.execute_script("document.getElementById('sweep').scrollIntoView()")
            time.sleep(0.5)
            driver.save_screenshot(a.screenshot.replace(".png", "") + "-sweep.png")
        print(f"sweep {sweep}: {len(points)} trials overlaid, layers {layers}, ranked {ranked}")

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, f"console errors: {errors}"
        print("PASS")
        return 0
    finally:
        if driver is not None:
            driver.quit()
        server.stop()  # Raises if nnlabd did not exit cleanly.
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
