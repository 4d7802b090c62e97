"""docs/CONFIG.md is generated from schema.json and must be current."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("config_reference",
                                                  ROOT / "deploy" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_is_current() -> None:
    assert _module().main(["--check"]) == 0, "run: python deploy/config_reference.py"


def test_every_schema_leaf_is_documented() -> None:
    reference = _module()
    schema = json.loads((ROOT / "schema.json").read_text())
    keys = [row[0] for row in reference.rows(schema)]
    assert "drift.page_hinkley.threshold" in keys and "http.token_file" in keys
    page = (ROOT / "docs" / "CONFIG.md").read_text()
    assert all(f"| `{key}` |" in page for key in keys)
