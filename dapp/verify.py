"""Signature checks of deployed and stored models (``kdran.signing``), as dApp errors.

With no public keys configured every model is accepted (a signature that comes with it is still
stored). With keys configured, a model is accepted only with a valid Ed25519 signature by one of
them: checked on the DeployModel header before any chunk is stored (the digest check that follows
ties the received bytes to the signed digest), and again on every stored model loaded at restart.
Every refusal is ``PreconditionFailed`` (FAILED_PRECONDITION) naming the cause.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from dapp.errors import InvalidInput, PreconditionFailed
from kdran.signing import KeyRing, MalformedSignature, Signature, SigningError


class ModelVerifier:
    """The trusted public keys of one dApp (empty: verification off)."""

    def __init__(self, keys: KeyRing | None = None) -> None:
        self.keys = keys or KeyRing()

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> ModelVerifier:
        """Load PEM public keys (``kdran.signing.KeyFileError`` on a bad file)."""
        return cls(KeyRing.from_files(paths))

    @property
    def enabled(self) -> bool:
        """True when models must be signed."""
        return bool(self.keys)

    def check_upload(self, model_sha256: str, card: str, key_id: str,
                     signature: bytes) -> Signature | None:
        """The parsed signature of an upload (None when unsigned and verification is off).

        ``model_sha256`` is the header's digest of model.onnx and ``card`` the card text.
        """
        parsed = None
        if signature or key_id:
            try:
                parsed = Signature.checked(key_id, signature)
            except MalformedSignature as err:
                raise InvalidInput(f"signature: {err}") from None
        if self.enabled:
            try:
                self.keys.verify(parsed, model_sha256, hashlib.sha256(card.encode()).hexdigest())
            except SigningError as err:
                raise PreconditionFailed(f"model refused: {err}") from None
        return parsed

    def check_artifact(self, directory: Path) -> None:
        """Verify ``directory/SIGNATURE`` against its files (no-op when verification is off)."""
        if not self.enabled:
            return
        try:
            self.keys.verify_artifact(directory)
        except SigningError as err:
            raise PreconditionFailed(f"{directory}: {err}") from None
