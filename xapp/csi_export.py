"""Recent CSI from the dApps → a ``csi.dataset.ChannelSet`` directory for the job's ``--data``.

Each exported record is one UE's consecutive SRS estimates, complex64 ``[time, antenna, rb]``.
They are cut into non-overlapping windows of ``history + horizon`` steps (the preset's sequence
length) and stacked to ``h`` ``[batch, history + horizon, antenna, rb]``, each window normalised to
unit average power like every ``ChannelSet``. The estimates already contain the live estimation
noise, so ``snr_db`` is +inf (``ChannelSet.observed()`` adds nothing); ``scenario`` is ``live``,
``speed_kmh`` NaN (unknown), ``carrier_hz`` the preset's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from csi.dataset import ChannelSet
from csi.layout import CHANNEL_DTYPE
from csi.presets import Preset
from xapp.logs import decision


class CsiRecordLike(Protocol):
    """One exported sequence (``dapp.messages.CsiRecord``)."""

    ue_id: str
    group: str
    channel: np.ndarray


class CsiSource(Protocol):
    """``DappClient.export_recent_csi``."""

    def export_recent_csi(self, max_sequences: int = 0, sequence_length: int = 0,
                          ue_group: str = "") -> Iterable[CsiRecordLike]: ...


class NoRecentCsi(Exception):
    """The dApps returned too little CSI to build a single training window."""


def windows(records: Iterable[CsiRecordLike], preset: Preset) -> np.ndarray:
    """Stack non-overlapping ``seq_len`` windows of every record: ``[batch, seq_len, a, r]``.

    Records with another antenna/RB geometry than ``preset`` are a ``ValueError``.
    """
    length, out = preset.seq_len, []
    for record in records:
        channel = np.asarray(record.channel)
        if channel.ndim != 3 or channel.shape[1:] != (preset.n_ant, preset.n_rb):
            raise ValueError(f"CSI of UE {record.ue_id} has shape {channel.shape}, preset "
                             f"{preset.name!r} needs [time, {preset.n_ant}, {preset.n_rb}]")
        for start in range(0, channel.shape[0] - length + 1, length):
            out.append(channel[start:start + length])
    if not out:
        return np.zeros((0, length, preset.n_ant, preset.n_rb), CHANNEL_DTYPE)
    return np.stack(out).astype(CHANNEL_DTYPE)


def to_channel_set(h: np.ndarray, preset: Preset, source: str) -> ChannelSet:
    """``h`` ``[batch, time, antenna, rb]`` as a unit-power ``ChannelSet`` with live labels."""
    power = np.mean(np.abs(h) ** 2, axis=(1, 2, 3), keepdims=True)
    h = (h / np.sqrt(np.maximum(power, 1e-30))).astype(CHANNEL_DTYPE)
    n = h.shape[0]
    return ChannelSet(h, np.full(n, "live"), np.full(n, np.nan, np.float32),
                      np.full(n, preset.carrier_hz), np.full(n, np.inf, np.float32),
                      meta={"preset": preset.name, "split": "recent", "generator": "dapp-export",
                            "source": source})


def export_recent(sources: dict[str, CsiSource], preset: Preset, max_sequences: int,
                  directory: Path, min_windows: int = 1) -> tuple[str, int]:
    """Pull recent CSI from each dApp (``{name: client}``) into a ChannelSet at ``directory``.

    Returns (content hash, windows). Raises ``NoRecentCsi`` below ``min_windows``.
    """
    parts = [windows(client.export_recent_csi(max_sequences=max_sequences,
                                              sequence_length=preset.seq_len), preset)
             for client in sources.values()]
    h = np.concatenate(parts) if parts else np.zeros((0,), CHANNEL_DTYPE)
    if h.shape[0] < min_windows:
        raise NoRecentCsi(f"got {h.shape[0]} windows of {preset.seq_len} steps from "
                          f"{sorted(sources)}, need {min_windows}")
    channel_set = to_channel_set(h, preset, ",".join(sorted(sources)))
    return channel_set.save(directory), len(channel_set)


def export_when_ready(sources: dict[str, CsiSource], preset: Preset, max_sequences: int,
                      directory: Path, min_windows: int, wait_s: float, poll_s: float,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> tuple[str, int]:
    """``export_recent``, asked again every ``poll_s`` seconds for at most ``wait_s`` seconds while
    the dApps hold fewer than ``min_windows`` full-length windows (UEs whose history just
    restarted have none yet). Raises ``NoRecentCsi`` when the wait ends without enough data."""
    deadline = clock() + wait_s
    attempt = 1
    while True:
        try:
            return export_recent(sources, preset, max_sequences, directory, min_windows)
        except NoRecentCsi as exc:
            left = deadline - clock()
            if left <= 0:
                raise NoRecentCsi(f"{exc} after waiting {wait_s:g} s") from None
            decision("csi_export_waiting", level=logging.INFO, attempt=attempt,
                     reason=str(exc), retry_in_s=round(min(poll_s, left), 3))
            sleep(min(poll_s, left))
            attempt += 1
