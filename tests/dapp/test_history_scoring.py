"""Per-UE ring buffers (order, gaps, eviction) and online scoring against csi.metrics."""

from __future__ import annotations

import numpy as np
import pytest
from dapp_helpers import doppler_channels

from csi.metrics import nmse_per_sample, to_db
from dapp.errors import InvalidInput, PreconditionFailed, TooLarge
from dapp.history import HistoryStore
from dapp.scoring import Pending, ScoreBook


class FakeClock:
    """A settable monotonic clock (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _store(capacity: int = 4, max_ues: int = 3, clock: FakeClock | None = None) -> HistoryStore:
    return HistoryStore(8, 12, capacity, max_ues, idle_timeout_s=10.0, clock=clock or FakeClock())


def test_ring_keeps_newest_steps_in_order() -> None:
    h = doppler_channels(1, 10)[0]
    store = _store()
    ue = store.start("u", "g", h[:2], slot=1)
    for t in range(2, 7):
        ue.append(h[t], t)
    assert ue.size == 4 and ue.slot == 6
    np.testing.assert_array_equal(ue.window(4), h[3:7])
    np.testing.assert_array_equal(ue.window(2), h[5:7])


def test_gap_restarts_history_and_old_slot_is_refused() -> None:
    h = doppler_channels(1, 10)[0]
    ue = _store().start("u", "g", h[:3], slot=2)
    with pytest.raises(InvalidInput, match="not after"):
        ue.append(h[3], 2)
    ue.append(h[6], 6)                                    # slots 3..5 missed
    assert ue.size == 1 and ue.slot == 6
    np.testing.assert_array_equal(ue.window(1), h[6:7])


def test_full_store_refuses_new_ues_and_evicts_idle_ones() -> None:
    clock = FakeClock()
    store = _store(clock=clock)
    h = doppler_channels(1, 2)[0]
    for name in ("a", "b", "c"):
        store.start(name, "g", h, slot=1)
        clock.now += 1
    with pytest.raises(TooLarge, match="3 UEs are tracked already"):
        store.start("d", "g", h, slot=1)                  # full: the new UE is refused ...
    assert store.get("b").ue_id == "b" and store.refused == 1      # ... the others stay
    store.start("a", "g", h, slot=1)                      # restarting a known UE is fine
    with pytest.raises(PreconditionFailed, match="unknown UE 'd'"):
        store.get("d")
    clock.now += 30                                       # everyone idle past 10 s
    store.start("e", "g", h, slot=1)
    assert len(store) == 1 and store.evicted == 3


def test_snapshot_lists_sequences_with_first_slot() -> None:
    h = doppler_channels(2, 6)
    store = _store(capacity=8)
    store.start("a", "cell1", h[0, :4], slot=10)
    store.start("b", "cell2", h[1], slot=5)
    rows = {ue: (group, first, steps) for ue, group, first, steps in store.snapshot()}
    assert rows["a"][:2] == ("cell1", 7) and rows["b"][:2] == ("cell2", 0)
    np.testing.assert_array_equal(rows["a"][2], h[0, :4])
    assert [r[0] for r in store.snapshot("cell2")] == ["b"]


def test_scorebook_matches_csi_metrics() -> None:
    h = doppler_channels(3, 6)
    preds = h[:, 2:4] * 1.1 + 0.05                        # [3 predictions, 2 steps, a, r]
    truth = h[:, 2:4]
    book = ScoreBook(horizon=2, window=100)
    for n in range(3):
        pending = [Pending("v1", 1, preds[n], True, "g")]
        for k in range(2):
            book.score(pending, 2 + k, truth[n, k])
    expected = nmse_per_sample(preds, truth)               # [3, 2] linear
    summary = book.track_summaries()["v1"]
    assert summary.scored == 6
    assert summary.nmse_db == pytest.approx(float(to_db(expected.mean())), abs=1e-9)
    np.testing.assert_allclose(summary.nmse_db_per_step, to_db(expected.mean(axis=0)),
                               atol=1e-9)
    assert summary.nmse_db_p90 == pytest.approx(float(np.percentile(to_db(expected), 90)))
    group, fallbacks = book.group_summaries()["g"]
    assert group.nmse_db == pytest.approx(summary.nmse_db) and fallbacks == 0


def test_pending_steps_and_expiry() -> None:
    p = Pending("v", 10, np.zeros((4, 8, 12), np.complex64), True, "g")
    assert [p.step_for(s) for s in (10, 11, 14, 15)] == [None, 0, 3, None]
    assert not p.expired(13) and p.expired(14)


def test_window_wraps_around_the_ring_into_a_given_buffer() -> None:
    """Every ring position: the newest steps, oldest first, written into ``out``."""
    h = doppler_channels(1, 20)[0]
    ue = _store(capacity=5).start("u", "g", h[:1], slot=0)
    for t in range(1, 20):
        ue.append(h[t], t)
        for steps in range(1, ue.size + 1):
            out = np.empty((steps, *h.shape[1:]), h.dtype)
            assert ue.window(steps, out=out) is out
            np.testing.assert_array_equal(out, h[t + 1 - steps:t + 1])
        np.testing.assert_array_equal(ue.window(ue.size), h[t + 1 - ue.size:t + 1])


def test_score_many_equals_scoring_each_ue_alone() -> None:
    """One message's SRS of several UEs, scored in one call, count like one call per UE."""
    h = doppler_channels(4, 6)
    preds = h[:, 2:5] * 0.9 - 0.02                        # [4 UEs, 3 steps, a, r]
    alone, together = ScoreBook(horizon=3, window=100), ScoreBook(horizon=3, window=100)
    for slot in (2, 3, 4):
        arrivals = [([Pending("v1", 1, preds[u], True, f"g{u % 2}"),
                      Pending("v2", 1, preds[u] * 1.2, False, f"g{u % 2}")], slot, h[u, slot])
                    for u in range(4)]
        for arrival in arrivals:
            alone.score(*arrival)
        together.score_many(arrivals)
    for track in ("v1", "v2"):
        a, t = alone.track_summaries()[track], together.track_summaries()[track]
        assert a.scored == t.scored == 12
        np.testing.assert_allclose(t.nmse_db_per_step, a.nmse_db_per_step, rtol=1e-12)
    assert together.group_summaries().keys() == {"g0", "g1"}
    for group, (summary, _) in alone.group_summaries().items():
        assert together.group_summaries()[group][0].nmse_db == pytest.approx(summary.nmse_db)


def test_a_restarted_ue_keeps_its_finished_sequence_for_export() -> None:
    """A new history for a tracked UE archives what its ring held (snapshot, so ExportRecentCsi,
    still returns it after the live rings); the archive is bounded in steps, oldest dropped."""
    h = doppler_channels(3, 12)
    store = HistoryStore(8, 12, capacity=10, archive_steps=12)
    store.start("u", "g1", h[0][:6], slot=5)
    store.start("u", "g1", h[1][:4], slot=20)          # restart: steps 0..5 are archived
    first = list(store.snapshot())
    assert [(ue, slot) for ue, _, slot, _ in first] == [("u", 17), ("u", 0)]
    np.testing.assert_array_equal(first[1][3], h[0][:6])
    assert [ue for ue, *_ in store.snapshot("other-group")] == []
    store.start("u", "g1", h[2][:8], slot=40)          # archives 4 more steps: 6 + 4 <= 12
    store.start("u", "g1", h[2][:2], slot=50)          # 8 more: the oldest (6 steps) goes
    assert [(slot, len(steps)) for _, _, slot, steps in store.snapshot()] == [
        (49, 2), (33, 8), (17, 4)]
