"""Teacher and student models: shapes, sizes, token layout, masks, beam scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from csi.codebook import beam_gains, dft_codebook
from csi.presets import STD, TINY
from distill.flops import forward_flops
from distill.masks import MASK_KINDS, make_mask, time_mask
from distill.models.beams import CodebookScores
from distill.models.student import Student, student_config
from distill.models.teacher import Teacher, patchify, teacher_config, unpatchify
from distill.runtime import count_params


@pytest.mark.parametrize("preset", [TINY, STD], ids=["tiny", "std"])
def test_forward_shapes_follow_model_io(preset) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(3, preset.history, preset.n_ant, preset.n_rb, 2)
    for model in (Teacher(teacher_config(preset), preset), Student(student_config(preset), preset)):
        future, logits = model(x)
        assert future.shape == (3, preset.horizon, preset.n_ant, preset.n_rb, 2)
        assert logits.shape == (3, preset.n_beams)


def test_std_sizes_teacher_millions_student_under_half_million() -> None:
    teacher = Teacher(teacher_config(STD), STD)
    student = Student(student_config(STD), STD)
    assert 1_000_000 < count_params(teacher) < 10_000_000
    assert count_params(student) <= 500_000
    assert 0 < forward_flops(student, STD) < forward_flops(teacher, STD)


def test_untrained_models_start_at_the_ar_forecast() -> None:
    x = torch.randn(2, TINY.history, TINY.n_ant, TINY.n_rb, 2)
    for model in (Teacher(teacher_config(TINY), TINY), Student(student_config(TINY), TINY)):
        future, _ = model(x)
        torch.testing.assert_close(future, model.prior.forecast(x))


def test_patchify_roundtrip() -> None:
    cfg = teacher_config(TINY)
    x = torch.randn(2, TINY.seq_len, TINY.n_ant, TINY.n_rb, 2)
    tokens = patchify(x, cfg)
    assert tokens.shape == (2, cfg.n_tokens, cfg.patch_size)
    torch.testing.assert_close(unpatchify(tokens, cfg, TINY.seq_len), x)


def test_history_tokens_come_first() -> None:
    cfg = teacher_config(TINY)
    x = torch.randn(1, TINY.seq_len, TINY.n_ant, TINY.n_rb, 2)
    torch.testing.assert_close(patchify(x, cfg)[:, :cfg.n_history_tokens],
                               patchify(x[:, :TINY.history], cfg))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks_partition_the_tokens(kind: str) -> None:
    cfg = teacher_config(TINY)
    visible, masked = make_mask(kind, cfg, 4, 0.5, torch.Generator().manual_seed(0))
    for v, m in zip(visible, masked, strict=True):
        assert sorted(torch.cat([v, m]).tolist()) == list(range(cfg.n_tokens))
        assert len(m) > 0 and len(v) > 0


def test_time_mask_hides_the_future_patches() -> None:
    cfg = teacher_config(TINY)
    visible, masked = time_mask(cfg, 2, torch.Generator(), patches=TINY.horizon // cfg.patch_t)
    assert masked[0].tolist() == list(range(cfg.n_history_tokens, cfg.n_tokens))
    assert visible[0].tolist() == list(range(cfg.n_history_tokens))


def test_frequency_mask_hides_whole_columns() -> None:
    cfg = teacher_config(TINY)
    _, masked = make_mask("frequency", cfg, 3, 0.5, torch.Generator().manual_seed(1))
    r_p = cfg.grid[2]
    for m in masked:
        columns = set((m % r_p).tolist())
        assert len(m) == len(columns) * cfg.n_tokens // r_p


@pytest.mark.parametrize("pols", [2, 1])
def test_codebook_scores_match_csi_codebook(pols: int) -> None:
    """The factorised scorer (directions x co-phases) equals the full codebook projection."""
    preset = dataclasses.replace(TINY, pols=pols)
    rng = np.random.default_rng(0)
    h = (rng.standard_normal((3, preset.n_ant, preset.n_rb))
         + 1j * rng.standard_normal((3, preset.n_ant, preset.n_rb))).astype(np.complex64)
    expected = 10 * np.log10(beam_gains(h, dft_codebook(preset)) + 1e-6)
    got = CodebookScores(preset)(torch.from_numpy(np.stack([h.real, h.imag], -1)))
    assert got.shape == (3, preset.n_beams)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-3)


def test_bad_configs_are_rejected_with_reasons() -> None:
    with pytest.raises(ValueError, match="not a multiple of patch"):
        teacher_config(TINY, patch_r=5)
    with pytest.raises(ValueError, match="same length"):
        student_config(TINY, heads=(2,), mlp=(8, 8))
