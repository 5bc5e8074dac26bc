"""nnlab.Job: a training job on the server, its control and its events."""
import sys
import time
from typing import TYPE_CHECKING, Iterator, Optional

import grpc

from nnlab import errors
from nnlab.v1 import training_pb2

if TYPE_CHECKING:
    from nnlab.client import Client

_TERMINAL = (training_pb2.JOB_STATE_COMPLETED, training_pb2.JOB_STATE_CANCELLED,
             training_pb2.JOB_STATE_FAILED)
# Broken-stream codes after which events() reconnects (as the C++ client).
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
              grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED,
              grpc.StatusCode.CANCELLED)


class Job:
    """A job; `record` is its last fetched training_pb2.Job."""

    def __init__(self, client: "Client", record: training_pb2.Job):
        self._client = client
        self.record = record

    @property
    def id(self) -> str:
        return self.record.job_id

    @property
    def state(self) -> str:
        """The state name of the last fetched record, e.g. "RUNNING"."""
        return training_pb2.JobState.Name(self.record.state).replace(
            "JOB_STATE_", "")

    @property
    def done(self) -> bool:
        """Whether the last fetched record is COMPLETED, CANCELLED or FAILED."""
        return self.record.state in _TERMINAL

    def __repr__(self) -> str:
        return "Job(%s, %s, step %d/%d)" % (self.id, self.state,
                                           self.record.step,
                                           self.record.total_steps)

    def refresh(self) -> "Job":
        """Fetches the current record."""
        self.record = self._client.get_job(self.id)
        return self

    def pause(self) -> "Job":
        """Pauses the job (FailedPrecondition unless queued or running)."""
        self.record = self._client._job_call("PauseJob", self.id)
        return self

    def resume(self) -> "Job":
        """Resumes a paused job."""
        self.record = self._client._job_call("ResumeJob", self.id)
        return self

    def cancel(self) -> "Job":
        """Cancels the job."""
        self.record = self._client._job_call("CancelJob", self.id)
        return self

    def wait(self, timeout: Optional[float] = None,
             poll: float = 0.2) -> "Job":
        """Polls until the job ends; DeadlineExceeded after `timeout` s."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done:
            if end is not None and time.monotonic() > end:
                raise errors.DeadlineExceeded(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "job %s still %s after %g s" % (self.id, self.state,
                                                    timeout))
            time.sleep(poll)
        return self

    def events(self, from_step: int = 0, *, every_n: int = 0,
               omit_layer_stats: bool = False, max_reconnects: int = 8,
               backoff: float = 0.2) -> Iterator[training_pb2.MetricEvent]:
        """The job's metric events: its history from `from_step`, then live
        ones until the job ends.

        A stream that breaks after delivering events (a server restart, a
        dropped connection) is reopened from the last step seen, up to
        `max_reconnects` times in a row with a doubling wait; events already
        delivered are not repeated. A first attempt that fails raises at once.
        """
        req = training_pb2.StreamMetricsRequest(
            job_id=self.id, from_step=from_step, every_n=every_n,
            omit_layer_stats=omit_layer_stats)
        last_sequence, failures, wait = -1, 0, backoff
        while True:
            stream = self._client._stream_metrics(req)
            try:
                for event in stream:
                    failures, wait = 0, backoff
                    # A replay repeats the last step's events and the state
                    # changes; a restarted server numbers events anew, but
                    # its later steps still come through.
                    if (event.sequence <= last_sequence and
                            event.step <= req.from_step):
                        continue
                    last_sequence = max(last_sequence, event.sequence)
                    if event.step > req.from_step:
                        req.from_step = event.step
                    if event.phase == training_pb2.PHASE_STATE:
                        self.record.state = event.job_state
                    yield event
                return
            except grpc.RpcError as e:
                failures += 1
                if (last_sequence < 0 or e.code() not in _RETRYABLE or
                        failures > max_reconnects):
                    raise errors.from_rpc_error(e) from None
            finally:
                stream.cancel()
            time.sleep(wait)
            wait = min(wait * 2, 5.0)

    def watch(self, *, plot: Optional[str] = None, every: float = 1.0,
              out=None) -> "Job":
        """Follows the job until it ends, printing a compact progress line
        (rewritten in place on a terminal, at most one per `every` seconds
        otherwise). With matplotlib installed, `plot` names a PNG file that
        gets the loss and per-layer learning-speed curves when the job
        ends (plot="show" opens a window instead). Returns the job."""
        out = out or sys.stdout
        tty = hasattr(out, "isatty") and out.isatty()
        steps, losses, speeds = [], [], {}
        last_print, line = 0.0, ""
        for e in self.events():
            if e.phase == training_pb2.PHASE_TRAIN:
                steps.append(e.step)
                losses.append(e.loss)
                for layer in e.layers:
                    speeds.setdefault(layer.name, []).append(
                        (e.step, layer.grad_bias_norm))
                line = "%s step %d/%d  loss %.4f  %.0f samples/s" % (
                    self.id, e.step, self.record.total_steps or 0, e.loss,
                    e.samples_per_sec)
            elif e.phase == training_pb2.PHASE_EVAL:
                line = "%s step %d  test loss %.4f  accuracy %.4f" % (
                    self.id, e.step, e.loss, e.accuracy)
            elif e.phase == training_pb2.PHASE_STATE:
                line = ("%s %s %s" % (self.id, training_pb2.JobState.Name(
                    e.job_state).replace("JOB_STATE_", ""), e.message)).rstrip()
            now = time.monotonic()
            if tty:
                out.write("\r\033[K" + line)
                out.flush()
            elif now - last_print >= every or e.phase != training_pb2.PHASE_TRAIN:
                out.write(line + "\n")
                last_print = now
        if tty:
            out.write("\n")
        self.refresh()
        if plot is not None and steps:
            _plot(self.id, steps, losses, speeds, plot)
        return self


def _plot(job_id, steps, losses, speeds, where) -> bool:
    """Loss and per-layer learning speed on one figure; False without
    matplotlib."""
    try:
        import matplotlib
        if where != "show":
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(steps, losses)
    ax1.set(title="%s: training loss" % job_id, xlabel="step", ylabel="loss")
    for name, points in speeds.items():
        ax2.plot([s for s, _ in points], [v for _, v in points], label=name)
    ax2.set(title="learning speed ||delta^l||", xlabel="step", yscale="log")
    if speeds:
        ax2.legend()
    fig.tight_layout()
    if where == "show":
        plt.show()
    else:
        fig.savefig(where)
    plt.close(fig)
    return True
