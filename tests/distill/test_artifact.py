"""Artifact directory: model, card, checksums; tampering is detected."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.artifact import (
    CARD_FILE,
    MODEL_FILE,
    SUMS_FILE,
    publish_artifact,
    sha256_file,
    verify_artifact,
)
from kdran.signing import SIGNATURE_FILE, KeyRing, SignatureMissing, generate_key_pair


def test_publish_and_verify(tmp_path: Path) -> None:
    model = tmp_path / "student.onnx"
    model.write_bytes(b"not really onnx")
    out = publish_artifact(tmp_path / "artifact", model, {"preset": "tiny"})
    assert sorted(p.name for p in out.iterdir()) == sorted([MODEL_FILE, CARD_FILE, SUMS_FILE])
    assert verify_artifact(out) == {"preset": "tiny"}
    assert f"{sha256_file(model)}  {MODEL_FILE}" in (out / SUMS_FILE).read_text()
    (out / MODEL_FILE).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="checksum mismatch"):
        verify_artifact(out)


def test_signing_key_signs_before_publishing(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    keys = generate_key_pair(tmp_path / "keys")
    out = publish_artifact(tmp_path / "a", model, {"preset": "tiny"}, signing_key=keys.private_key)
    assert (out / SIGNATURE_FILE).is_file()
    assert KeyRing.from_files([keys.public_key]).verify_artifact(out) == keys.key_id
    unsigned = publish_artifact(tmp_path / "b", model, {"preset": "tiny"})
    with pytest.raises(SignatureMissing):
        KeyRing.from_files([keys.public_key]).verify_artifact(unsigned)

def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model to publish"):
        publish_artifact(tmp_path / "a", tmp_path / "nope.onnx", {})
