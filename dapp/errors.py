"""Request errors of the dApp, each carrying the gRPC status code it maps to.

The core (history, engine, store) raises these without knowing about gRPC; the service layer
turns them into ``context.abort(error.code, str(error))``. The codes are ``grpc.StatusCode``
members so the mapping lives in exactly one place.
"""

from __future__ import annotations

import grpc


class DappError(Exception):
    """Base class: a request the dApp refuses, with the gRPC status code for it."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidInput(DappError, ValueError):
    """Malformed request: wrong shape, byte count, dtype, NaN/Inf, bad identifier."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class PreconditionFailed(DappError):
    """Well-formed but not applicable now: unknown UE, digest mismatch, model unfit for the task."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class TooLarge(DappError):
    """Over a configured limit: chunk or model size, tracked UEs, a stream's message rate."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class AlreadyExists(DappError):
    """A model version installed with a different digest."""

    code = grpc.StatusCode.ALREADY_EXISTS


class Cancelled(DappError):
    """The client went away in the middle of a call (e.g. a cancelled upload)."""

    code = grpc.StatusCode.CANCELLED
