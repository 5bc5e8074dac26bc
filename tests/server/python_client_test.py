#!/usr/bin/python3
"""The wire contract from outside C++: Python stubs generated from
proto/nnlab/v1/*.proto at test time drive a training job on a real nnlabd
end to end (create model, upload data, start job, stream metrics, infer).

Run with Debian's /usr/bin/python3 (python3-grpcio, python3-grpc-tools).
"""
import argparse
import glob
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), reflected polynomial 0x82F63B78."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnlabd", required=True)
    ap.add_argument("--proto_dir", required=True)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="nnlab-py-")
    server = None
    try:
        gen = os.path.join(work, "gen")
        os.makedirs(gen)
        protos = sorted(glob.glob(os.path.join(args.proto_dir, "nnlab/v1/*.proto")))
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc",
                        "-I" + args.proto_dir, "--python_out=" + gen,
                        "--grpc_python_out=" + gen] + protos, check=True)
        sys.path.insert(0, gen)
        import grpc
        from google.protobuf import text_format
        from nnlab.v1 import (dataset_pb2, inference_pb2, inference_pb2_grpc,
                              model_pb2, model_pb2_grpc, tensor_pb2,
                              training_pb2, training_pb2_grpc)

        assert crc32c(b"123456789") == 0xE3069283

        server = subprocess.Popen(
            [args.nnlabd, "--listen=127.0.0.1:0",
             "--data_dir=" + os.path.join(work, "data")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = server.stdout.readline()
        assert line.startswith("nnlabd listening on port "), line
        port = int(line.split()[-1])
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        grpc.channel_ready_future(channel).result(timeout=30)
        models = model_pb2_grpc.ModelServiceStub(channel)
        training = training_pb2_grpc.TrainingServiceStub(channel)
        inference = inference_pb2_grpc.InferenceServiceStub(channel)

        # A model from hand-written text format.
        spec = text_format.Parse("""
            name: "py-mlp"
            input_shape: [2]
            layers { dense { units: 16 } }
            layers { tanh {} }
            layers { dense { units: 2 } }
            loss: LOSS_SOFTMAX_CROSS_ENTROPY
            init: INIT_GLOROT
            seed: 5
        """, model_pb2.ModelSpec())
        m = models.CreateModel(model_pb2.CreateModelRequest(model_id="py", spec=spec),
                               timeout=30)
        assert m.parameter_count == 2 * 16 + 16 + 16 * 2 + 2, m.parameter_count

        # Two classes: inside / outside the unit circle (not linearly separable).
        rng = random.Random(3)
        n, test = 600, 100
        xs, ys = [], []
        for _ in range(n):
            a, b = rng.uniform(-2, 2), rng.uniform(-2, 2)
            xs += [a, b]
            ys.append(1.0 if a * a + b * b < 1.4 else 0.0)
        payload = struct.pack("<%df" % len(xs), *xs) + struct.pack("<%df" % n, *ys)
        header = dataset_pb2.DatasetHeader(name="circle", sample_shape=[2],
                                           num_classes=2, num_samples=n,
                                           test_samples=test, crc32c=crc32c(payload))

        def chunks():
            yield dataset_pb2.UploadDatasetRequest(header=header)
            for i in range(0, len(payload), 1000):
                yield dataset_pb2.UploadDatasetRequest(chunk=payload[i:i + 1000])

        info = training.UploadDataset(chunks(), timeout=30)
        assert info.train_samples == n - test and info.test_samples == test

        job = training.StartJob(training_pb2.StartJobRequest(spec=training_pb2.JobSpec(
            model_id="py", dataset=info.dataset_id, epochs=60, batch_size=25,
            optimizer=training_pb2.OptimizerConfig(
                kind=training_pb2.OPTIMIZER_ADAM, learning_rate=0.02))),
            timeout=30)
        steps, last_eval, final_state = [], None, None
        for e in training.StreamMetrics(
                training_pb2.StreamMetricsRequest(job_id=job.job_id), timeout=300):
            if e.phase == training_pb2.PHASE_TRAIN:
                steps.append(e.step)
                assert len(e.layers) == 2 and e.layers[0].name == "dense0"
            elif e.phase == training_pb2.PHASE_EVAL:
                last_eval = e
            elif e.phase == training_pb2.PHASE_STATE:
                final_state = e.job_state
        assert steps == list(range(1, 60 * 20 + 1)), (steps[:3], len(steps))
        assert final_state == training_pb2.JOB_STATE_COMPLETED, final_state
        done = training.GetJob(training_pb2.GetJobRequest(job_id=job.job_id), timeout=30)
        assert done.state == training_pb2.JOB_STATE_COMPLETED
        assert last_eval.accuracy > 0.9, last_eval

        out = inference.Infer(inference_pb2.InferRequest(
            model_id="py", top_k=1,
            inputs=tensor_pb2.Tensor(shape=[2, 2], data=[0.0, 0.0, 1.9, 1.9])),
            timeout=30)
        assert list(out.predictions) == [1, 0], out.predictions
        assert out.weights_step == 60 * 20

        # An unknown model is NOT_FOUND.
        try:
            models.GetModel(model_pb2.GetModelRequest(model_id="nope"), timeout=30)
            raise AssertionError("GetModel of an unknown id succeeded")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, err.code()

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        server = None
        print("python client: job of %d steps, test accuracy %.3f" %
              (len(steps), last_eval.accuracy))
        print("1 passed, 0 failed")
        return 0
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
