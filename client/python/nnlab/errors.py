"""Exceptions raised by the nnlab client: one class per gRPC status code.

Every failed call raises an NnlabError (or a subclass) carrying the server's
status code and message unchanged, so callers can catch broad or narrow:

    try:
        client.get_model("nope")
    except nnlab.NotFound:
        ...
"""
from typing import Dict, Type

import grpc


class NnlabError(Exception):
    """A call failed; `code` is the grpc.StatusCode, `message` the reason."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__("%s: %s" % (code.name, message))
        self.code = code
        self.message = message


class InvalidArgument(NnlabError):
    """The request was malformed (bad spec, shape, value)."""


class NotFound(NnlabError):
    """No such model, job or data set."""


class AlreadyExists(NnlabError):
    """An id is taken."""


class FailedPrecondition(NnlabError):
    """The request is valid but not in this state (e.g. resume a running job)."""


class PermissionDenied(NnlabError):
    """Not allowed."""


class Unauthenticated(NnlabError):
    """Missing or wrong token."""


class ResourceExhausted(NnlabError):
    """A server limit was reached (queue, sizes)."""


class Unavailable(NnlabError):
    """The server cannot be reached (or is shutting down)."""


class DeadlineExceeded(NnlabError):
    """The call ran past its deadline."""


class DataLoss(NnlabError):
    """Data arrived damaged (e.g. a checksum mismatch on upload)."""


_BY_CODE: Dict[grpc.StatusCode, Type[NnlabError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.DATA_LOSS: DataLoss,
}


def from_rpc_error(err: grpc.RpcError) -> NnlabError:
    """The NnlabError subclass for a failed call."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return _BY_CODE.get(code, NnlabError)(code, details or "")
