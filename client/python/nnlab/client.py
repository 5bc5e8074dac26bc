"""nnlab.Client: the Python client of an nnlabd server.

One method per RPC of nnlab.v1 (models, training, inference, data sets),
taking and returning plain Python and numpy values where that is natural and
the generated protobuf messages otherwise. Every failure raises an
nnlab.NnlabError subclass carrying the gRPC status code (nnlab.errors).

A token, when given, travels as `authorization: Bearer <token>` metadata on
every call. Unary calls get `timeout` seconds; metric streams have no
deadline and reconnect after a broken stream (see Job.events).
"""
import os
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Union

import grpc
import numpy as np
from google.protobuf import json_format, text_format

from nnlab import errors
from nnlab.job import Job
from nnlab.tensors import to_array, to_tensor
from nnlab.v1 import (dataset_pb2, dataset_pb2_grpc, inference_pb2,
                      inference_pb2_grpc, model_pb2, model_pb2_grpc,
                      training_pb2, training_pb2_grpc)

SpecLike = Union[dict, str, os.PathLike, model_pb2.ModelSpec, model_pb2.GanSpec]

# Upload chunks well below the default 4 MiB message limit.
_CHUNK_BYTES = 1 << 20


@dataclass
class InferResult:
    """What Infer returns: outputs [batch, ...] (logits for softmax
    classifiers), predicted classes, and per sample the top-k (class,
    probability) pairs when asked for."""
    outputs: np.ndarray
    predictions: np.ndarray
    top_k: List[List[tuple]] = field(default_factory=list)
    weights_step: int = 0


@dataclass
class SampleResult:
    """What Sample returns: samples [count, ...] and, for sequence models,
    the chosen tokens [count, steps]."""
    samples: np.ndarray
    tokens: np.ndarray
    weights_step: int = 0


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of an upload: Debian's python3-crc32c when
    installed, else a (slow) pure-Python table loop."""
    try:
        import crc32c  # type: ignore
        return crc32c.crc32c(data)
    except ImportError:
        pass
    table = _crc_table()
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc_table() -> List[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


def parse_spec(spec: SpecLike):
    """A ModelSpec or GanSpec from a message, a dict (JSON field names, as
    json_format reads them), a textproto file path or textproto text.
    A dict or text with `generator` and `discriminator` is a GanSpec."""
    if isinstance(spec, (model_pb2.ModelSpec, model_pb2.GanSpec)):
        return spec
    if isinstance(spec, dict):
        is_gan = "generator" in spec and "discriminator" in spec
        msg = model_pb2.GanSpec() if is_gan else model_pb2.ModelSpec()
        try:
            return json_format.ParseDict(spec, msg)
        except json_format.ParseError as e:
            raise errors.InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT,
                                         "model spec: %s" % e) from None
    if isinstance(spec, (str, os.PathLike)):
        text = str(spec)
        if os.path.isfile(text):
            with open(text) as f:
                text = f.read()
        is_gan = "generator" in text and "discriminator" in text
        msg = model_pb2.GanSpec() if is_gan else model_pb2.ModelSpec()
        try:
            return text_format.Parse(text, msg)
        except text_format.ParseError as e:
            raise errors.InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT,
                                         "model spec: %s" % e) from None
    raise TypeError("a model spec is a dict, a textproto path or text, or a "
                    "ModelSpec/GanSpec, not %s" % type(spec).__name__)


class Client:
    """A connection to one nnlabd.

    Args:
      server: HOST:PORT (or any gRPC target).
      token: bearer token, or None.
      tls: use TLS (True also when any of the files below is given).
      root_certificates: PEM file verifying the server (None: system roots).
      certificate_chain, private_key: PEM files of a client certificate
        (mutual TLS); both or neither.
      server_name: overrides the name the server certificate is checked
        against.
      timeout: seconds for every unary call.
    """

    def __init__(self, server: str = "127.0.0.1:50051", *,
                 token: Optional[str] = None, tls: bool = False,
                 root_certificates: Optional[str] = None,
                 certificate_chain: Optional[str] = None,
                 private_key: Optional[str] = None,
                 server_name: Optional[str] = None,
                 timeout: float = 30.0):
        if (certificate_chain is None) != (private_key is None):
            raise ValueError("certificate_chain and private_key go together")
        self.timeout = timeout
        self._metadata = ((("authorization", "Bearer " + token),)
                          if token else ())
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if tls or root_certificates or certificate_chain:
            def read(path):
                if path is None:
                    return None
                with open(path, "rb") as f:
                    return f.read()
            creds = grpc.ssl_channel_credentials(
                read(root_certificates), read(private_key),
                read(certificate_chain))
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.secure_channel(server, creds, options)
        else:
            self._channel = grpc.insecure_channel(server, options)
        self._models = model_pb2_grpc.ModelServiceStub(self._channel)
        self._training = training_pb2_grpc.TrainingServiceStub(self._channel)
        self._inference = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._datasets = dataset_pb2_grpc.DatasetServiceStub(self._channel)
        self._health = self._channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda _: b"",
            response_deserializer=lambda b: b)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, timeout: Optional[float] = None):
        try:
            return method(request, timeout=timeout or self.timeout,
                          metadata=self._metadata)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None

    # --- health -----------------------------------------------------------
    def health(self) -> str:
        """The server's overall health: "SERVING" or "NOT_SERVING"."""
        raw = self._call(self._health, None)
        # grpc.health.v1.HealthCheckResponse: field 1, varint status.
        status = raw[1] if len(raw) >= 2 and raw[0] == 0x08 else 0
        return {1: "SERVING", 2: "NOT_SERVING"}.get(status, "UNKNOWN")

    # --- models -----------------------------------------------------------
    def create_model(self, spec: SpecLike, model_id: str = "") -> model_pb2.Model:
        """Creates a model (or GAN) from `spec`; the server picks an id if
        `model_id` is empty."""
        parsed = parse_spec(spec)
        req = model_pb2.CreateModelRequest(model_id=model_id)
        if isinstance(parsed, model_pb2.GanSpec):
            req.gan.CopyFrom(parsed)
        else:
            req.spec.CopyFrom(parsed)
        return self._call(self._models.CreateModel, req)

    def get_model(self, model_id: str) -> model_pb2.Model:
        """One model, with its layers and trained steps."""
        return self._call(self._models.GetModel,
                          model_pb2.GetModelRequest(model_id=model_id))

    def list_models(self) -> List[model_pb2.Model]:
        """Every model (all pages)."""
        out, token = [], ""
        while True:
            resp = self._call(self._models.ListModels,
                              model_pb2.ListModelsRequest(page_token=token))
            out.extend(resp.models)
            token = resp.next_page_token
            if not token:
                return out

    def delete_model(self, model_id: str) -> None:
        """Deletes a model (FailedPrecondition while a job trains it)."""
        self._call(self._models.DeleteModel,
                   model_pb2.DeleteModelRequest(model_id=model_id))

    def export_model(self, model_id: str, path: Optional[str] = None, *,
                     format: str = "native"):
        """The model as a file: format "native" returns the ModelFile (spec,
        weights, buffers) that import_model reads; "onnx" returns the bytes
        of an ONNX model (opset 13; input "input", output "output" and, for
        softmax classifiers, "probabilities"). Also written to `path` when
        given."""
        kinds = {"native": model_pb2.EXPORT_FORMAT_NATIVE,
                 "onnx": model_pb2.EXPORT_FORMAT_ONNX}
        if format not in kinds:
            raise ValueError("format: 'native' or 'onnx', not %r" % format)
        resp = self._call(self._models.ExportModel, model_pb2.ExportModelRequest(
            model_id=model_id, format=kinds[format]))
        data = resp.onnx_model if format == "onnx" else resp.file
        if path is not None:
            with open(path, "wb") as f:
                f.write(data if format == "onnx" else data.SerializeToString())
        return data

    def import_model(self, model_file: Union[model_pb2.ModelFile, str],
                     model_id: str = "") -> model_pb2.Model:
        """Creates a model from a ModelFile or a file export_model wrote."""
        if not isinstance(model_file, model_pb2.ModelFile):
            with open(model_file, "rb") as f:
                model_file = model_pb2.ModelFile.FromString(f.read())
        return self._call(self._models.ImportModel, model_pb2.ImportModelRequest(
            model_id=model_id, file=model_file))

    # --- training ---------------------------------------------------------
    def train(self, model_id: str, dataset: str = "mnist", *,
              optimizer: Union[None, str, dict,
                               training_pb2.OptimizerConfig] = None,
              **job_fields) -> Job:
        """Starts a training job and returns it.

        `optimizer` is an OptimizerConfig, a dict of its fields, or a kind
        name ("adam", "sgd", ...). Other keyword arguments are JobSpec fields
        (epochs=2, batch_size=64, max_steps=100, stats_every=10, ...).
        """
        spec = training_pb2.JobSpec(model_id=model_id, dataset=dataset)
        try:
            json_format.ParseDict(job_fields, spec)
        except json_format.ParseError as e:
            raise errors.InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT,
                                         "job spec: %s" % e) from None
        if optimizer is not None:
            spec.optimizer.CopyFrom(_optimizer(optimizer))
        job = self._call(self._training.StartJob,
                         training_pb2.StartJobRequest(spec=spec))
        return Job(self, job)

    def job(self, job_id: str) -> Job:
        """The job with this id (NotFound if there is none)."""
        return Job(self, self.get_job(job_id))

    def get_job(self, job_id: str) -> training_pb2.Job:
        """The job's current record."""
        return self._call(self._training.GetJob,
                          training_pb2.GetJobRequest(job_id=job_id))

    def list_jobs(self, model_id: str = "",
                  state: int = training_pb2.JOB_STATE_UNSPECIFIED) -> List[Job]:
        """Jobs, optionally of one model and/or in one state."""
        resp = self._call(self._training.ListJobs, training_pb2.ListJobsRequest(
            model_id=model_id, state=state))
        return [Job(self, j) for j in resp.jobs]

    def train_step(self, model_id: str, inputs, targets, *,
                   optimizer: Union[None, str, dict,
                                    training_pb2.OptimizerConfig] = None,
                   layer_stats: bool = False) -> training_pb2.MetricEvent:
        """One client-driven optimizer step on a batch; returns its metrics.
        `targets` are class indices [batch] or real targets [batch, ...]."""
        req = training_pb2.TrainStepRequest(
            model_id=model_id, inputs=to_tensor(inputs),
            targets=to_tensor(targets), layer_stats=layer_stats)
        if optimizer is not None:
            req.optimizer.CopyFrom(_optimizer(optimizer))
        return self._call(self._training.TrainStep, req).metrics

    def evaluate(self, model_id: str, dataset: str = "mnist", *,
                 split: str = "test", offset: int = 0,
                 limit: int = 0) -> training_pb2.EvaluateResponse:
        """Loss and accuracy of a model on a data set's split."""
        return self._call(self._training.Evaluate, training_pb2.EvaluateRequest(
            model_id=model_id, dataset=dataset, split=split, offset=offset,
            limit=limit), timeout=max(self.timeout, 300))

    # --- inference --------------------------------------------------------
    def infer(self, model_id: str, inputs, *, top_k: int = 0,
              raw_output: bool = False,
              uint8_divisor: Optional[float] = None) -> InferResult:
        """Runs a batch [batch, ...] through the model. raw_output asks the
        server for raw bytes (faster for large outputs; same values).
        uint8_divisor sends uint8 inputs as bytes, each divided by it on the
        server (255: pixels in [0, 1], as nnlab's image data sets hold
        them)."""
        resp = self._call(self._inference.Infer, inference_pb2.InferRequest(
            model_id=model_id, inputs=to_tensor(inputs, uint8_divisor),
            top_k=top_k, raw_output=raw_output))
        return InferResult(
            outputs=to_array(resp.outputs),
            predictions=np.asarray(resp.predictions, dtype=np.int64),
            top_k=[list(zip(t.classes, t.probabilities)) for t in resp.top_k],
            weights_step=resp.weights_step)

    def sample(self, model_id: str, count: int = 1, *, seed: int = 0,
               steps: int = 0, temperature: float = 0.0,
               prime=None) -> SampleResult:
        """Samples from a GAN's generator, a noise model or a sequence model
        (steps, temperature and prime apply to sequence models)."""
        req = inference_pb2.SampleRequest(model_id=model_id, count=count,
                                          seed=seed, steps=steps,
                                          temperature=temperature)
        if prime is not None:
            req.prime.CopyFrom(to_tensor(prime))
        resp = self._call(self._inference.Sample, req)
        tokens = np.asarray(resp.tokens, dtype=np.int64)
        if tokens.size and count > 0:
            tokens = tokens.reshape(count, -1)
        return SampleResult(samples=to_array(resp.samples), tokens=tokens,
                            weights_step=resp.weights_step)

    def sample_text(self, model_id: str, prime: str, length: int, *,
                    temperature: float = 1.0, seed: int = 0,
                    dataset: str = "") -> str:
        """Text from a character model: `length` characters after `prime`
        (the vocabulary is that of `dataset`, by default the data set of the
        model's latest job, e.g. "chars:devil:T=64")."""
        req = inference_pb2.SampleTextRequest(
            model_id=model_id, prime=prime, length=length,
            temperature=temperature, seed=seed, dataset=dataset)
        return self._call(self._inference.SampleText, req).text

    # --- data sets --------------------------------------------------------
    def upload_dataset(self, name: str, inputs, targets, *,
                       num_classes: int = 0,
                       test_samples: int = 0) -> dataset_pb2.DatasetInfo:
        """Uploads a data set from numpy arrays: inputs [n, ...] and targets
        [n] class indices (num_classes > 0) or [n, ...] real targets. The
        last `test_samples` samples form the test set."""
        x = np.ascontiguousarray(inputs, dtype="<f4")
        y = np.ascontiguousarray(targets, dtype="<f4")
        if x.ndim < 2 or y.ndim < 1 or x.shape[0] != y.shape[0]:
            raise ValueError("inputs [n, ...] and targets [n, ...] with the "
                             "same n (got %s and %s)" % (x.shape, y.shape))
        if num_classes > 0 and y.ndim != 1:
            raise ValueError("class targets are one index per sample, [n]")
        payload = x.tobytes() + y.tobytes()
        header = dataset_pb2.DatasetHeader(
            name=name, sample_shape=list(x.shape[1:]),
            target_shape=list(y.shape[1:]), num_classes=num_classes,
            num_samples=x.shape[0], test_samples=test_samples,
            crc32c=_crc32c(payload))

        def parts() -> Iterator[dataset_pb2.UploadDatasetRequest]:
            yield dataset_pb2.UploadDatasetRequest(header=header)
            for i in range(0, len(payload), _CHUNK_BYTES):
                yield dataset_pb2.UploadDatasetRequest(
                    chunk=payload[i:i + _CHUNK_BYTES])

        return self._call(self._datasets.UploadDataset, parts(),
                          timeout=max(self.timeout, 300))

    def list_datasets(self) -> List[dataset_pb2.DatasetInfo]:
        """Built-in and uploaded data sets."""
        return list(self._call(self._datasets.ListDatasets,
                               dataset_pb2.ListDatasetsRequest()).datasets)

    def delete_dataset(self, dataset_id: str) -> None:
        """Deletes an uploaded data set."""
        self._call(self._datasets.DeleteDataset,
                   dataset_pb2.DeleteDatasetRequest(dataset_id=dataset_id))

    # --- used by Job ------------------------------------------------------
    def _job_call(self, name: str, job_id: str) -> training_pb2.Job:
        method = getattr(self._training, name)
        request_type = getattr(training_pb2, name + "Request")
        return self._call(method, request_type(job_id=job_id))

    def _stream_metrics(self, request: training_pb2.StreamMetricsRequest):
        return self._training.StreamMetrics(request, metadata=self._metadata)


def _optimizer(opt) -> training_pb2.OptimizerConfig:
    if isinstance(opt, training_pb2.OptimizerConfig):
        return opt
    if isinstance(opt, str):
        opt = {"kind": opt}
    if isinstance(opt, dict):
        opt = dict(opt)
        kind = opt.get("kind")
        if isinstance(kind, str) and not kind.startswith("OPTIMIZER_"):
            opt["kind"] = "OPTIMIZER_" + kind.upper()
        try:
            return json_format.ParseDict(opt, training_pb2.OptimizerConfig())
        except json_format.ParseError as e:
            raise errors.InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT,
                                         "optimizer: %s" % e) from None
    raise TypeError("optimizer: an OptimizerConfig, a dict or a kind name")
