"""A stream of a csi.synthetic Doppler channel: the online NMSE equals csi.metrics offline."""

from __future__ import annotations

import numpy as np
import pytest
from dapp_helpers import doppler_channels, wait_for

from csi.metrics import nmse_per_sample, to_db
from csi.presets import TINY
from dapp.client import DappClient
from dapp.messages import Observation
from dapp.server import DappServer


def _offline(answers: dict[str, list], h: np.ndarray, last_slot: int) -> np.ndarray:
    """Linear NMSE ``[n, horizon]`` of every answered prediction, NaN where its slot never came."""
    rows = []
    for u, ue_answers in enumerate(answers.values()):
        for a in ue_answers:
            if not a.ready:
                continue
            row = np.full(TINY.horizon, np.nan)
            for k in range(TINY.horizon):
                slot = a.slot + 1 + k
                if slot <= last_slot:
                    row[k] = nmse_per_sample(a.future[None, k:k + 1],
                                             h[u, None, slot:slot + 1])[0, 0]
            rows.append(row)
    return np.array(rows)


def test_online_nmse_matches_offline_metrics(dapp: DappServer, client: DappClient) -> None:
    steps, ues = 40, ("cell-a/1", "cell-a/2", "cell-b/3")
    h = doppler_channels(len(ues), steps, speed_kmh=60.0, seed=11)
    observations = []
    for t in range(steps):
        for u, ue in enumerate(ues):
            group = ue.split("/")[0]
            observations.append(Observation(ue, t, history=h[u, :1], group=group) if t == 0
                                else Observation(ue, t, srs=h[u, t]))
    answers: dict[str, list] = {ue: [] for ue in ues}
    for answer in client.observe(observations):
        answers[answer.ue_id].append(answer)

    offline = _offline(answers, h, steps - 1)
    scored = int(np.sum(~np.isnan(offline)))
    status = wait_for(client.status,
                      lambda s: any(m.version == "lin-1" and m.scored == scored
                                    for m in s.models))
    model = next(m for m in status.models if m.version == "lin-1")
    assert model.role == "active" and model.predictions == len(offline)
    assert model.nmse_db == pytest.approx(float(to_db(np.nanmean(offline))), abs=1e-6)
    np.testing.assert_allclose(model.nmse_db_per_step, to_db(np.nanmean(offline, axis=0)),
                               atol=1e-6)
    pooled_db = to_db(offline[~np.isnan(offline)])
    assert model.nmse_db_p90 == pytest.approx(float(np.percentile(pooled_db, 90)), abs=1e-6)

    groups = {g.group: g for g in status.groups}
    per_ue = len(offline) // len(ues)
    cell_a = offline[:2 * per_ue]
    assert groups["cell-a"].predictions == 2 * per_ue and groups["cell-a"].fallbacks == 0
    assert groups["cell-a"].nmse_db == pytest.approx(float(to_db(np.nanmean(cell_a))),
                                                     abs=1e-6)
    assert groups["cell-b"].scored == int(np.sum(~np.isnan(offline[2 * per_ue:])))
