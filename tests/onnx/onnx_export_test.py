#!/usr/bin/python3
"""ONNX export checked by a real runtime: for example architectures, a
model trained a few steps on a real nnlabd is exported as ONNX; ONNX
Runtime (onnxruntime-node) and nnlab's Infer run the same inputs, whose
outputs must agree within 1e-4 and whose predictions must be identical;
python3-onnx's checker must accept every file. Also: an unknown format is
INVALID_ARGUMENT, a layer without an ONNX form FAILED_PRECONDITION.

Run with Debian's /usr/bin/python3 (python3-grpcio, python3-grpc-tools,
python3-onnx, python3-numpy).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx

# (model id, examples/ file or ModelSpec text, steps, batch): small
# batches keep the test short. The recurrent models are those of
# examples/mnist_rows.cc (LSTM over image rows, last step, dense) and
# examples/char_model.cc (a sequence model: every step through time_dense),
# with fewer units.
EXAMPLES = [
    ("mnist-mlp-100", "mnist_mlp_100.textproto", 3, 16),
    ("deep-sigmoid", "lecture_deep_sigmoid.textproto", 3, 16),
    ("dropout-mlp", "dropout_wide_mlp.textproto", 3, 16),
    ("resnet-bn", "resnet_fashion.textproto", 2, 8),
    ("mnist-rows-lstm", """input_shape: [28, 28]
        layers { lstm { units: 32 } } layers { dense { units: 10 } }
        init: INIT_GLOROT""", 3, 16),
    ("mnist-rows-rnn", """input_shape: [28, 28]
        layers { rnn { units: 32 } } layers { dense { units: 10 } }
        init: INIT_GLOROT""", 3, 16),
    ("sequence-rnn", """input_shape: [12, 5]
        layers { rnn { units: 16 return_sequences: true } }
        layers { time_dense { units: 5 } }
        loss: LOSS_MSE init: INIT_GLOROT""", 3, 16),
    ("sequence-lstm", """input_shape: [12, 5]
        layers { lstm { units: 16 return_sequences: true } }
        layers { lstm { units: 8 return_sequences: true } }
        layers { time_dense { units: 5 } }
        loss: LOSS_MSE init: INIT_GLOROT""", 3, 16),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnlabd", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--nnlab", required=True)
    args = ap.parse_args()

    node_modules = subprocess.run(
        [os.path.join(args.repo, "scripts/install_onnxruntime.sh")],
        check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    env = dict(os.environ, NODE_PATH=node_modules)
    ort_run = os.path.join(args.repo, "tests/onnx/ort_run.js")

    work = tempfile.mkdtemp(prefix="nnlab-onnx-")
    server = None
    try:
        gen = os.path.join(work, "gen")
        os.makedirs(gen)
        proto_dir = os.path.join(args.repo, "proto")
        protos = sorted(glob.glob(os.path.join(proto_dir, "nnlab/v1/*.proto")))
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc",
                        "-I" + proto_dir, "--python_out=" + gen,
                        "--grpc_python_out=" + gen] + protos, check=True)
        sys.path.insert(0, gen)
        import grpc
        from google.protobuf import text_format
        from nnlab.v1 import (inference_pb2, inference_pb2_grpc, model_pb2,
                              model_pb2_grpc, tensor_pb2, training_pb2,
                              training_pb2_grpc)

        server = subprocess.Popen(
            [args.nnlabd, "--listen=127.0.0.1:0",
             "--data_dir=" + os.path.join(work, "data")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = server.stdout.readline()
        assert line.startswith("nnlabd listening on port "), line
        address = "127.0.0.1:" + line.split()[-1]
        # Exported models of the wide MLPs exceed the default 4 MiB.
        channel = grpc.insecure_channel(
            "127.0.0.1:" + line.split()[-1],
            options=[("grpc.max_receive_message_length", 64 << 20)])
        grpc.channel_ready_future(channel).result(timeout=30)
        models = model_pb2_grpc.ModelServiceStub(channel)
        training = training_pb2_grpc.TrainingServiceStub(channel)
        inference = inference_pb2_grpc.InferenceServiceStub(channel)
        rng = np.random.default_rng(7)

        def tensor(a):
            return tensor_pb2.Tensor(shape=list(a.shape),
                                     data=a.astype(np.float32).ravel().tolist())

        for mid, source, steps, batch in EXAMPLES:
            spec = model_pb2.ModelSpec()
            if source.endswith(".textproto"):
                with open(os.path.join(args.repo, "examples", source)) as f:
                    source = f.read()
            text_format.Parse(source, spec)
            classifier = spec.loss in (model_pb2.LOSS_UNSPECIFIED,
                                       model_pb2.LOSS_SOFTMAX_CROSS_ENTROPY)
            model = models.CreateModel(
                model_pb2.CreateModelRequest(model_id=mid, spec=spec),
                timeout=30)
            in_shape = list(model.input_shape)
            out_shape = list(model.output_shape)
            # Pixel-like inputs in [0, 1): training moves every weight and
            # the batch-norm running statistics off their initial values.
            for _ in range(steps):
                x = rng.random([batch] + in_shape, dtype=np.float32)
                if classifier:
                    y = rng.integers(0, out_shape[0], batch).astype(np.float32)
                else:
                    y = rng.random([batch] + out_shape, dtype=np.float32)
                training.TrainStep(training_pb2.TrainStepRequest(
                    model_id=mid, inputs=tensor(x), targets=tensor(y)),
                    timeout=120)
            assert models.GetModel(model_pb2.GetModelRequest(
                model_id=mid), timeout=30).trained_steps == steps

            resp = models.ExportModel(model_pb2.ExportModelRequest(
                model_id=mid, format=model_pb2.EXPORT_FORMAT_ONNX), timeout=60)
            onnx_path = os.path.join(work, mid + ".onnx")
            with open(onnx_path, "wb") as f:
                f.write(resp.onnx_model)
            m = onnx.load(onnx_path)
            onnx.checker.check_model(m)
            assert m.opset_import[0].version == 13, m.opset_import
            assert [i.name for i in m.graph.input] == ["input"]
            assert [o.name for o in m.graph.output] == (
                ["output", "probabilities"] if classifier else ["output"])
            ops = {n.op_type for n in m.graph.node}
            assert "Dropout" not in ops, ops

            x = rng.random([9] + in_shape, dtype=np.float32)
            want = inference.Infer(inference_pb2.InferRequest(
                model_id=mid, inputs=tensor(x)), timeout=60)
            want_out = np.array(want.outputs.data, np.float32).reshape(
                list(want.outputs.shape))
            x_path = os.path.join(work, mid + ".f32")
            x.astype("<f4").tofile(x_path)
            got = json.loads(subprocess.run(
                ["node", ort_run, onnx_path, x_path,
                 ",".join(str(d) for d in x.shape)],
                check=True, stdout=subprocess.PIPE, env=env, text=True).stdout)
            got_out = np.array(got["output"]["data"], np.float32).reshape(
                got["output"]["dims"])
            assert got_out.shape == want_out.shape, (got_out.shape,
                                                     want_out.shape)
            err = float(np.max(np.abs(got_out - want_out)))
            assert err <= 1e-4, (mid, err)
            if classifier:
                probs = np.array(got["probabilities"]["data"]).reshape(
                    got["probabilities"]["dims"])
                assert list(np.argmax(probs, 1)) == list(want.predictions), mid
                assert np.allclose(probs.sum(1), 1, atol=1e-5)
                assert len(want.predictions) == 9, mid
            print("%-16s max |ORT - Infer| = %.2e, %d equal predictions; %s"
                  % (mid, err, len(want.predictions), ",".join(sorted(ops))))

        # The GAN of examples/gan_mnist.cc exports its generator (input:
        # noise). nnlab's Infer scores a GAN's discriminator, so the same
        # generator weights are imported as a plain model to compare.
        gan = text_format.Parse("""
            noise_dim: 64
            generator { layers { dense { units: 256 } } layers { relu {} }
                        layers { dense { units: 784 } } layers { sigmoid {} }
                        init: INIT_HE }
            discriminator { layers { dense { units: 256 } }
                            layers { leaky_relu { alpha: 0.2 } }
                            layers { dense { units: 1 } } init: INIT_HE }
        """, model_pb2.GanSpec())
        models.CreateModel(model_pb2.CreateModelRequest(model_id="gan",
                                                        gan=gan), timeout=30)
        native = models.ExportModel(model_pb2.ExportModelRequest(
            model_id="gan"), timeout=30).file
        plain = model_pb2.ModelFile(format_version=1)
        plain.spec.CopyFrom(gan.generator)
        plain.spec.input_shape[:] = [64]
        plain.spec.loss = model_pb2.LOSS_MSE
        for p in native.params:
            if p.name.startswith("generator/"):
                plain.params.add(name=p.name[len("generator/"):],
                                 tensor=p.tensor)
        models.ImportModel(model_pb2.ImportModelRequest(
            model_id="gan-generator", file=plain), timeout=30)
        resp = models.ExportModel(model_pb2.ExportModelRequest(
            model_id="gan", format=model_pb2.EXPORT_FORMAT_ONNX), timeout=60)
        onnx_path = os.path.join(work, "gan.onnx")
        with open(onnx_path, "wb") as f:
            f.write(resp.onnx_model)
        onnx.checker.check_model(onnx.load(onnx_path))
        z = rng.uniform(-1, 1, [9, 64]).astype(np.float32)
        want = inference.Infer(inference_pb2.InferRequest(
            model_id="gan-generator", inputs=tensor(z)), timeout=60)
        z_path = os.path.join(work, "z.f32")
        z.astype("<f4").tofile(z_path)
        got = json.loads(subprocess.run(
            ["node", ort_run, onnx_path, z_path, "9,64"], check=True,
            stdout=subprocess.PIPE, env=env, text=True).stdout)
        assert list(got) == ["output"], list(got)
        assert got["output"]["dims"] == [9, 784], got["output"]["dims"]
        err = float(np.max(np.abs(np.array(got["output"]["data"]) -
                                  np.array(want.outputs.data))))
        assert err <= 1e-4, err
        print("%-24s max |ORT - Infer| = %.2e" % ("gan generator", err))

        # The CLI writes the same bytes; an unknown format is a usage error.
        cli_path = os.path.join(work, "cli.onnx")
        cli = subprocess.run([args.nnlab, "--server", address, "models",
                              "export", "mnist-mlp-100", "--format", "onnx",
                              "--out", cli_path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert cli.returncode == 0, cli.stderr
        assert "ONNX" in cli.stdout, cli.stdout
        with open(cli_path, "rb") as f, \
                open(os.path.join(work, "mnist-mlp-100.onnx"), "rb") as g:
            assert f.read() == g.read()
        cli = subprocess.run([args.nnlab, "--server", address, "models",
                              "export", "mnist-mlp-100", "--format", "tf",
                              "--out", cli_path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert cli.returncode == 2 and "--format" in cli.stderr, cli

        # Unknown formats.
        try:
            models.ExportModel(model_pb2.ExportModelRequest(
                model_id="mnist-mlp-100", format=99), timeout=30)
            raise AssertionError("format 99 was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            assert "format" in e.details(), e.details()
        try:  # Checked before the model is looked up.
            models.ExportModel(model_pb2.ExportModelRequest(
                model_id="nope", format=-3), timeout=30)
            raise AssertionError("format -3 was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        try:
            models.ExportModel(model_pb2.ExportModelRequest(
                model_id="nope", format=model_pb2.EXPORT_FORMAT_ONNX),
                timeout=30)
            raise AssertionError("a missing model was exported")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
        # The native format is still the default.
        native = models.ExportModel(model_pb2.ExportModelRequest(
            model_id="mnist-mlp-100"), timeout=30)
        assert native.file.format_version == 1 and not native.onnx_model
        # A clean exit: under the sanitizers a leak or error is non-zero.
        server.terminate()
        code = server.wait(timeout=60)
        server = None
        assert code == 0, "nnlabd exited with %d" % code
        print("1 passed, 0 failed")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
