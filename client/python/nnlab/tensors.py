"""numpy arrays <-> nnlab.v1.Tensor.

The wire format is float32 (row-major, little-endian raw bytes); any real or
integer numpy array is accepted and converted, anything else is a TypeError.
8-bit inputs such as image pixels may travel as one byte per value instead
(`uint8_divisor`: the server divides each byte by it).
"""
import numpy as np

from nnlab.v1 import tensor_pb2


def to_tensor(array, uint8_divisor=None) -> tensor_pb2.Tensor:
    """A Tensor holding `array` (converted to float32, C order). With
    uint8_divisor (e.g. 255 for pixels in [0, 1]), `array` must be uint8 and
    travels as its bytes, a quarter of the size; the values are then
    float32(byte) / float32(uint8_divisor)."""
    a = np.asarray(array)
    if uint8_divisor is not None:
        if a.dtype != np.uint8:
            raise TypeError("uint8_divisor needs a uint8 array, not %s" %
                            a.dtype)
        a = np.ascontiguousarray(a)
        return tensor_pb2.Tensor(shape=list(a.shape), uint8_data=a.tobytes(),
                                 uint8_divisor=float(uint8_divisor))
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
    elif tensor.uint8_data:
        a = (np.frombuffer(tensor.uint8_data, dtype=np.uint8).astype(np.float32)
             / np.float32(tensor.uint8_divisor))
    else:
        a = np.asarray(tensor.data, dtype=np.float32)
    return a.reshape(shape)
