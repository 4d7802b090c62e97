"""The decode boundary: whatever goes wrong inside, callers see only :class:`E2DecodeError`.

ASN.1 runtimes raise their own exception types (and, on hostile input, the occasional
``IndexError``, ``ValueError``, ``RecursionError`` ...). Every public decoder is wrapped here so
that malformed, truncated or unsupported input surfaces as one exception type with a reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final, ParamSpec, TypeVar

from xapp.e2.errors import E2DecodeError

MAX_MESSAGE_BYTES: Final = 1 << 20
"""Largest E2AP PDU or E2SM container accepted for decoding, bytes (1 MiB; RMR's own limit is
far lower, a 64-UE KPM report is ~15 kB)."""

P = ParamSpec("P")
R = TypeVar("R")


def check_payload(what: str, data: object) -> bytes:
    """Validate type and size of a payload before any decoder sees it."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise E2DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    payload = bytes(data)
    if not payload:
        raise E2DecodeError(f"{what}: empty payload")
    if len(payload) > MAX_MESSAGE_BYTES:
        raise E2DecodeError(f"{what}: {len(payload)} bytes exceeds the "
                            f"{MAX_MESSAGE_BYTES}-byte limit")
    return payload


def as_decode_error(what: str, exc: BaseException) -> E2DecodeError:
    """The E2DecodeError that stands for ``exc`` raised while decoding ``what``."""
    if isinstance(exc, E2DecodeError):
        return exc
    if isinstance(exc, MemoryError | RecursionError):
        return E2DecodeError(f"{what}: input too deep or too large ({type(exc).__name__})")
    return E2DecodeError(f"{what}: {str(exc) or type(exc).__name__}")


def decode_boundary(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: turn any exception escaping a decoder into ``E2DecodeError("<what>: ...")``."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except E2DecodeError:
                raise
            except (Exception, RecursionError) as exc:  # the boundary: any failure is a decode one
                raise as_decode_error(what, exc) from exc

        return guarded

    return wrap
