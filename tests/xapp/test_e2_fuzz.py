"""Hostile input: random bytes, truncations and bit flips raise only E2DecodeError, quickly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

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

DECODERS: dict[str, Callable[[bytes], object]] = {
    "e2ap": decode_e2ap,
    "indication": decode_indication,
    "header": decode_indication_header,
    "message": lambda b: decode_indication_message(b, HEADER),
    "action": decode_action_definition,
    "trigger": decode_event_trigger,
    "ranfunction": decode_ran_function_definition,
}
VALID: dict[str, bytes] = {"e2ap": _SUBSCRIPTION, "indication": _INDICATION,
                           "header": encode_indication_header(HEADER), "message": _MESSAGE,
                           "action": _ACTION, "trigger": encode_event_trigger(EventTrigger(10))}
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


def test_every_strict_prefix_of_an_indication_is_refused() -> None:
    for end in range(len(_INDICATION)):
        try:
            decode_indication(_INDICATION[:end])
        except E2DecodeError:
            continue
        raise AssertionError(f"prefix of {end} bytes decoded")


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
