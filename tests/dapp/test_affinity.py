"""CPU pinning: ``--cpus`` parsing, pinning every thread, the bench's dApp/client split."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dapp.affinity import parse_cpu_list, pin_process
from dapp.bench import split_cpus


def test_cpu_lists_parse_ranges_and_singles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)))
    assert parse_cpu_list("3") == {3}
    assert parse_cpu_list("0-2,5") == {0, 1, 2, 5}
    assert parse_cpu_list(" 7 , 7-8 ") == {7, 8}


@pytest.mark.parametrize("text, reason", [("", "not N or N-M"), ("a", "not N or N-M"),
                                          ("1-", "not N or N-M"), ("3-1", "backwards"),
                                          ("100000", "not available")])
def test_bad_cpu_lists_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_cpu_list(text)


def test_pinning_reaches_running_and_later_threads() -> None:
    """Run in a child process: pinning is process-wide and must not leak into the test run."""
    cpu = max(os.sched_getaffinity(0))
    code = f"""
import os, threading
from dapp.affinity import pin_process
seen = {{}}
started, release = threading.Event(), threading.Event()
def early():
    started.set(); release.wait(); seen["early"] = os.sched_getaffinity(0)
t = threading.Thread(target=early); t.start(); started.wait()
pin_process(frozenset({{{cpu}}}))
release.set(); t.join()
later = threading.Thread(target=lambda: seen.__setitem__("later", os.sched_getaffinity(0)))
later.start(); later.join()
assert seen == {{"early": {{{cpu}}}, "later": {{{cpu}}}}}, seen
assert os.sched_getaffinity(0) == {{{cpu}}}
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_serve_refuses_a_cpu_it_cannot_use(tmp_path: os.PathLike[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "kdran", "dapp", "serve", "--cpus", "100000",
                           "--listen", "127.0.0.1:0", "--metrics-port", "0",
                           "--state-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "cannot start the dApp" in proc.stderr and "not available" in proc.stderr


def test_bench_gives_the_dapp_the_last_cpu_and_the_client_the_rest() -> None:
    assert split_cpus({0}) is None
    assert split_cpus({0, 1}) == ({1}, {0})
    assert split_cpus({2, 5, 7}) == ({7}, {2, 5})


def test_pin_process_to_current_set_is_a_no_op() -> None:
    before = os.sched_getaffinity(0)
    pin_process(frozenset(before))
    assert os.sched_getaffinity(0) == before


def test_pinning_where_the_platform_cannot_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from dapp import affinity

    monkeypatch.setattr(affinity, "can_pin", lambda: False)
    with pytest.raises(ValueError, match="needs Linux"):
        affinity.parse_cpu_list("0")
