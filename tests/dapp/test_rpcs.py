"""Every RPC over a real gRPC server (TCP and Unix socket); answers equal in-process ORT."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from dapp_helpers import MakeArtifact, doppler_channels
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from csi.presets import TINY
from dapp.client import DappClient
from dapp.messages import Answer, Observation
from dapp.runner import OnnxRunner
from dapp.server import SERVICE_NAMES, DappServer


def _reference(dapp: DappServer, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The active model run in-process on ``windows`` ``[b, history, a, r]``."""
    runner = OnnxRunner(dapp.engine.slots.active.path)        # type: ignore[union-attr]
    return runner.predict_with_beams(windows)


def _check(answer: Answer, future: np.ndarray, beams: np.ndarray) -> None:
    assert answer.ready and not answer.fallback and answer.model_version == "lin-1"
    np.testing.assert_array_equal(answer.future, future)
    top = np.argsort(-beams, kind="stable")[:3]
    np.testing.assert_array_equal(answer.top_beams, top)
    np.testing.assert_array_equal(answer.top_scores, beams[top])
    assert answer.best_beam == top[0]


def test_health_and_reflection(client: DappClient) -> None:
    assert client.health() == "SERVING"
    for name in SERVICE_NAMES:
        assert client.health(name) == "SERVING"
    services = ProtoReflectionDescriptorDatabase(client.channel).get_services()
    assert set(SERVICE_NAMES) <= set(services)
    assert "grpc.health.v1.Health" in services


def test_predict_equals_in_process_ort(dapp: DappServer, client: DappClient) -> None:
    history = doppler_channels(1, TINY.history + 4, seed=3)[0]
    answer = client.predict(history, ue_id="probe")
    future, beams = _reference(dapp, history[None, -TINY.history:])
    _check(answer, future[0], beams[0])
    assert answer.ue_id == "probe"
    assert client.predict(history, horizon=1).future.shape == (1, 8, 12)


def test_predict_batch_and_observe_equal_in_process_ort(dapp: DappServer,
                                                        client: DappClient) -> None:
    h = doppler_channels(3, TINY.history + 5, seed=4)
    ues = ["du1/a", "du1/b", "du1/c"]
    start = TINY.history - 1
    first = client.predict_batch([Observation(ue, start, history=h[i, :TINY.history],
                                              group="cell-1") for i, ue in enumerate(ues)])
    future, beams = _reference(dapp, h[:, :TINY.history])
    for i, answer in enumerate(first):
        assert answer.ue_id == ues[i] and answer.slot == start
        _check(answer, future[i], beams[i])
    nxt = client.predict_batch([Observation(ue, start + 1, srs=h[i, TINY.history])
                                for i, ue in enumerate(ues)])
    future, beams = _reference(dapp, h[:, 1:TINY.history + 1])
    for i, answer in enumerate(nxt):
        _check(answer, future[i], beams[i])
    # the same UEs continue on an Observe stream: the state is shared
    with client.open_stream() as stream:
        answer = stream.send(Observation("du1/a", start + 2, srs=h[0, TINY.history + 1]))
    future, beams = _reference(dapp, h[:1, 2:TINY.history + 2])
    _check(answer, future[0], beams[0])


def test_observe_stream_warms_up_then_predicts(client: DappClient) -> None:
    h = doppler_channels(1, 12, seed=5)[0]
    observations = [Observation("u", 0, history=h[:1])]
    observations += [Observation("u", t, srs=h[t]) for t in range(1, 12)]
    answers = list(client.observe(observations))
    assert [a.slot for a in answers] == list(range(12))
    assert [a.ready for a in answers] == [t >= TINY.history - 1 for t in range(12)]
    assert answers[0].future is None and answers[0].best_beam == -1


def test_unix_socket(dapp: DappServer) -> None:
    with DappClient(f"unix:{dapp.uds}") as client:
        answer = client.predict(doppler_channels(1, TINY.history)[0])
    assert answer.ready and answer.model_version == "lin-1"


def test_status_and_export_recent_csi(client: DappClient) -> None:
    h = doppler_channels(2, 14, seed=6)
    for i, ue in enumerate(("x", "y")):
        client.predict_batch([Observation(ue, 20, history=h[i, :10], group=f"g{i}")])
        for t in range(10, 14):
            client.predict_batch([Observation(ue, 11 + t, srs=h[i, t])])
    status = client.status()
    assert status.versions.active == "lin-1" and status.tracked_ues == 2
    assert (status.preset, status.history, status.horizon, status.n_ant, status.n_rb) == (
        "tiny", 8, 2, 8, 12)
    assert status.predictions == 10 and status.fallbacks == 0 and status.uptime_s > 0
    assert {g.group for g in status.groups} == {"g0", "g1"}
    assert {lat.rpc for lat in status.latency} == {"PredictBatch"}
    everything = list(client.export_recent_csi())
    assert {r.ue_id for r in everything} == {"x", "y"}
    for record in everything:
        i = "xy".index(record.ue_id)
        assert record.first_slot == 11 and record.group == f"g{i}"
        np.testing.assert_array_equal(record.channel, h[i])
    windows = list(client.export_recent_csi(max_sequences=3, sequence_length=5))
    assert len(windows) == 3 and all(w.channel.shape == (5, 8, 12) for w in windows)
    newest = next(w for w in windows if w.ue_id == windows[0].ue_id)
    i = "xy".index(newest.ue_id)
    assert newest.first_slot == 11 + 9
    np.testing.assert_array_equal(newest.channel, h[i, 9:14])
    assert [r.ue_id for r in client.export_recent_csi(ue_group="g1")] == ["y"]


def test_control_plane_round_trip(client: DappClient, make_artifact: MakeArtifact) -> None:
    directory: Path = make_artifact("outdated", "out-2")
    result = client.deploy_model(directory, "out-2", "shadow", chunk_bytes=1000)
    assert (result.version, result.mode, result.versions.shadow) == ("out-2", "shadow", "out-2")
    assert result.size_bytes == (directory / "model.onnx").stat().st_size and result.load_ms > 0
    assert client.promote("out-2").active == "out-2"
    assert client.rollback().active == "lin-1"
    client.deploy_model(directory, "out-2", "shadow")            # installed: same digest is ok
    assert client.discard_shadow().shadow == ""
    with pytest.raises(grpc.RpcError) as err:
        client.rollback()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
