"""Ed25519 signatures of model artifacts: the job signs, the dApp verifies.

What is signed is a canonical manifest of the two files that make a model, not the files
themselves, so the dApp can verify an upload from its header (digests) before it receives a byte::

    kdran-model-manifest-v1
    model.onnx sha256:<64 hex>
    card.json sha256:<64 hex>

(``card.json`` absent = the digest of zero bytes, which is what an upload with an empty card
carries). The signature lives next to the files as ``SIGNATURE``, one JSON object::

    {"algorithm": "ed25519", "key_id": "<16 hex>", "signature": "<base64 of 64 bytes>"}

``key_id`` is the first 16 hex digits of SHA-256 over the raw 32-byte public key; a verifier
holds several public keys (rotation) and uses the one whose id the signature names. Keys are PEM
files: PKCS#8 private keys, SubjectPublicKeyInfo public keys. Every failure raises a subclass of
``SigningError`` whose message says what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kdran.pem import read_pem

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
SIGNATURE_FILE = "SIGNATURE"
ALGORITHM = "ed25519"
MANIFEST_HEADER = "kdran-model-manifest-v1"
KEY_ID_HEX = 16
SIGNATURE_BYTES = 64


class SigningError(Exception):
    """Base class of every signing / verification failure."""


class KeyFileError(SigningError):
    """A key file that is missing, unreadable or not an Ed25519 PEM key."""


class SignatureMissing(SigningError):
    """No signature where one is required."""


class MalformedSignature(SigningError):
    """A ``SIGNATURE`` file / header that does not parse."""


class UnknownKey(SigningError):
    """The signature names a key id that no configured public key has."""


class BadSignature(SigningError):
    """The signature does not verify: the files or the card were changed, or another key."""


@dataclass(frozen=True)
class Signature:
    """An Ed25519 signature (64 bytes) and the id of the key that made it."""

    key_id: str
    value: bytes

    def to_json(self) -> str:
        """The ``SIGNATURE`` file text."""
        return json.dumps({"algorithm": ALGORITHM, "key_id": self.key_id,
                           "signature": base64.b64encode(self.value).decode()}) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Signature:
        """Parse ``SIGNATURE`` file text (``MalformedSignature`` when it does not parse)."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise MalformedSignature(f"{SIGNATURE_FILE} is not JSON: {err}") from None
        if not isinstance(raw, dict) or raw.get("algorithm") != ALGORITHM:
            raise MalformedSignature(f"{SIGNATURE_FILE} must be an object with "
                                     f"algorithm={ALGORITHM!r}")
        try:
            value = base64.b64decode(str(raw.get("signature", "")), validate=True)
        except binascii.Error as err:
            raise MalformedSignature(f"{SIGNATURE_FILE} signature is not base64: {err}") from None
        return cls.checked(str(raw.get("key_id", "")), value)

    @classmethod
    def checked(cls, key_id: str, value: bytes) -> Signature:
        """A signature from raw parts (e.g. a DeployModel header), checking their form."""
        if len(key_id) != KEY_ID_HEX or any(c not in "0123456789abcdef" for c in key_id):
            raise MalformedSignature(f"key id must be {KEY_ID_HEX} lower-case hex digits, "
                                     f"got {key_id!r:.40}")
        if len(value) != SIGNATURE_BYTES:
            raise MalformedSignature(f"an Ed25519 signature has {SIGNATURE_BYTES} bytes, "
                                     f"got {len(value)}")
        return cls(key_id, value)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The id of ``public_key``: 16 hex digits of SHA-256 over its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX]


def manifest(model_sha256: str, card_sha256: str) -> bytes:
    """The canonical bytes that are signed (lower-case hex digests of model.onnx, card.json)."""
    return (f"{MANIFEST_HEADER}\n{MODEL_FILE} sha256:{model_sha256.lower()}\n"
            f"{CARD_FILE} sha256:{card_sha256.lower()}\n").encode()


def artifact_digests(directory: Path) -> tuple[str, str]:
    """``(sha256 of model.onnx, sha256 of card.json or of b"" when absent)`` of ``directory``."""
    model = directory / MODEL_FILE
    if not model.is_file():
        raise SigningError(f"{directory} has no {MODEL_FILE}")
    card = directory / CARD_FILE
    return _file_sha256(model), (_file_sha256(card) if card.is_file()
                                 else hashlib.sha256(b"").hexdigest())


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# -- keys ---------------------------------------------------------------------------------------
def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from an unencrypted PEM file."""
    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    except (ValueError, TypeError) as err:      # TypeError: an encrypted key
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {err}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file."""
    try:
        key = serialization.load_pem_public_key(_read_key_file(path))
    except ValueError as err:
        raise KeyFileError(f"{path} is not a PEM public key: {err}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def _read_key_file(path: Path) -> bytes:
    return read_pem(path, "key file", KeyFileError)


@dataclass(frozen=True)
class KeyPairFiles:
    """What ``generate_key_pair`` wrote."""

    key_id: str
    private_key: Path
    public_key: Path


def generate_key_pair(out_dir: Path, name: str = "kdran-signing") -> KeyPairFiles:
    """Write ``<name>.key`` (PKCS#8 PEM, mode 0600) and ``<name>.pub`` (PEM) into ``out_dir``.

    Refuses (``KeyFileError``) to overwrite an existing key file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPairFiles(key_id(key.public_key()), private_path, public_path)


class KeyRing:
    """The public keys a verifier trusts, by key id (several during a key rotation)."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self.keys: Mapping[str, Ed25519PublicKey] = {key_id(k): k for k in keys}

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> KeyRing:
        """Load every PEM public key in ``paths``."""
        return cls(load_public_key(Path(p)) for p in paths)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def verify(self, signature: Signature | None, model_sha256: str, card_sha256: str) -> str:
        """Check ``signature`` over the manifest of the two digests; returns the key id used."""
        if signature is None:
            raise SignatureMissing("the model is not signed and this verifier requires a "
                                   f"signature by one of the keys {sorted(self.keys)}")
        key = self.keys.get(signature.key_id)
        if key is None:
            raise UnknownKey(f"signed by key {signature.key_id}, which is not one of the trusted "
                             f"keys {sorted(self.keys)}")
        try:
            key.verify(signature.value, manifest(model_sha256, card_sha256))
        except InvalidSignature:
            raise BadSignature(f"signature by key {signature.key_id} does not match model "
                               f"sha256 {model_sha256} and card sha256 {card_sha256}") from None
        return signature.key_id

    def verify_artifact(self, directory: Path) -> str:
        """Verify ``directory/SIGNATURE`` against the directory's files; returns the key id."""
        return self.verify(read_signature(directory), *artifact_digests(Path(directory)))


# -- artifacts ----------------------------------------------------------------------------------
def sign_digests(private_key: Ed25519PrivateKey, model_sha256: str,
                 card_sha256: str) -> Signature:
    """Sign the manifest of two digests."""
    return Signature(key_id(private_key.public_key()),
                     private_key.sign(manifest(model_sha256, card_sha256)))


def sign_artifact(directory: Path, private_key_path: Path) -> Signature:
    """Sign ``directory``'s model.onnx + card.json with the PEM key at ``private_key_path`` and
    write ``directory/SIGNATURE`` (atomically). Call it after the files are final."""
    directory = Path(directory)
    signature = sign_digests(load_private_key(Path(private_key_path)),
                             *artifact_digests(directory))
    tmp = directory / f".{SIGNATURE_FILE}.tmp"
    tmp.write_text(signature.to_json())
    os.replace(tmp, directory / SIGNATURE_FILE)
    return signature


def read_signature(directory: Path) -> Signature | None:
    """The parsed ``SIGNATURE`` of ``directory``, or None when there is none."""
    path = Path(directory) / SIGNATURE_FILE
    return Signature.from_json(path.read_text()) if path.is_file() else None
