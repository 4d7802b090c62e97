"""Ed25519 artifact signatures (kdran.signing) and ``kdran keys generate``."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from kdran import keys
from kdran.signing import (
    SIGNATURE_FILE,
    BadSignature,
    KeyFileError,
    KeyRing,
    MalformedSignature,
    Signature,
    SignatureMissing,
    UnknownKey,
    artifact_digests,
    generate_key_pair,
    load_public_key,
    read_signature,
    sign_artifact,
)


def _artifact(directory: Path, model: bytes = b"onnx-bytes", card: str = '{"v": 1}\n') -> Path:
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(model)
    (directory / "card.json").write_text(card)
    return directory


def _kdran_keys(argv: list[str]) -> int:
    """Run ``kdran keys ...`` through the module's own registration (no other components)."""
    parser = argparse.ArgumentParser(prog="kdran")
    commands = parser.add_subparsers(dest="command", required=True)
    keys.register(commands, commands)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_generate_writes_private_0600_and_prints_key_id(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _kdran_keys(["keys", "generate", "--out", str(tmp_path / "k"), "--name", "job"]) == 0
    printed = capsys.readouterr().out.strip()
    private, public = tmp_path / "k" / "job.key", tmp_path / "k" / "job.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert KeyRing([load_public_key(public)]).keys.keys() == {printed}
    assert _kdran_keys(["keys", "generate", "--out", str(tmp_path / "k"), "--name", "job"]) == 1


def test_sign_then_verify_and_tamper(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path / "keys")
    art = _artifact(tmp_path / "a")
    sig = sign_artifact(art, pair.private_key)
    on_disk = json.loads((art / SIGNATURE_FILE).read_text())
    assert on_disk["key_id"] == sig.key_id == pair.key_id and on_disk["algorithm"] == "ed25519"
    ring = KeyRing.from_files([pair.public_key])
    assert ring.verify_artifact(art) == pair.key_id
    (art / "card.json").write_text('{"v": 2}\n')              # a changed card
    with pytest.raises(BadSignature, match="does not match"):
        ring.verify_artifact(art)
    (art / "card.json").write_text('{"v": 1}\n')
    (art / "model.onnx").write_bytes(b"onnx-bytez")           # a changed model
    with pytest.raises(BadSignature):
        ring.verify_artifact(art)


def test_rotation_accepts_any_configured_key(tmp_path: Path) -> None:
    old, new, stranger = (generate_key_pair(tmp_path / "keys", n) for n in ("old", "new", "x"))
    ring = KeyRing.from_files([old.public_key, new.public_key])
    for pair in (old, new):
        art = _artifact(tmp_path / pair.key_id)
        sign_artifact(art, pair.private_key)
        assert ring.verify_artifact(art) == pair.key_id
    art = _artifact(tmp_path / "stranger")
    sign_artifact(art, stranger.private_key)
    with pytest.raises(UnknownKey, match=stranger.key_id):
        ring.verify_artifact(art)


def test_unsigned_malformed_and_missing_card(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path / "keys")
    ring = KeyRing.from_files([pair.public_key])
    art = _artifact(tmp_path / "a")
    with pytest.raises(SignatureMissing):
        ring.verify_artifact(art)
    (art / SIGNATURE_FILE).write_text("not json")
    with pytest.raises(MalformedSignature):
        read_signature(art)
    with pytest.raises(MalformedSignature, match="64 bytes"):
        Signature.checked(pair.key_id, b"\0" * 10)
    (art / "card.json").unlink()                 # no card = the digest of zero bytes
    sign_artifact(art, pair.private_key)
    assert artifact_digests(art)[1] == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert ring.verify_artifact(art) == pair.key_id


def test_bad_key_files(tmp_path: Path) -> None:
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(KeyFileError, match="not a PEM"):
        load_public_key(tmp_path / "junk.pub")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")
    pair = generate_key_pair(tmp_path / "keys")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        sign_artifact(_artifact(tmp_path / "a"), pair.public_key)
