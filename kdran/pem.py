"""Reading PEM files (keys, certificates) with one clear error for every way it can go wrong."""

from __future__ import annotations

from pathlib import Path


def read_pem(path: Path, what: str, error: type[Exception] = ValueError) -> bytes:
    """The bytes of the PEM file ``path``; raises ``error`` naming ``what`` and the path when the
    file cannot be read or holds no PEM block."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise error(f"cannot read the {what} {path}: {err.strerror}") from None
    if b"-----BEGIN" not in data:
        raise error(f"the {what} {path} is not a PEM file")
    return data
