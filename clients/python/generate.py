"""Generates the gRPC code from proto/credbroker/v1/broker.proto into src/ (git-ignored).

The one command: ``python clients/python/generate.py``. The test suite and the package
build run it too, so the generated code can never be stale.
"""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO = PROTO_ROOT / "credbroker" / "v1" / "broker.proto"
OUT = HERE / "src"


def generate() -> None:
    from grpc_tools import protoc  # grpcio-tools: protoc and the Python plugin, from PyPI

    import grpc_tools

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    OUT.mkdir(exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        str(PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")
    # Regular packages, so `from credbroker.v1 import broker_pb2` (what the generated
    # stubs import) works from an installed wheel and from src/ alike.
    for package in (OUT / "credbroker", OUT / "credbroker" / "v1"):
        (package / "__init__.py").touch()


if __name__ == "__main__":
    generate()
    print(f"generated into {OUT}", file=sys.stderr)
