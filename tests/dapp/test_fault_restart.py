"""Fault: a real ``kdran dapp serve`` process killed with SIGKILL (mid-upload, too) comes back
with the last known good model, and the staging area of the killed upload is gone."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
from dapp_helpers import MakeArtifact, doppler_channels, serve_subprocess

from csi.presets import TINY
from dapp.artifact import sha256_file
from dapp.client import DappClient
from kdran.net import free_port
from kdran.v1 import model_manager_pb2 as mm

HISTORY = doppler_channels(1, TINY.history, seed=4)[0]



def _connect(port: int) -> DappClient:
    client = DappClient(f"127.0.0.1:{port}", timeout_s=5.0)
    client.wait_ready(timeout_s=60)
    return client


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def _stalled_upload(client: DappClient, directory: Path, release: threading.Event,
                    stalled: threading.Event) -> grpc.Future:
    model = directory / "model.onnx"

    def requests() -> Iterator[mm.DeployRequest]:
        yield mm.DeployRequest(header=mm.DeployHeader(
            version="half", sha256=sha256_file(model), mode=mm.DeployHeader.ACTIVE,
            total_size=model.stat().st_size))
        yield mm.DeployRequest(chunk=model.read_bytes()[:64])
        stalled.set()
        release.wait(30)

    return client.manager.DeployModel.future(requests(), timeout=60)


def test_sigkill_restart_serves_last_known_good(tmp_path: Path,
                                                make_artifact: MakeArtifact) -> None:
    state, log = tmp_path / "state", tmp_path / "dapp.log"
    port = free_port()
    proc = serve_subprocess(state, port, log, seed=make_artifact("linear", "lin-1"))
    release, stalled = threading.Event(), threading.Event()
    try:
        with _connect(port) as client:
            client.deploy_model(make_artifact("outdated", "out-2"), "out-2", "active")
            client.deploy_model(make_artifact("linear", "lin-3"), "lin-3", "shadow")
            assert client.predict(HISTORY).model_version == "out-2"
            call = _stalled_upload(client, make_artifact("linear", "half"), release, stalled)
            assert stalled.wait(10)
            _kill(proc)                                  # killed in the middle of an upload
            release.set()
            call.cancel()

        proc = serve_subprocess(state, port, log)        # no --model: the store must suffice
        with _connect(port) as client:
            status = client.status()
            assert (status.versions.active, status.versions.shadow) == ("out-2", "lin-3")
            assert status.versions.previous == "lin-1"
            assert client.predict(HISTORY).model_version == "out-2"
            assert list((state / "incoming").iterdir()) == []     # the half upload is gone
            assert sorted(p.name for p in (state / "models").iterdir()) == [
                "lin-1", "lin-3", "out-2"]
            assert client.rollback().active == "lin-1"  # the rollback stack survived too
    finally:
        release.set()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
    assert "Traceback" not in log.read_text()
