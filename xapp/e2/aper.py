"""A minimal ALIGNED-PER (X.691) bit reader for the fast indication decoders.

Only what the RICindication, KPM IndicationHeader and IndicationMessage readers need: bit
fields, octet alignment, octet strings, canonical length determinants. The reader is strict: it
accepts only the canonical encodings an ASN.1 encoder produces (zero padding bits, minimal
length determinants, no fragmentation, nothing after the last padding bit) and raises
:class:`Unhandled` for anything else. ``Unhandled`` is not an error: it tells the caller to hand
the input to the library decoder, which either decodes it or raises the proper
:class:`~xapp.e2.errors.E2DecodeError`.
"""

from __future__ import annotations

from typing import Final

_MAX_SHORT_LENGTH: Final = 0x7F


class Unhandled(Exception):
    """The fast reader does not take this input (outside its subset, non-canonical or malformed):
    decode it with the library instead."""


class AperReader:
    """Reads ``data`` (one complete APER encoding) from bit 0; ``pos`` is the next bit."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data) << 3

    def bits(self, count: int) -> int:
        """The next ``count`` bits (1..64) as an unsigned integer, most significant bit first."""
        pos = self.pos
        stop = pos + count
        if stop > self.end:
            raise Unhandled("truncated")
        first, last = pos >> 3, (stop + 7) >> 3
        self.pos = stop
        chunk = int.from_bytes(self.data[first:last], "big")
        return (chunk >> ((last << 3) - stop)) & ((1 << count) - 1)

    def bit(self) -> int:
        """The next bit (0 or 1)."""
        pos = self.pos
        if pos >= self.end:
            raise Unhandled("truncated")
        self.pos = pos + 1
        return (self.data[pos >> 3] >> (7 - (pos & 7))) & 1

    def _octet(self) -> int:
        """Skip the zero padding bits to the next octet boundary; the octet index there."""
        pos = self.pos
        used = pos & 7
        if used:
            if self.data[pos >> 3] & (0xFF >> used):
                raise Unhandled("non-zero padding")
            pos += 8 - used
            self.pos = pos
        return pos >> 3

    def align(self) -> None:
        """Skip to the next octet boundary; the skipped padding bits must be zero."""
        self._octet()

    def octets(self, count: int) -> bytes:
        """Align, then the next ``count`` octets."""
        start = self._octet()
        stop = start + count
        if stop << 3 > self.end:
            raise Unhandled("truncated")
        self.pos = stop << 3
        return self.data[start:stop]

    def uint(self, count: int) -> int:
        """Align, then an unsigned integer in the next ``count`` octets."""
        return int.from_bytes(self.octets(count), "big")

    def length(self) -> int:
        """Align, then an unconstrained length determinant (X.691 11.9.3.6-7): one octet below
        128, two octets (``10`` prefix) for 128..16383; fragmented lengths are not handled."""
        start = self._octet()
        if start >= self.end >> 3:
            raise Unhandled("truncated")
        first = self.data[start]
        if first <= _MAX_SHORT_LENGTH:
            self.pos += 8
            return first
        value = self.uint(2)
        if value >> 14 != 0b10:
            raise Unhandled("fragmented length")
        value &= 0x3FFF
        if value <= _MAX_SHORT_LENGTH:
            raise Unhandled("non-minimal length determinant")
        return value

    def minimal_uint(self, count: int) -> int:
        """Align, then an unsigned integer in ``count`` octets whose first octet is non-zero
        unless ``count`` is 1: the minimal-octet value of a constrained whole number whose range
        exceeds 64K (X.691 11.5.7.4), after its octet count."""
        raw = self.octets(count)
        if count > 1 and raw[0] == 0:
            raise Unhandled("non-minimal integer")
        return int.from_bytes(raw, "big")

    def finish(self) -> None:
        """Check that only zero padding is left after the last field."""
        self.align()
        if self.pos != self.end:
            raise Unhandled("trailing octets")
