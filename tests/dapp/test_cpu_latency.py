"""``dapp.cpu_latency``: the PM QoS limit is written as a native int32 and held while the file is
open; no limit, or an unwritable device, leaves serving alone. A regular file stands in for
``/dev/cpu_dma_latency`` (the tests must not change this machine's idle behaviour)."""

from __future__ import annotations

import argparse
import logging
import os
import struct
from pathlib import Path

import pytest

from dapp.cli import register
from dapp.cpu_latency import CpuLatencyLimit, hold_cpu_latency


def _open_on(path: Path) -> bool:
    """Whether this process has a descriptor open on ``path``."""
    fds = Path("/proc/self/fd")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:                   # the descriptor of the listing itself, now closed
            continue
    return str(path) in links


@pytest.fixture
def device(tmp_path: Path) -> Path:
    path = tmp_path / "cpu_dma_latency"
    path.write_bytes(b"")
    return path


def test_limit_is_written_and_held_until_release(device: Path) -> None:
    limit = hold_cpu_latency(0, device)
    assert limit is not None and limit.held and limit.limit_us == 0
    assert struct.unpack("=i", device.read_bytes()) == (0,)
    assert _open_on(device)                # PM QoS keeps the limit while the file is open
    limit.release()
    limit.release()                        # idempotent
    assert not limit.held and not _open_on(device)


def test_limit_as_context_manager(device: Path) -> None:
    with CpuLatencyLimit(25, device) as limit:
        assert struct.unpack("=i", device.read_bytes()) == (25,) and _open_on(device)
    assert not limit.held and not _open_on(device)


@pytest.mark.parametrize("asked", [None, -1])
def test_no_limit_asked_touches_nothing(tmp_path: Path, asked: int | None) -> None:
    missing = tmp_path / "absent"
    assert hold_cpu_latency(asked, missing) is None
    assert not missing.exists()


def test_unwritable_device_is_logged_and_serving_goes_on(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    device = tmp_path / "no-such-dir" / "cpu_dma_latency"
    with caplog.at_level(logging.WARNING, logger="dapp.cpu_latency"):
        assert hold_cpu_latency(0, device) is None
    assert str(device) in caplog.text and "No such file" in caplog.text


@pytest.mark.parametrize("bad", [2**31, 10**12])
def test_limit_out_of_int32_range_is_refused(device: Path, bad: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        hold_cpu_latency(bad, device)
    assert device.read_bytes() == b""


def _parser() -> argparse.ArgumentParser:
    """``kdran``'s parser with the dApp's commands (built after any env var is set)."""
    parser = argparse.ArgumentParser(prog="kdran")
    commands = parser.add_subparsers()
    register(commands, commands.add_parser("bench").add_subparsers())
    return parser


def test_serve_flag_defaults_to_none_and_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _parser().parse_args(["dapp", "serve"]).cpu_wakeup_latency_us == -1
    monkeypatch.setenv("KDRAN_DAPP_CPU_WAKEUP_LATENCY_US", "0")
    assert _parser().parse_args(["dapp", "serve"]).cpu_wakeup_latency_us == 0


@pytest.mark.parametrize("argv", [["dapp", "serve", "--cpu-wakeup-latency-us", "-2"],
                                  ["bench", "latency", "--cpu-wakeup-latency-us", str(2**31)]])
def test_out_of_range_flag_is_a_usage_error(argv: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "is not -1 (none) or 0..2147483647" in capsys.readouterr().err
