"""Hostile input: random bytes, truncations and bit flips raise only E2DecodeError, quickly, on
the fast path and on the library path; and whatever the fast readers accept, the libraries
accept and decode to the same value (the fast readers never guess)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xapp.e2 import (
    ActionDefinition,
    E2DecodeError,
    EventTrigger,
    KpmHeader,
    KpmReport,
    MeasValue,
    NrCgi,
    RicAction,
    RicIndication,
    RicRequestId,
    SubscriptionRequest,
    UeCondition,
    UeId,
    decode_action_definition,
    decode_e2ap,
    decode_event_trigger,
    decode_indication,
    decode_indication_header,
    decode_indication_message,
    decode_ran_function_definition,
    encode_action_definition,
    encode_e2ap,
    encode_event_trigger,
    encode_indication_header,
    encode_indication_message,
)
from xapp.e2.aper import Unhandled
from xapp.e2.e2ap import _aper_to_value
from xapp.e2.fast_e2ap import read_ric_indication
from xapp.e2.fast_kpm import read_indication_header, read_indication_message
from xapp.e2.kpm_asn import kpm_decode
from xapp.e2.measurements import KDRAN_MEASUREMENTS

HEADER = KpmHeader(datetime(2025, 1, 1, tzinfo=UTC))
_VALUES = {n: MeasValue.of(v) for n, v in zip(
    KDRAN_MEASUREMENTS, (-15.5, -9.0, 800, 2, 40000.25, 3000, 30, None), strict=True)}
_MESSAGE = encode_indication_message(
    [KpmReport(HEADER.collection_start, 1000, _VALUES, ue_id=UeId.du(i)) for i in range(3)])
_ACTION = encode_action_definition(ActionDefinition(
    KDRAN_MEASUREMENTS, 1000, NrCgi("00101", 1),
    ue_conditions=(UeCondition("cQI", "lessthan", 5),)))
_INDICATION = encode_e2ap(RicIndication(RicRequestId(1, 2), 2, 1, encode_indication_header(HEADER),
                                        _MESSAGE, sequence_number=9))
_SUBSCRIPTION = encode_e2ap(SubscriptionRequest(
    RicRequestId(1, 2), 2, encode_event_trigger(EventTrigger(1000)), (RicAction(1, _ACTION),)))

_CELL_MESSAGE = encode_indication_message([KpmReport(HEADER.collection_start, 1000, _VALUES)])
_FULL_HEADER = encode_indication_header(KpmHeader(HEADER.collection_start, "v3", "du-1", "DU",
                                                  "kdran"))
_CELL_INDICATION = encode_e2ap(RicIndication(RicRequestId(1, 2), 2, 1, _FULL_HEADER,
                                             _CELL_MESSAGE, call_process_id=b"c"))

DECODERS: dict[str, Callable[[bytes], object]] = {
    "e2ap": decode_e2ap,
    "e2ap_library": lambda b: decode_e2ap(b, fast=False),
    "indication": decode_indication,
    "indication_library": lambda b: decode_indication(b, fast=False),
    "header": decode_indication_header,
    "header_library": lambda b: decode_indication_header(b, fast=False),
    "message": lambda b: decode_indication_message(b, HEADER),
    "message_library": lambda b: decode_indication_message(b, HEADER, fast=False),
    "action": decode_action_definition,
    "trigger": decode_event_trigger,
    "ranfunction": decode_ran_function_definition,
}
VALID: dict[str, bytes] = {"e2ap": _SUBSCRIPTION, "indication": _INDICATION,
                           "header": encode_indication_header(HEADER), "message": _MESSAGE,
                           "action": _ACTION, "trigger": encode_event_trigger(EventTrigger(10))}
VALID |= {"e2ap_library": _INDICATION, "indication_library": _CELL_INDICATION,
          "header_library": encode_indication_header(HEADER), "message_library": _CELL_MESSAGE}

FAST_READERS: dict[str, tuple[Callable[[bytes], Any], Callable[[bytes], Any]]] = {
    "e2ap": (read_ric_indication, lambda b: _aper_to_value(b, False)),
    "header": (read_indication_header, lambda b: kpm_decode("E2SM-KPM-IndicationHeader", b)),
    "message": (read_indication_message,
                lambda b: kpm_decode("E2SM-KPM-IndicationMessage", b)),
}
"""Each fast reader and the library call whose value it must reproduce."""
READER_INPUTS: dict[str, tuple[str, bytes]] = {
    "cell_indication": ("e2ap", _CELL_INDICATION), "ue_indication": ("e2ap", _INDICATION),
    "header": ("header", _FULL_HEADER),
    "cell_message": ("message", _CELL_MESSAGE), "ue_message": ("message", _MESSAGE),
}
FAST = settings(max_examples=250, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _only_decode_errors(decoder: Callable[[bytes], object], data: bytes) -> None:
    try:
        decoder(data)
    except E2DecodeError as exc:
        assert exc.reason
    # any other exception type propagates and fails the test


@FAST
@given(name=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=300))
def test_random_bytes(name: str, data: bytes) -> None:
    _only_decode_errors(DECODERS[name], data)


@FAST
@given(name=st.sampled_from(sorted(VALID)), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncations(name: str, cut: float) -> None:
    valid = VALID[name]
    _only_decode_errors(DECODERS[name], valid[: int(cut * len(valid))])


@FAST
@given(name=st.sampled_from(sorted(VALID)), position=st.floats(0.0, 1.0, exclude_max=True),
       mask=st.integers(1, 255))
def test_corruptions(name: str, position: float, mask: int) -> None:
    valid = bytearray(VALID[name])
    valid[int(position * len(valid))] ^= mask
    _only_decode_errors(DECODERS[name], bytes(valid))


def _fast_reader_agrees(reader: str, data: bytes) -> None:
    """What the fast reader accepts, the library decodes to the same value; anything else the
    reader hands back with Unhandled (any other exception fails the test)."""
    fast, library = FAST_READERS[reader]
    try:
        value = fast(data)
    except Unhandled:
        return
    assert repr(value) == repr(library(data))


@FAST
@given(reader=st.sampled_from(sorted(FAST_READERS)), data=st.binary(max_size=300))
def test_fast_readers_on_random_bytes(reader: str, data: bytes) -> None:
    _fast_reader_agrees(reader, data)


@FAST
@given(name=st.sampled_from(sorted(READER_INPUTS)), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_fast_readers_on_truncations(name: str, cut: float) -> None:
    reader, valid = READER_INPUTS[name]
    _fast_reader_agrees(reader, valid[: int(cut * len(valid))])


@settings(max_examples=600, deadline=2000, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(READER_INPUTS)),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
                      min_size=1, max_size=3))
def test_fast_readers_on_corruptions(name: str, flips: list[tuple[float, int]]) -> None:
    reader, valid = READER_INPUTS[name]
    data = bytearray(valid)
    for position, mask in flips:
        data[int(position * len(data))] ^= mask
    _fast_reader_agrees(reader, bytes(data))


def test_fast_readers_take_the_valid_inputs() -> None:
    for reader, data in READER_INPUTS.values():
        fast, library = FAST_READERS[reader]
        assert repr(fast(data)) == repr(library(data))


def test_every_strict_prefix_of_an_indication_is_refused() -> None:
    for fast in (True, False):
        for end in range(len(_INDICATION)):
            try:
                decode_indication(_INDICATION[:end], fast=fast)
            except E2DecodeError:
                continue
            raise AssertionError(f"prefix of {end} bytes decoded (fast={fast})")


def test_non_bytes_and_oversize_are_refused() -> None:
    for bad in (None, "text", 3):
        try:
            decode_e2ap(bad)  # type: ignore[arg-type]
        except E2DecodeError:
            continue
        raise AssertionError(f"{bad!r} accepted")
    try:
        decode_indication_message(b"\x00" * (2 << 20), HEADER)
    except E2DecodeError as exc:
        assert "limit" in exc.reason
    else:
        raise AssertionError("oversize message accepted")
