"""Fixtures of the nnlab package tests: the package installed into a scratch
folder (as a user installs it, stubs generated from proto/ at build time) and
real nnlabd servers on loopback.

Environment: NNLABD (the server binary, required), NNLAB_DATASETS_DIR (the
MNIST files, passed to the server when set).
"""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PACKAGE))


def _install_package() -> str:
    target = tempfile.mkdtemp(prefix="nnlab-py-pkg-")
    atexit.register(shutil.rmtree, target, True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "--no-build-isolation", "--no-deps", "--no-index",
                    "--target", target, PACKAGE], check=True,
                   env=dict(os.environ, PIP_NO_WARN_SCRIPT_LOCATION="1",
                            PIP_ROOT_USER_ACTION="ignore"))
    return target


# Before any test module imports nnlab: the installed copy, not the source.
sys.path.insert(0, _install_package())


class Server:
    """One nnlabd process on a loopback port with its own data folder."""

    def __init__(self, data_dir: str, port: int = 0, extra=()):
        self.data_dir = data_dir
        args = [os.environ["NNLABD"], "--listen=127.0.0.1:%d" % port,
                "--data_dir=" + data_dir, "--max_jobs=2"] + list(extra)
        if os.environ.get("NNLAB_DATASETS_DIR"):
            args.append("--datasets_dir=" + os.environ["NNLAB_DATASETS_DIR"])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("nnlabd listening on port "), line
        self.port = int(line.split()[-1])
        self.address = "127.0.0.1:%d" % self.port

    def stop(self) -> int:
        """SIGTERM (jobs checkpoint); the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def make_server(tmp_path):
    """Starts servers (kept until the test ends): make_server(port=0,
    data_dir=None, extra=())."""
    started = []

    def make(port=0, data_dir=None, extra=()):
        s = Server(data_dir or str(tmp_path / "data"), port, extra)
        started.append(s)
        return s

    yield make
    for s in started:
        s.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("data")))
    yield s
    assert s.stop() == 0
    s.kill()


@pytest.fixture
def client(server):
    import nnlab
    with nnlab.Client(server.address) as c:
        yield c


@pytest.fixture
def repo():
    return REPO
