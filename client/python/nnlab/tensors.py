"""numpy arrays <-> nnlab.v1.Tensor.

The wire format is float32 (row-major, little-endian raw bytes); any real or
integer numpy array is accepted and converted, anything else is a TypeError.
"""
import numpy as np

from nnlab.v1 import tensor_pb2


def to_tensor(array) -> tensor_pb2.Tensor:
    """A Tensor holding `array` (converted to float32, C order)."""
    a = np.asarray(array)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or
                                   np.issubdtype(a.dtype, np.integer)):
        raise TypeError("nnlab tensors hold real numbers, not %s" % a.dtype)
    a = np.ascontiguousarray(a, dtype="<f4")
    return tensor_pb2.Tensor(shape=list(a.shape), raw_data=a.tobytes())


def to_array(tensor: tensor_pb2.Tensor) -> np.ndarray:
    """The float32 array a Tensor holds (either of its encodings)."""
    shape = tuple(tensor.shape)
    if tensor.raw_data:
        a = np.frombuffer(tensor.raw_data, dtype="<f4").astype(np.float32)
    else:
        a = np.asarray(tensor.data, dtype=np.float32)
    return a.reshape(shape)
