"""Which decoders the E2 codec uses when a caller does not say: the fast readers (default) or
only the ASN.1 libraries.

The fast readers (:mod:`xapp.e2.fast_e2ap`, :mod:`xapp.e2.fast_kpm`) take the common
RICindication layouts and hand everything else to pycrate / asn1tools, with equal results.
``KDRAN_E2_DECODER=library`` in the environment of the process (read at import) makes every
decoder use only the libraries, the reference path, e.g. to compare or to rule the fast readers
out while investigating a decode problem.
"""

from __future__ import annotations

import os
from typing import Final

DECODER_ENV: Final = "KDRAN_E2_DECODER"
FAST: Final = "fast"
LIBRARY: Final = "library"


def _from_env() -> str:
    value = os.environ.get(DECODER_ENV, FAST).strip().lower() or FAST
    if value not in (FAST, LIBRARY):
        raise ValueError(f"{DECODER_ENV} must be {FAST!r} or {LIBRARY!r}, got {value!r}")
    return value


DEFAULT_PATH: Final = _from_env()
"""The process default, ``"fast"`` or ``"library"``."""


def use_fast(fast: bool | None) -> bool:
    """``fast`` when the caller chose, else whether the process default is the fast path."""
    return DEFAULT_PATH == FAST if fast is None else fast
