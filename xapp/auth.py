"""Bearer-token check for the xApp's state-changing HTTP endpoints (manual trigger, skip).

The token comes from a file (``http.token_file``, e.g. a mounted Kubernetes Secret) or, when no
file is named, from an environment variable (``http.token_env``). It is read on every check, so a
rotated Secret takes effect without a restart. With neither configured, or an empty token, the
endpoints are *disabled* (403), never open. A missing or wrong ``Authorization: Bearer`` header is
401. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from xapp.config import HttpConfig


class AuthError(Exception):
    """A request is refused: ``status`` (401 or 403) and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TokenAuth:
    """Where the token lives; ``check(header)`` accepts or raises ``AuthError``."""

    token_file: str = ""
    token_env: str = ""

    @classmethod
    def from_config(cls, http: HttpConfig) -> TokenAuth:
        return cls(http.token_file, http.token_env)

    def token(self) -> str:
        """The configured token ("" = none configured or readable)."""
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError:
                return ""
        if self.token_env:
            return os.environ.get(self.token_env, "").strip()
        return ""

    def check(self, authorization: str | None) -> None:
        """Raise ``AuthError`` unless ``authorization`` is ``Bearer <the token>``."""
        expected = self.token()
        if not expected:
            where = (f"file {self.token_file} is missing or empty" if self.token_file else
                     f"${self.token_env} is unset or empty" if self.token_env else
                     "http.token_file and http.token_env are not set")
            raise AuthError(403, f"state-changing endpoints are disabled: no API token ({where})")
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthError(401, "an 'Authorization: Bearer <token>' header is required")
        if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            raise AuthError(401, "invalid token")
