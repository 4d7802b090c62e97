"""The generated code in kdran/v1 is exactly what `make proto` produces from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "proto").rglob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", "proto",
                    f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
                    f"--grpc_python_out={tmp_path}", *protos], cwd=ROOT, check=True)
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.py*")}
    assert fresh, "protoc produced nothing"
    for rel, data in fresh.items():
        committed = ROOT / rel
        assert committed.is_file(), f"{rel} missing: run `make proto`"
        assert committed.read_bytes() == data, f"{rel} is stale: run `make proto`"
