"""Signed models: the dApp with verification keys refuses unsigned, wrongly signed, corrupt,
truncated and cancelled uploads (FAILED_PRECONDITION / INVALID_ARGUMENT / CANCELLED), keeps
serving the active model, leaves nothing on disk, and re-verifies stored models on restart."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dapp_helpers import MakeArtifact, doppler_channels, start_dapp, wait_for

from csi.presets import TINY
from dapp.client import DappClient
from dapp.server import DappServer
from kdran.signing import KeyPairFiles, generate_key_pair, read_signature, sign_artifact
from kdran.v1 import model_manager_pb2 as mm

Code = grpc.StatusCode
HISTORY = doppler_channels(1, TINY.history, seed=3)[0]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPairFiles]:
    """Two trusted keys (rotation) and an untrusted one."""
    return {name: generate_key_pair(tmp_path / "keys", name) for name in ("old", "new", "evil")}


@pytest.fixture
def signed(make_artifact: MakeArtifact, keys: dict[str, KeyPairFiles]) -> MakeArtifact:
    """``signed(version, key="new", kind="linear")`` -> a signed artifact directory."""
    def make(version: str, key: str = "new", kind: str = "linear") -> Path:
        directory = make_artifact(kind, version)
        sign_artifact(directory, keys[key].private_key)
        return directory

    return make


@pytest.fixture
def verifying(tmp_path: Path, signed: MakeArtifact,
              keys: dict[str, KeyPairFiles]) -> Iterator[DappServer]:
    """A dApp trusting keys "old" and "new", seeded with lin-1 signed by "old"."""
    server = start_dapp(tmp_path / "state", signed("lin-1", "old"),
                        verify_keys=(keys["old"].public_key, keys["new"].public_key))
    yield server
    server.stop(grace_s=0.5)


def _client(server: DappServer) -> DappClient:
    client = DappClient(f"127.0.0.1:{server.port}")
    client.wait_ready()
    return client


def _refused(client: DappClient, directory: Path, version: str, code: Code, match: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.deploy_model(directory, version, "shadow")
    assert err.value.code() == code and match in (err.value.details() or "")
    assert client.predict(HISTORY).model_version == "lin-1"           # still serving


def _store_is_clean(server: DappServer, *absent: str) -> None:
    store = server.manager.store
    assert list(store.incoming.iterdir()) == []
    assert not any((store.models / v).exists() for v in absent)


def test_signed_models_deploy_with_either_rotated_key(verifying: DappServer,
                                                      signed: MakeArtifact) -> None:
    with _client(verifying) as client:
        assert client.status().versions.active == "lin-1"
        for version, key in (("lin-2", "new"), ("lin-3", "old")):
            assert client.deploy_model(signed(version, key), version, "shadow").mode == "shadow"
        assert (verifying.manager.store.path("lin-3") / "SIGNATURE").is_file()


def test_unsigned_and_wrongly_signed_uploads_are_refused(verifying: DappServer,
                                                         signed: MakeArtifact,
                                                         make_artifact: MakeArtifact) -> None:
    with _client(verifying) as client:
        _refused(client, make_artifact("linear", "u-1"), "u-1", Code.FAILED_PRECONDITION,
                 "not signed")
        _refused(client, signed("e-1", "evil"), "e-1", Code.FAILED_PRECONDITION,
                 "not one of the trusted keys")
        tampered = signed("t-1")
        (tampered / "card.json").write_text('{"version": "t-1", "note": "edited"}\n')
        _refused(client, tampered, "t-1", Code.FAILED_PRECONDITION, "does not match")
        other = signed("o-1")                 # a valid signature, but of another model file
        shutil.copy(make_artifact("outdated", "o-1") / "model.onnx", other / "model.onnx")
        _refused(client, other, "o-1", Code.FAILED_PRECONDITION, "does not match")
        failures = verifying.metrics.registry.get_sample_value(
            "kdran_dapp_model_load_failures_total", {"reason": "signature"})
        assert failures == 4
    _store_is_clean(verifying, "u-1", "e-1", "t-1", "o-1")


def _signed_header(directory: Path, version: str, total: int) -> mm.DeployHeader:
    """The DeployModel header of ``directory`` (its real digest, card and signature)."""
    signature = read_signature(directory)
    assert signature is not None
    return mm.DeployHeader(
        version=version, sha256=hashlib.sha256((directory / "model.onnx").read_bytes())
        .hexdigest(), mode=mm.DeployHeader.SHADOW, total_size=total,
        card_json=(directory / "card.json").read_text(), signature=signature.value,
        signing_key_id=signature.key_id)


def _raw_deploy(client: DappClient, directory: Path, version: str, data: bytes,
                total: int) -> None:
    """Deploy ``data`` under the header of ``directory``."""
    requests = [mm.DeployRequest(header=_signed_header(directory, version, total)),
                mm.DeployRequest(chunk=data)]
    client.manager.DeployModel(iter(requests), timeout=10)


def test_corrupt_and_truncated_uploads_of_a_signed_model(verifying: DappServer,
                                                         signed: MakeArtifact) -> None:
    directory = signed("c-1")
    model = (directory / "model.onnx").read_bytes()
    corrupt = bytes([model[0] ^ 0xFF]) + model[1:]
    with _client(verifying) as client:
        with pytest.raises(grpc.RpcError) as err:
            _raw_deploy(client, directory, "c-1", corrupt, len(model))
        assert err.value.code() == Code.FAILED_PRECONDITION and "sha256 mismatch" in (
            err.value.details() or "")
        with pytest.raises(grpc.RpcError) as err:
            _raw_deploy(client, directory, "c-1", model[: len(model) // 2], len(model))
        assert err.value.code() == Code.INVALID_ARGUMENT
        assert client.predict(HISTORY).model_version == "lin-1"
        _raw_deploy(client, directory, "c-1", model, len(model))     # the intact bytes pass
    _store_is_clean(verifying)


def test_cancelled_upload_leaves_nothing_behind(verifying: DappServer,
                                                signed: MakeArtifact) -> None:
    directory = signed("x-1")
    model = (directory / "model.onnx").read_bytes()
    release, stalled = threading.Event(), threading.Event()
    store = verifying.manager.store

    def requests() -> Iterator[mm.DeployRequest]:
        yield mm.DeployRequest(header=_signed_header(directory, "x-1", len(model)))
        yield mm.DeployRequest(chunk=model[:100])
        stalled.set()
        release.wait(10)                                   # the client stalls mid-upload

    with _client(verifying) as client:
        call = client.manager.DeployModel.future(requests(), timeout=30)
        assert stalled.wait(10)
        wait_for(lambda: list(store.incoming.iterdir()), bool)   # the server is receiving
        call.cancel()
        release.set()
        wait_for(lambda: list(store.incoming.iterdir()), lambda left: left == [])
        assert call.cancelled()
        assert client.predict(HISTORY).model_version == "lin-1"
        assert client.status().versions.shadow == ""
    _store_is_clean(verifying, "x-1")


def test_restart_reverifies_stored_models(tmp_path: Path, signed: MakeArtifact,
                                          keys: dict[str, KeyPairFiles]) -> None:
    trusted = (keys["old"].public_key, keys["new"].public_key)
    server = start_dapp(tmp_path / "state", signed("lin-1", "old"), verify_keys=trusted)
    with _client(server) as client:
        client.deploy_model(signed("lin-2"), "lin-2", "active")
    server.stop(grace_s=0.5)
    stored = server.manager.store.path("lin-2")
    sign_artifact(stored, keys["evil"].private_key)         # tampered on disk while down

    server = start_dapp(tmp_path / "state", verify_keys=trusted)
    try:
        assert server.manager.versions().active == "lin-1"     # lin-2 no longer verifies
        assert server.metrics.registry.get_sample_value(
            "kdran_dapp_model_load_failures_total", {"reason": "signature"}) == 1
    finally:
        server.stop(grace_s=0.5)
    server = start_dapp(tmp_path / "state2", signed("lin-9", "evil"), verify_keys=trusted)
    try:
        assert server.manager.versions().active == ""          # untrusted seed: fallback only
    finally:
        server.stop(grace_s=0.5)
