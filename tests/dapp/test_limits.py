"""Per-client limits (stream rate, tracked UEs, export size) and the shadow-status race fix.

Each limit answers RESOURCE_EXHAUSTED with a message to the offender only; everyone else keeps
being served.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dapp_helpers import MakeArtifact, doppler_channels, start_dapp

from csi.presets import TINY
from dapp.client import DappClient
from dapp.engine import EngineConfig
from dapp.limits import ServiceLimits
from dapp.messages import Observation
from dapp.ratelimit import ClientBuckets, TokenBucket
from dapp.server import DappServer

CHANNEL = doppler_channels(1, TINY.history + 40, seed=11)[0]


def _start(ue: str, slot: int = TINY.history) -> Observation:
    return Observation(ue, slot, history=CHANNEL[:slot + 1])


@pytest.fixture
def limited(tmp_path: Path, make_artifact: MakeArtifact) -> Iterator[DappServer]:
    """A dApp with 3 UEs at most, 5 observations/s per stream (burst 4), 2 KiB exports, 1
    unary observation/s per client (burst 8)."""
    server = start_dapp(tmp_path / "state", make_artifact("linear", "lin-1"),
                        engine_config=EngineConfig(max_ues=3),
                        limits=ServiceLimits(stream_rate=5.0, stream_burst=4,
                                             export_bytes=2048, unary_rate=1.0,
                                             unary_burst=8))
    yield server
    server.stop(grace_s=0.5)


def _client(server: DappServer, own_connection: bool = False) -> DappClient:
    options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    client = DappClient(f"127.0.0.1:{server.port}", timeout_s=5.0, options=options)
    client.wait_ready()
    return client


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10.0, burst=2, clock=lambda: now[0])
    assert bucket.take() and bucket.take() and not bucket.take()
    now[0] += 0.1                                  # one token back
    assert bucket.take() and not bucket.take()
    now[0] += 10.0                                 # never more than the burst
    assert bucket.take(2) and not bucket.take()
    with pytest.raises(ValueError):
        TokenBucket(rate=0.0, burst=1)


def test_stream_over_its_rate_is_ended_others_served(limited: DappServer) -> None:
    with _client(limited) as client:
        stream = client.open_stream(timeout_s=10)
        stream.send(_start("r1"))
        for t in range(TINY.history + 1, TINY.history + 4):       # burst of 4 used up
            stream.send(Observation("r1", t, srs=CHANNEL[t]))
        with pytest.raises(grpc.RpcError) as err:
            stream.send(Observation("r1", TINY.history + 4, srs=CHANNEL[TINY.history + 4]))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit of 5 observations/s (burst 4)" in (err.value.details() or "")
        with client.open_stream(timeout_s=10) as fresh:           # a new stream has its bucket
            assert fresh.send(_start("r2")).model_version == "lin-1"


def test_client_buckets_are_per_client_and_bounded() -> None:
    now = [0.0]
    buckets = ClientBuckets(rate=1.0, burst=3, max_clients=2, clock=lambda: now[0])
    assert buckets.take("a", 3) and not buckets.take("a")
    assert buckets.take("b", 3)                        # another client has its own bucket
    assert buckets.take("c") and len(buckets) == 2      # "a", least recently seen, forgotten
    assert buckets.take("a", 3)                         # ... and starts full again


def test_unary_calls_over_the_client_rate_are_refused_others_served(
        limited: DappServer) -> None:
    with _client(limited) as client, _client(limited, own_connection=True) as other:
        t = TINY.history + 1
        client.predict_batch([_start(ue) for ue in ("a", "b", "c")])
        client.predict_batch([Observation(ue, t, srs=CHANNEL[t]) for ue in "abc"])
        with pytest.raises(grpc.RpcError) as err:      # 6 of 8 used: a batch of 3 is too much
            client.predict_batch([Observation(ue, t + 1, srs=CHANNEL[t + 1]) for ue in "abc"])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit of 1 observations/s over Predict/PredictBatch (burst 8)" in (
            err.value.details() or "")
        # Another connection is another client (gRPC peer): served.
        answers = other.predict_batch([Observation(ue, t + 1, srs=CHANNEL[t + 1]) for ue in "abc"])
        assert [a.model_version for a in answers] == ["lin-1"] * 3


def test_new_ue_beyond_the_maximum_is_refused(limited: DappServer) -> None:
    with _client(limited) as client:
        client.predict_batch([_start(ue) for ue in ("a", "b", "c")])
        with pytest.raises(grpc.RpcError) as err:
            client.predict_batch([_start("d")])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "3 UEs are tracked already" in (err.value.details() or "")
        t = TINY.history + 1
        answers = client.predict_batch([Observation(ue, t, srs=CHANNEL[t]) for ue in "abc"])
        assert [a.model_version for a in answers] == ["lin-1"] * 3
        assert client.status().tracked_ues == 3


def test_export_stops_at_the_byte_limit(limited: DappServer) -> None:
    with _client(limited) as client:
        client.predict_batch([_start(ue) for ue in ("a", "b", "c")])
        step_bytes = CHANNEL[0].nbytes                  # tiny: 8 x 12 complex64 = 768 bytes
        records = list(client.export_recent_csi(sequence_length=1))
        assert len(records) == 2048 // step_bytes and len(records) < 3 * (TINY.history + 1)
        assert all(r.channel.shape == (1, TINY.n_ant, TINY.n_rb) for r in records)


def test_shadow_is_listed_right_after_deploy(dapp: DappServer, client: DappClient,
                                             make_artifact: MakeArtifact) -> None:
    for i in range(3):                        # the xApp checks status right after deploying
        version = f"sh-{i}"
        client.deploy_model(make_artifact("outdated", version), version, "shadow")
        models = {m.version: m for m in client.status().models}
        assert models[version].role == "shadow"
        assert (models[version].predictions, models[version].scored) == (0, 0)
