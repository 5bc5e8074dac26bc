"""Builds the nnlab package; the gRPC stubs are generated here, at build time.

The stubs (nnlab/v1/*_pb2.py, *_pb2_grpc.py) come from the
repository's proto/ folder (two levels up from this file), or from the folder
named by NNLAB_PROTO_DIR, with grpc_tools.protoc. They are never committed.
"""
import glob
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithStubs(build_py):
    """build_py that also generates the nnlab.v1 stubs into build_lib."""

    def run(self):
        super().run()
        from grpc_tools import protoc  # only needed at build time

        proto_dir = os.environ.get("NNLAB_PROTO_DIR",
                                   os.path.join(HERE, "..", "..", "proto"))
        protos = sorted(glob.glob(os.path.join(proto_dir, "nnlab", "v1", "*.proto")))
        if not protos:
            raise RuntimeError(
                "no nnlab/v1/*.proto under %s: build from the nnlab repository "
                "or set NNLAB_PROTO_DIR" % proto_dir)
        # grpc_tools ships the well-known types (timestamp.proto).
        well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        out = self.build_lib
        args = ["protoc", "-I" + proto_dir, "-I" + well_known,
                "--python_out=" + out,
                "--grpc_python_out=" + out] + protos
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on %s" % proto_dir)
        init = os.path.join(out, "nnlab", "v1", "__init__.py")
        with open(init, "w") as f:
            f.write('"""Generated from proto/nnlab/v1 at build time."""\n')


setup(packages=["nnlab"], cmdclass={"build_py": BuildWithStubs})
