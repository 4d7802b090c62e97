"""Fixtures of the deployment tests (the helpers they use live in ``deploy_support``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import helm_python
import pytest
from deploy_support import SHARED, DocumentedMetric, documented_metrics


@pytest.fixture(scope="session", autouse=True)
def quiet_helm() -> Iterator[None]:
    """Keep Helm's INFO log lines (e.g. the descriptor symlinks) out of the test output."""
    helm_python.disable_logging()
    yield


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """``../shared/conformance`` beside the repository; the test fails (never skips) without it."""
    path = SHARED / "conformance"
    if not (path / "xapp-descriptor-schema.json").is_file():
        pytest.fail(f"{path}/xapp-descriptor-schema.json is missing: the descriptor tests need "
                    f"shared/ beside the repository (as CI checks it out)")
    return path


@pytest.fixture(scope="session")
def metrics_catalogue() -> dict[str, DocumentedMetric]:
    """docs/METRICS.md parsed."""
    return documented_metrics()
