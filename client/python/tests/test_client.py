"""The nnlab package against a real nnlabd: every Client and Job method,
numpy round trips, errors as exceptions with the server's status codes."""
import io
import os
import subprocess

import grpc
import numpy as np
import pytest

import nnlab
from nnlab.v1 import model_pb2, training_pb2

CIRCLE_SPEC = {
    "name": "py-mlp", "inputShape": [2], "seed": 5,
    "layers": [{"dense": {"units": 16}}, {"tanh": {}}, {"dense": {"units": 2}}],
    "loss": "LOSS_SOFTMAX_CROSS_ENTROPY", "init": "INIT_GLOROT",
}


def circle(n=600, seed=3):
    """Inside / outside a circle: not linearly separable."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 2)).astype(np.float32)
    y = (np.sum(x * x, axis=1) < 1.4).astype(np.int64)
    return x, y


def endless(client, model_id, dataset):
    """A job that cannot finish during a test (cancelled at its end)."""
    return client.train(model_id, dataset, optimizer="sgd", epochs=10000,
                        batch_size=10)


def until(job, predicate, timeout=60):
    import time
    end = time.monotonic() + timeout
    while not predicate(job.refresh()):
        assert time.monotonic() < end, job
        time.sleep(0.05)


def test_health(client):
    assert client.health() == "SERVING"


def test_models_from_dict_textproto_and_message(client, repo, tmp_path):
    m1 = client.create_model(CIRCLE_SPEC, model_id="dict")
    assert m1.parameter_count == 2 * 16 + 16 + 16 * 2 + 2
    assert [l.name for l in m1.layers][0] == "dense0"
    m2 = client.create_model(os.path.join(repo, "examples/mnist_mlp_100.textproto"))
    assert m2.parameter_count == 784 * 100 + 100 + 100 * 10 + 10
    m3 = client.create_model(nnlab.parse_spec(CIRCLE_SPEC), model_id="msg")
    assert m3.parameter_count == m1.parameter_count
    ids = {m.model_id for m in client.list_models()}
    assert {"dict", "msg", m2.model_id} <= ids
    assert client.get_model("dict").name == "py-mlp"

    # Export to a file, import it under a new id: same outputs.
    path = str(tmp_path / "dict.nnlab")
    f = client.export_model("dict", path=path)
    assert {t.name for t in f.params} >= {"dense0.weight", "dense0.bias"}
    client.import_model(path, model_id="copy")
    x = np.array([[0.5, -1.0], [1.5, 0.25]], dtype=np.float32)
    np.testing.assert_array_equal(client.infer("dict", x).outputs,
                                  client.infer("copy", x).outputs)
    client.delete_model("copy")
    onnx = client.export_model("dict", path=str(tmp_path / "dict.onnx"),
                               format="onnx")
    import onnx as onnx_lib  # python3-onnx
    graph = onnx_lib.load_from_string(onnx)
    onnx_lib.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["input"]
    assert {o.name for o in graph.graph.output} == {"output", "probabilities"}
    assert (tmp_path / "dict.onnx").read_bytes() == onnx
    with pytest.raises(ValueError):
        client.export_model("dict", format="tflite")
    with pytest.raises(nnlab.NotFound) as e:
        client.get_model("copy")
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_upload_train_events_evaluate_infer(client):
    """The cross-language contract end to end: numpy data up, a job whose
    every step streams back, a trained model answering."""
    x, y = circle()
    info = client.upload_dataset("circle", x, y, num_classes=2, test_samples=100)
    assert (info.train_samples, info.test_samples) == (500, 100)
    assert info.dataset_id in {d.dataset_id for d in client.list_datasets()}
    client.create_model(CIRCLE_SPEC, model_id="circle")
    # 600 steps: fewer events than a watcher's buffer holds, so even a slow
    # reader of this stream sees every one.
    job = client.train("circle", info.dataset_id, epochs=30, batch_size=25,
                       optimizer={"kind": "adam", "learningRate": 0.02})
    steps, last_eval, states = [], None, []
    for e in job.events():
        if e.phase == training_pb2.PHASE_TRAIN:
            steps.append(e.step)
            assert [l.name for l in e.layers] == ["dense0", "dense2"]
        elif e.phase == training_pb2.PHASE_EVAL:
            last_eval = e
        elif e.phase == training_pb2.PHASE_STATE:
            states.append(e.job_state)
    assert steps == list(range(1, 30 * 20 + 1))
    assert states[-1] == training_pb2.JOB_STATE_COMPLETED
    assert job.refresh().state == "COMPLETED" and job.done
    assert last_eval.accuracy > 0.9
    ev = client.evaluate("circle", info.dataset_id)
    assert ev.samples == 100 and ev.accuracy == pytest.approx(last_eval.accuracy)

    out = client.infer("circle", np.array([[0, 0], [1.9, 1.9]]), top_k=2)
    assert out.predictions.tolist() == [1, 0]
    assert out.outputs.shape == (2, 2) and out.outputs.dtype == np.float32
    # Outputs are logits; top-k carries their softmax.
    probs = np.exp(out.outputs) / np.exp(out.outputs).sum(axis=1, keepdims=True)
    assert out.top_k[0][0][0] == 1 and len(out.top_k[0]) == 2
    assert out.top_k[0][0][1] == pytest.approx(probs[0, 1], rel=1e-5)
    raw = client.infer("circle", np.array([[0, 0], [1.9, 1.9]]), raw_output=True)
    np.testing.assert_array_equal(raw.outputs, out.outputs)
    # Bytes with a divisor: the server divides, as numpy does in float32.
    pixels = np.array([[0, 255], [51, 200], [7, 128]], dtype=np.uint8)
    as_bytes = client.infer("circle", pixels, uint8_divisor=100)
    as_floats = client.infer(
        "circle", pixels.astype(np.float32) / np.float32(100))
    np.testing.assert_array_equal(as_bytes.outputs, as_floats.outputs)
    assert out.weights_step == 600
    client.delete_dataset(info.dataset_id)
    with pytest.raises(nnlab.NotFound):
        client.delete_dataset(info.dataset_id)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32,
                                   np.int64, np.uint8, np.int8, np.float16])
def test_numpy_dtypes_round_trip(client, dtype):
    if "dtypes" not in {m.model_id for m in client.list_models()}:
        client.create_model(CIRCLE_SPEC, model_id="dtypes")
    values = np.array([[0, 1], [2, -1], [1, 1]])
    if dtype == np.uint8:
        values = np.abs(values)
    x = values.astype(dtype)
    want = client.infer("dtypes", values.astype(np.float32)).outputs
    np.testing.assert_array_equal(client.infer("dtypes", x).outputs, want)
    t = nnlab.to_tensor(x)
    assert list(t.shape) == [3, 2]
    np.testing.assert_array_equal(nnlab.to_array(t), x.astype(np.float32))


def test_tensor_shapes_round_trip():
    for shape in [(0,), (5,), (2, 3), (2, 1, 28, 28), (4, 28, 28)]:
        a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) / 7
        back = nnlab.to_array(nnlab.to_tensor(a))
        assert back.shape == shape and back.dtype == np.float32
        np.testing.assert_array_equal(back, a.astype(np.float32))
    # Fortran order and views are made contiguous first.
    f = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(nnlab.to_array(nnlab.to_tensor(f)), f)
    with pytest.raises(TypeError):
        nnlab.to_tensor(np.array(["a", "b"]))
    with pytest.raises(TypeError):
        nnlab.to_tensor(np.array([True, False]))
    # uint8 bytes: a quarter of the size, the same float32 values back.
    b = np.array([[0, 1, 255], [7, 128, 64]], dtype=np.uint8)
    t = nnlab.to_tensor(b, uint8_divisor=255)
    assert len(t.uint8_data) == 6 and not t.raw_data and not t.data
    np.testing.assert_array_equal(nnlab.to_array(t),
                                  b.astype(np.float32) / np.float32(255))
    with pytest.raises(TypeError):
        nnlab.to_tensor(b.astype(np.float32), uint8_divisor=255)


def test_bad_input_raises_with_status_codes(client):
    with pytest.raises(nnlab.NotFound) as e:
        client.get_model("nope")
    assert e.value.code == grpc.StatusCode.NOT_FOUND and "nope" in e.value.message
    # Rejected by the server: a layer with no units.
    with pytest.raises(nnlab.InvalidArgument):
        client.create_model({"inputShape": [2], "layers": [{"dense": {}}]})
    # Rejected before sending: not a ModelSpec field.
    with pytest.raises(nnlab.InvalidArgument):
        client.create_model({"inputShape": [2], "layerz": []})
    with pytest.raises(TypeError):
        client.create_model(42)
    client.create_model(CIRCLE_SPEC, model_id="bad-input")
    with pytest.raises(nnlab.InvalidArgument):
        client.infer("bad-input", np.zeros((2, 3), np.float32))  # wrong shape
    with pytest.raises(nnlab.InvalidArgument):
        client.infer("bad-input", np.array([[np.nan, 0]], np.float32))
    with pytest.raises(nnlab.InvalidArgument):  # a divisor of 0
        client.infer("bad-input", np.ones((1, 2), np.uint8), uint8_divisor=0)
    with pytest.raises(nnlab.AlreadyExists):
        client.create_model(CIRCLE_SPEC, model_id="bad-input")
    with pytest.raises(nnlab.NotFound):
        client.train("bad-input", "no-such-dataset")
    with pytest.raises(nnlab.InvalidArgument):
        client.train("bad-input", "mnist", batch_size=-1)
    with pytest.raises(nnlab.InvalidArgument):
        client.train("bad-input", "mnist", no_such_field=1)
    with pytest.raises(ValueError):
        client.upload_dataset("x", np.zeros((3, 2)), np.zeros(4), num_classes=2)
    with pytest.raises(nnlab.NotFound):
        client.job("no-such-job")
    # A stream that never delivered anything fails at once, no retries.
    with pytest.raises(nnlab.NotFound):
        next(nnlab.Job(client, training_pb2.Job(job_id="no-such-job")).events())


def test_token_and_tls_options(make_server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    s = make_server(extra=["--token_file=" + str(token_file)])
    with nnlab.Client(s.address) as anonymous:
        with pytest.raises(nnlab.Unauthenticated) as e:
            anonymous.list_models()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    with nnlab.Client(s.address, token="wrong") as wrong:
        with pytest.raises(nnlab.Unauthenticated):
            wrong.list_models()
    with nnlab.Client(s.address, token="s3cret") as ok:
        assert ok.list_models() == []
    with pytest.raises(ValueError):
        nnlab.Client(s.address, certificate_chain="only-a-cert.pem")


def test_job_control_and_listing(client):
    x, y = circle(200)
    info = client.upload_dataset("circle-ctl", x, y, num_classes=2)
    client.create_model(CIRCLE_SPEC, model_id="ctl")
    job = endless(client, "ctl", info.dataset_id)
    assert job.id in {j.id for j in client.list_jobs(model_id="ctl")}
    until(job, lambda j: j.record.step >= 5)
    job.pause()
    until(job, lambda j: j.state == "PAUSED")
    step = job.record.step
    with pytest.raises(nnlab.FailedPrecondition):
        job.pause()
    job.resume()
    until(job, lambda j: j.record.step > step)
    job.cancel()
    assert job.wait(timeout=60).state == "CANCELLED"
    with pytest.raises(nnlab.FailedPrecondition):
        job.resume()
    # wait() on a job that does not end within its timeout.
    other = endless(client, "ctl", info.dataset_id)
    with pytest.raises(nnlab.DeadlineExceeded):
        other.wait(timeout=0.3)
    other.cancel().wait(timeout=60)


def test_train_step_and_sample(client):
    client.create_model(CIRCLE_SPEC, model_id="step")
    x, y = circle(32)
    e1 = client.train_step("step", x, y, optimizer={"kind": "sgd", "learningRate": 0.5},
                           layer_stats=True)
    assert np.isfinite(e1.loss) and e1.step == 1
    assert [l.name for l in e1.layers] == ["dense0", "dense2"]
    for _ in range(20):
        e = client.train_step("step", x, y, optimizer="sgd")
    assert e.step == 21 and e.loss < e1.loss

    client.create_model({"noiseDim": 4,
                         "generator": {"layers": [{"dense": {"units": 8}}, {"tanh": {}},
                                                  {"dense": {"units": 3}}]},
                         "discriminator": {"layers": [{"dense": {"units": 8}}, {"relu": {}},
                                                      {"dense": {"units": 1}}]}},
                        model_id="gan")
    s1 = client.sample("gan", 5, seed=9)
    s2 = client.sample("gan", 5, seed=9)
    assert s1.samples.shape == (5, 3)
    np.testing.assert_array_equal(s1.samples, s2.samples)
    assert s1.tokens.size == 0


def test_char_model_sample_text(client):
    """A character model on the built-in corpus, then text from it."""
    vocabulary = next(d.vocabulary for d in client.list_datasets()
                      if d.dataset_id.startswith("chars:devil"))
    assert len(vocabulary) == 85
    client.create_model({"inputShape": [8, 85],
                         "layers": [{"lstm": {"units": 8, "returnSequences": True}},
                                    {"timeDense": {"units": 85}}],
                         "loss": "LOSS_SEQUENCE_SOFTMAX_CROSS_ENTROPY"},
                        model_id="chars")
    job = client.train("chars", "chars:devil:T=8", optimizer="adam",
                       batch_size=8, max_steps=5).wait(timeout=60)
    assert job.state == "COMPLETED"
    a = client.sample_text("chars", "THE ", 50, temperature=0.9, seed=3)
    assert len(a) == 50 and set(a) <= set(vocabulary)
    assert a == client.sample_text("chars", "THE ", 50, temperature=0.9, seed=3)
    with pytest.raises(nnlab.InvalidArgument):
        client.sample_text("chars", "~", 5)


def test_events_resume_after_a_server_restart(make_server):
    """A stream broken by a restart reopens from the last step seen: no
    event twice, training goes on past the break."""
    s = make_server()
    c = nnlab.Client(s.address)
    x, y = circle(400)
    info = c.upload_dataset("circle-restart", x, y, num_classes=2)
    c.create_model(CIRCLE_SPEC, model_id="r")
    job = c.train("r", info.dataset_id, optimizer="sgd", epochs=10000,
                  batch_size=10, checkpoint_every_steps=10)
    seen, restart_step, port = [], None, s.port
    for e in job.events():
        if e.phase != training_pb2.PHASE_TRAIN:
            continue
        seen.append(e.step)
        if restart_step is None and e.step >= 30:
            assert s.stop() == 0
            s = make_server(port=port, data_dir=s.data_dir)
            restart_step = e.step
        if restart_step is not None and e.step >= restart_step + 50:
            break
    # (A reader slower than the job may miss steps, counted in
    # dropped_events, even the first ones on a loaded machine; none may
    # come twice or out of order.)
    assert all(b > a for a, b in zip(seen, seen[1:])), "an event came twice"
    assert restart_step is not None and seen[-1] >= restart_step + 50
    assert c.get_job(job.id).resume_count >= 1  # it did go through a restart
    job.cancel()
    c.close()


def test_watch_prints_and_plots(client, tmp_path):
    x, y = circle(100)
    info = client.upload_dataset("circle-watch", x, y, num_classes=2, test_samples=20)
    client.create_model(CIRCLE_SPEC, model_id="w")
    job = client.train("w", info.dataset_id, optimizer="adam", epochs=3,
                       batch_size=10, stats_every=1)
    out = io.StringIO()
    png = str(tmp_path / "w.png")
    assert job.watch(plot=png, out=out, every=0).state == "COMPLETED"
    text = out.getvalue()
    assert "step 24/24" in text and "COMPLETED" in text
    try:
        import matplotlib  # noqa: F401
        assert os.path.getsize(png) > 1000
    except ImportError:
        assert not os.path.exists(png)


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _sign(d, name):
    """A key and a certificate for `name` (127.0.0.1, localhost) signed by
    the test CA in `d`."""
    base = os.path.join(d, name)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-subj", "/CN=" + name, "-keyout", base + ".key",
             "-out", base + ".csr")
    with open(base + ".ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-days", "2", "-in", base + ".csr", "-CA",
             os.path.join(d, "ca.pem"), "-CAkey", os.path.join(d, "ca.key"),
             "-CAcreateserial", "-extfile", base + ".ext", "-out", base + ".pem")


def test_mutual_tls(make_server, tmp_path):
    d = str(tmp_path)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
             "/CN=nnlab-test-ca", "-keyout", os.path.join(d, "ca.key"), "-out",
             os.path.join(d, "ca.pem"))
    _sign(d, "server")
    _sign(d, "client")
    p = lambda name: os.path.join(d, name)  # noqa: E731
    s = make_server(extra=["--tls_cert=" + p("server.pem"),
                           "--tls_key=" + p("server.key"),
                           "--tls_client_ca=" + p("ca.pem")])
    mtls = dict(root_certificates=p("ca.pem"), certificate_chain=p("client.pem"),
                private_key=p("client.key"))
    with nnlab.Client(s.address, **mtls) as c:
        c.create_model(CIRCLE_SPEC, model_id="tls")
        assert [m.model_id for m in c.list_models()] == ["tls"]
    # The name the certificate is checked against can be overridden.
    with nnlab.Client("localhost:%d" % s.port, server_name="localhost", **mtls) as c:
        assert c.health() == "SERVING"
    # No client certificate, or no TLS at all: the handshake fails.
    with nnlab.Client(s.address, root_certificates=p("ca.pem"), timeout=5) as c:
        with pytest.raises(nnlab.Unavailable):
            c.list_models()
    with nnlab.Client(s.address, timeout=5) as c:
        with pytest.raises(nnlab.Unavailable):
            c.list_models()
