"""Typed E2SM-KPM values: what the codec returns and accepts instead of raw ASN.1 dictionaries.

Units: periods in milliseconds (the KPM ``GranularityPeriod`` and ``reportingPeriod`` are ms),
times as timezone-aware UTC datetimes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from xapp.e2.errors import E2EncodeError
from xapp.e2.ids import NrCgi, UeId

MAX_KPM_INTEGER: Final = 4_294_967_295
"""Largest ``MeasurementRecordItem.integer`` (INTEGER (0..4294967295))."""


class MeasKind(StrEnum):
    """The ``MeasurementRecordItem`` CHOICE alternative of one value."""

    INTEGER = "integer"
    REAL = "real"
    NO_VALUE = "noValue"


@dataclass(frozen=True, slots=True)
class MeasValue:
    """One measurement value: an unsigned 32-bit integer, a real, or explicitly no value."""

    kind: MeasKind
    value: int | float | None = None

    def __post_init__(self) -> None:
        if self.kind is MeasKind.INTEGER:
            if not (isinstance(self.value, int) and 0 <= self.value <= MAX_KPM_INTEGER):
                raise E2EncodeError(f"KPM integer must be in 0..{MAX_KPM_INTEGER}, "
                                    f"got {self.value!r}")
        elif self.kind is MeasKind.REAL:
            if not isinstance(self.value, int | float):
                raise E2EncodeError(f"KPM real must be a number, got {self.value!r}")
        elif self.value is not None:
            raise E2EncodeError("a noValue record carries no value")

    @classmethod
    def integer(cls, value: int) -> MeasValue:
        return cls(MeasKind.INTEGER, value)

    @classmethod
    def real(cls, value: float) -> MeasValue:
        return cls(MeasKind.REAL, float(value))

    @classmethod
    def no_value(cls) -> MeasValue:
        return cls(MeasKind.NO_VALUE)

    @classmethod
    def of(cls, value: int | float | None) -> MeasValue:
        """Pick the alternative from a Python value: non-negative int -> integer, other numbers ->
        real, ``None`` -> noValue (bools are refused: they are not measurements)."""
        if value is None:
            return cls.no_value()
        if isinstance(value, bool):
            raise E2EncodeError("a bool is not a measurement value")
        if isinstance(value, int) and 0 <= value <= MAX_KPM_INTEGER:
            return cls.integer(value)
        return cls.real(float(value))

    def as_float(self) -> float | None:
        """The value as a float (NaN stays NaN), or None for noValue."""
        return None if self.value is None else float(self.value)

    def __str__(self) -> str:
        if self.kind is MeasKind.NO_VALUE:
            return "-"
        if isinstance(self.value, float) and not math.isfinite(self.value):
            return str(self.value)
        return f"{self.value:g}" if isinstance(self.value, float) else str(self.value)


@dataclass(frozen=True)
class EventTrigger:
    """E2SM-KPM EventTriggerDefinition Format 1: report every ``reporting_period_ms``."""

    reporting_period_ms: int


@dataclass(frozen=True)
class UeCondition:
    """One ``TestCondInfo`` of a Format 4 matching-UE condition.

    ``test`` is the ``TestCond-Type`` alternative (``"cQI"``, ``"rSRP"``, ``"fiveQI"`` ...),
    ``expression`` the ``TestCond-Expression`` (``"equal"``, ``"greaterthan"``, ``"lessthan"``,
    ``"contains"``, ``"present"``) and ``value`` the ``TestCond-Value``. ``logical_or`` joins this
    condition to the next one with OR (default AND).
    """

    test: str
    expression: str | None = None
    value: int | float | bool | str | None = None
    logical_or: bool = False


@dataclass(frozen=True)
class ActionDefinition:
    """E2SM-KPM ActionDefinition, Formats 1, 4 and 5 (REPORT styles 1, 4 and 5).

    - Format 1 (cell level): neither ``ue_conditions`` nor ``ue_ids``.
    - Format 4 (per UE, common condition): ``ue_conditions`` non-empty.
    - Format 5 (per UE, listed UEs): ``ue_ids`` with at least two UEs.
    ``granularity_period_ms`` is the collection interval of one measurement record.
    """

    measurement_names: tuple[str, ...]
    granularity_period_ms: int
    cell: NrCgi | None = None
    ue_conditions: tuple[UeCondition, ...] = ()
    ue_ids: tuple[UeId, ...] = ()

    def __post_init__(self) -> None:
        if not self.measurement_names:
            raise E2EncodeError("an action definition needs at least one measurement")
        if self.ue_conditions and self.ue_ids:
            raise E2EncodeError("give either UE conditions (Format 4) or UE ids (Format 5)")
        if self.ue_ids and len(self.ue_ids) < 2:
            raise E2EncodeError("Format 5 lists at least two UEs")

    @property
    def format(self) -> int:
        """The action definition format (1, 4 or 5); equals the RIC REPORT style type."""
        if self.ue_conditions:
            return 4
        return 5 if self.ue_ids else 1

    @property
    def per_ue(self) -> bool:
        """True when the E2 node answers with per-UE reports (IndicationMessage Format 3)."""
        return self.format != 1


@dataclass(frozen=True)
class KpmHeader:
    """E2SM-KPM IndicationHeader Format 1."""

    collection_start: datetime
    file_format_version: str | None = None
    sender_name: str | None = None
    sender_type: str | None = None
    vendor_name: str | None = None


@dataclass(frozen=True)
class KpmReport:
    """The measurements of one granularity period, for a cell (``ue_id`` None) or one UE.

    ``measurements`` maps a measurement key to its value; the key is the measurement name, with
    the label appended as ``name[label=value,...]`` when a label other than ``noLabel`` is used
    (measurement ids without a name are keyed ``#<id>``). ``incomplete`` is the record's
    ``incompleteFlag``. ``collection_start`` is the header's start plus the record's index times
    the granularity period.
    """

    collection_start: datetime
    granularity_period_ms: int | None
    measurements: Mapping[str, MeasValue] = field(hash=False)
    incomplete: bool = False
    cell_id: str | None = None
    ue_id: UeId | None = None

    def value(self, name: str) -> float | None:
        """A measurement as float, None when absent or noValue."""
        meas = self.measurements.get(name)
        return None if meas is None else meas.as_float()


@dataclass(frozen=True)
class EventTriggerStyle:
    """One ``RIC-EventTriggerStyle-Item`` of the RAN function definition."""

    style_type: int
    name: str
    format_type: int


@dataclass(frozen=True)
class ReportStyle:
    """One ``RIC-ReportStyle-Item``: a REPORT style and the measurements it offers."""

    style_type: int
    name: str
    action_format_type: int
    measurement_names: tuple[str, ...]
    header_format_type: int
    message_format_type: int


@dataclass(frozen=True)
class RanFunctionDefinition:
    """E2SM-KPM RANfunction-Description: what an E2 node's KPM function offers."""

    short_name: str
    e2sm_oid: str
    description: str
    instance: int | None = None
    event_trigger_styles: tuple[EventTriggerStyle, ...] = ()
    report_styles: tuple[ReportStyle, ...] = ()

    def offered_measurements(self) -> frozenset[str]:
        """Every measurement name offered by any REPORT style."""
        return frozenset(n for style in self.report_styles for n in style.measurement_names)
