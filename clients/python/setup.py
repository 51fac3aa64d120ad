"""Generates the gRPC code from the repository's proto before setuptools looks for packages.

pip builds a local directory in place (pip >= 21.3), so the proto is found at
../../proto from here: `pip install ./clients/python` works from a clean checkout, with the
generated code never stale. Generating at import rather than in build_py matters: pip asks for
the metadata (egg_info) first, and setuptools refuses a package directory that does not exist
yet (src/credbroker).

The generated modules check at import that the grpcio and protobuf at run time are at least
the ones that generated them, so the dependencies get those floors.
"""

import os
import runpy

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(globals().get("__file__", os.path.join(os.getcwd(), "setup.py"))))


def generated_code_floors() -> list:
    """grpcio >= and protobuf >= the versions in the build environment (grpcio-tools' own)."""
    import grpc_tools
    import google.protobuf
    from importlib.metadata import version

    del grpc_tools
    return [f"grpcio>={version('grpcio-tools')}", f"protobuf>={google.protobuf.__version__}"]


runpy.run_path(os.path.join(HERE, "generate.py"))["generate"]()
setup(install_requires=generated_code_floors())
