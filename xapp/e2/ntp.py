"""64-bit NTP timestamps (IETF RFC 5905 section 6), the E2SM-KPM v03.00 ``TimeStamp``.

Eight octets, big-endian: 32-bit seconds since 1900-01-01T00:00:00Z, then a 32-bit binary
fraction of a second. Era 0 only (until 2036-02-07), as the 64-bit format implies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from xapp.e2.errors import E2DecodeError, E2EncodeError

NTP_EPOCH: Final = datetime(1900, 1, 1, tzinfo=UTC)
_FRACTION: Final = 1 << 32


def datetime_to_ntp(moment: datetime) -> bytes:
    """Encode an aware datetime as the 8-octet NTP timestamp (resolution ~233 ps, rounded to µs)."""
    if moment.tzinfo is None:
        raise E2EncodeError("collection start time must be timezone-aware (UTC)")
    delta = moment - NTP_EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds, micro = divmod(micros, 1_000_000)
    if not 0 <= seconds < _FRACTION:
        raise E2EncodeError(f"time {moment.isoformat()} is outside NTP era 0")
    fraction = (micro * _FRACTION + 500_000) // 1_000_000
    return ((seconds << 32) | min(fraction, _FRACTION - 1)).to_bytes(8, "big")


def ntp_to_datetime(stamp: bytes) -> datetime:
    """Decode an 8-octet NTP timestamp to a UTC datetime (microsecond resolution, rounded)."""
    if len(stamp) != 8:
        raise E2DecodeError(f"NTP timestamp must be 8 octets, got {len(stamp)}")
    value = int.from_bytes(stamp, "big")
    seconds, fraction = value >> 32, value & (_FRACTION - 1)
    micro = (fraction * 1_000_000 + _FRACTION // 2) >> 32
    return NTP_EPOCH + timedelta(seconds=seconds, microseconds=micro)
