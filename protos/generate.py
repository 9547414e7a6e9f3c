"""Generate the committed Python code for protos/*.proto with one pinned generator.

python -m protos.generate          # rewrite protos/*_pb2*.py and *.pyi
python -m protos.generate --check  # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import metadata
from pathlib import Path

# Generated code must not be newer than the protobuf runtime users install, so the
# generator is pinned; bump it together with the protobuf floor in pyproject.toml.
PINNED_GRPCIO_TOOLS = "1.85.1"

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"


def _outputs(proto: Path) -> list[str]:
    stem = proto.stem
    return [f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"]


def generate(out_root: Path) -> list[Path]:
    """Run protoc for every proto into ``out_root/protos``; return the files written."""
    try:
        version = metadata.version("grpcio-tools")
    except metadata.PackageNotFoundError:
        sys.exit(f"grpcio-tools=={PINNED_GRPCIO_TOOLS} is needed: pip install -e '.[dev]'")
    if version != PINNED_GRPCIO_TOOLS:
        sys.exit(f"grpcio-tools {version} found; the generator is pinned to {PINNED_GRPCIO_TOOLS}")
    from grpc_tools import protoc

    (out_root / "protos").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for proto in sorted(PROTO_DIR.glob("*.proto")):
        rel = proto.relative_to(ROOT).as_posix()
        args = [
            "protoc",
            f"-I{ROOT}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            rel,
        ]
        if protoc.main(args) != 0:
            sys.exit(f"protoc failed on {rel}")
        written += [out_root / "protos" / name for name in _outputs(proto)]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args(argv)
    if not args.check:
        for path in generate(ROOT):
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stale = [
            path.name
            for path in generate(Path(tmp))
            if not (PROTO_DIR / path.name).exists()
            or not filecmp.cmp(path, PROTO_DIR / path.name, shallow=False)
        ]
    if stale:
        print("generated code is stale, run `python -m protos.generate`: " + ", ".join(stale))
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
