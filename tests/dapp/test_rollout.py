"""Shadow -> promote -> rollback, hot swaps under load, and restart from the last known good."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from dapp_helpers import MakeArtifact, doppler_channels, start_dapp, wait_for

from csi.presets import TINY
from dapp.client import DappClient
from dapp.messages import Answer, Observation
from dapp.server import DappServer


def _feed(client: DappClient, ue: str, first: int, count: int, seed: int) -> list[Answer]:
    h = doppler_channels(1, first + count, seed=seed)[0]
    observations = [Observation(ue, first, history=h[:first + 1])]
    observations += [Observation(ue, t, srs=h[t]) for t in range(first + 1, first + count)]
    return list(client.observe(observations))


def test_shadow_promote_rollback(dapp: DappServer, client: DappClient,
                                 make_artifact: MakeArtifact) -> None:
    client.deploy_model(make_artifact("outdated", "out-2"), "out-2", "shadow")
    answers = _feed(client, "u1", TINY.history, 20, seed=1)
    assert {a.model_version for a in answers} == {"lin-1"}
    status = wait_for(client.status, lambda s: any(m.version == "out-2" and m.scored > 0
                                                   for m in s.models))
    roles = {m.version: m.role for m in status.models}
    assert roles == {"lin-1": "active", "out-2": "shadow"}
    with pytest.raises(grpc.RpcError) as err:
        client.promote("not-the-shadow")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    versions = client.promote("out-2")
    assert (versions.active, versions.shadow, versions.previous) == ("out-2", "", "lin-1")
    assert {a.model_version for a in _feed(client, "u2", TINY.history, 3, seed=2)} == {"out-2"}
    with pytest.raises(grpc.RpcError) as err:
        client.promote()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    versions = client.rollback()
    assert (versions.active, versions.previous) == ("lin-1", "")
    assert {a.model_version for a in _feed(client, "u3", TINY.history, 3, seed=3)} == {"lin-1"}
    roles = {m.version: m.role for m in client.status().models}
    assert roles["out-2"] == "retired"


def test_hot_swap_while_eight_clients_stream(dapp: DappServer, client: DappClient,
                                             make_artifact: MakeArtifact) -> None:
    out_dir = make_artifact("outdated", "out-2")
    lin3_dir = make_artifact("linear", "lin-3")
    failures: list[BaseException] = []
    answers: list[Answer] = []
    stop = threading.Event()
    lock = threading.Lock()

    def stream(k: int) -> None:
        h = doppler_channels(1, 64, seed=100 + k)[0]
        try:
            with DappClient(f"127.0.0.1:{dapp.port}") as c, c.open_stream() as s:
                s.send(Observation(f"ue{k}", TINY.history - 1, history=h[:TINY.history]))
                t = TINY.history
                while not stop.is_set():
                    answer = s.send(Observation(f"ue{k}", t, srs=h[t % 64]))
                    with lock:
                        answers.append(answer)
                    t += 1
        except BaseException as exc:                  # any failed RPC fails the test
            failures.append(exc)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            client.deploy_model(out_dir, "out-2", "shadow")
            client.promote("out-2")
            client.deploy_model(lin3_dir, "lin-3", "active")
            client.rollback()
            client.rollback()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures[:3]
    assert len(answers) > 50
    assert all(a.ready and not a.fallback for a in answers)
    assert {a.model_version for a in answers} <= {"lin-1", "out-2", "lin-3"}
    assert client.status().versions.active == "lin-1"


def test_restart_loads_last_known_good(tmp_path: Path, make_artifact: MakeArtifact) -> None:
    state, seed = tmp_path / "restart-state", make_artifact("linear", "lin-1")
    first = start_dapp(state, seed)
    with DappClient(f"127.0.0.1:{first.port}") as client:
        client.deploy_model(make_artifact("outdated", "out-2"), "out-2", "active")
        client.deploy_model(make_artifact("linear", "lin-5"), "lin-5", "shadow")
    first.stop(grace_s=0.2)

    second = start_dapp(state, seed)                 # the seed is ignored: the store has a model
    try:
        with DappClient(f"127.0.0.1:{second.port}") as client:
            status = client.status()
            assert (status.versions.active, status.versions.shadow,
                    status.versions.previous) == ("out-2", "lin-5", "lin-1")
            answer = client.predict(doppler_channels(1, TINY.history)[0])
            assert answer.model_version == "out-2" and not answer.fallback
    finally:
        second.stop(grace_s=0.2)

    model = state / "models" / "out-2" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10])      # corrupt the last known good on disk
    third = start_dapp(state, seed)
    try:
        assert third.engine.slots.active is not None
        assert third.engine.slots.active.version == "lin-1"    # its SHA256SUMS no longer match
        assert third.manager.versions().previous == ""
    finally:
        third.stop(grace_s=0.2)
