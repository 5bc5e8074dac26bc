"""nnlab: the Python client of the nnlab neural-network training service.

    import nnlab
    c = nnlab.Client("127.0.0.1:50051")
    m = c.create_model("examples/mnist_mlp_100.textproto")
    c.train(m.model_id, "mnist", optimizer="adam", epochs=1).watch()
    print(c.infer(m.model_id, images).predictions)
"""
from nnlab.errors import (AlreadyExists, DataLoss, DeadlineExceeded,
                          FailedPrecondition, InvalidArgument, NnlabError,
                          NotFound, PermissionDenied, ResourceExhausted,
                          Unauthenticated, Unavailable)
from nnlab.client import Client, InferResult, SampleResult, parse_spec
from nnlab.job import Job
from nnlab.tensors import to_array, to_tensor

__all__ = [
    "Client", "Job", "InferResult", "SampleResult", "parse_spec",
    "to_array", "to_tensor", "NnlabError", "InvalidArgument", "NotFound",
    "AlreadyExists", "FailedPrecondition", "PermissionDenied",
    "Unauthenticated", "ResourceExhausted", "Unavailable",
    "DeadlineExceeded", "DataLoss",
]
