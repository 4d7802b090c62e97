"""The E2 codec's exceptions: one type per direction, each carrying a human-readable reason."""

from __future__ import annotations


class E2Error(Exception):
    """Base of every error the E2 codec raises on purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class E2DecodeError(E2Error):
    """Bytes that are malformed, truncated, too large or of an unsupported message/format.

    Every decoder in :mod:`xapp.e2` raises only this (never an ASN.1 library exception), so a
    caller can count and drop a bad message with one ``except`` clause.
    """


class E2EncodeError(E2Error):
    """A value that cannot be encoded: out of an ASN.1 constraint, unsupported, or inconsistent."""
