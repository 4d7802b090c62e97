"""Fixtures for the dApp tests: torch-free ONNX test models, artifacts, a real gRPC server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dapp_helpers import MakeArtifact, start_dapp, write_test_artifact

from csi.presets import TINY, Preset
from dapp.client import DappClient
from dapp.server import DappServer


@pytest.fixture
def make_artifact(tmp_path: Path) -> MakeArtifact:
    """``make_artifact(kind, version, preset=TINY)`` -> artifact directory."""
    def make(kind: str, version: str, preset: Preset = TINY) -> Path:
        return write_test_artifact(tmp_path / "artifacts" / f"{kind}-{version}-{preset.name}",
                                   kind, version, preset)

    return make


@pytest.fixture
def dapp(tmp_path: Path, make_artifact: MakeArtifact) -> Iterator[DappServer]:
    """A running dApp (TCP + Unix socket) serving the linear model ``lin-1`` as active."""
    server = start_dapp(tmp_path / "state", make_artifact("linear", "lin-1"),
                        uds=str(tmp_path / "dapp.sock"))
    yield server
    server.stop(grace_s=0.5)


@pytest.fixture
def client(dapp: DappServer) -> Iterator[DappClient]:
    """A client of the ``dapp`` fixture over TCP."""
    with DappClient(f"127.0.0.1:{dapp.port}") as c:
        c.wait_ready()
        yield c
