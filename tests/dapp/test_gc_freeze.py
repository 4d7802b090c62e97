"""``dapp.gc_freeze``: objects alive at start-up leave the collector's generations; later garbage,
cycles included, is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from dapp.gc_freeze import freeze_startup_objects


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()                     # give the rest of the test session its collector back


@pytest.mark.usefixtures("unfrozen")
def test_startup_objects_frozen_and_later_cycles_collected() -> None:
    kept = _Node()
    frozen = freeze_startup_objects()
    assert frozen > 0        # (frozen objects that die later leave the count: no equality)
    assert not any(o is kept for o in gc.get_objects())     # out of every generation

    a, b = _Node(), _Node()
    a.other, b.other = b, a                                 # a reference cycle made later
    alive = weakref.ref(a)
    del a, b
    gc.collect()
    assert alive() is None
