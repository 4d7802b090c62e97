"""Structured pruning removes whole heads and MLP channels, the least important first."""

from __future__ import annotations

import pytest
import torch

from csi.presets import TINY
from distill.models.student import Student, student_config
from distill.prune import PruneConfig, head_importance, prune_student
from distill.runtime import count_params


def _student() -> Student:
    torch.manual_seed(0)
    student = Student(student_config(TINY), TINY)
    for module in student.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.1)
    return student.eval()


def test_keeping_everything_changes_nothing() -> None:
    student = _student()
    same = prune_student(student, PruneConfig(1.0, 1.0)).eval()
    x = torch.randn(3, TINY.history, TINY.n_ant, TINY.n_rb, 2)
    torch.testing.assert_close(same(x)[0], student(x)[0])
    torch.testing.assert_close(same(x)[1], student(x)[1])


def test_pruning_shrinks_every_layer() -> None:
    student = _student()
    pruned = prune_student(student, PruneConfig(head_keep=0.5, mlp_keep=0.25))
    assert pruned.cfg.heads == tuple(h // 2 for h in student.cfg.heads)
    assert pruned.cfg.mlp == tuple(m // 4 for m in student.cfg.mlp)
    assert count_params(pruned) < count_params(student)
    future, logits = pruned(torch.randn(2, TINY.history, TINY.n_ant, TINY.n_rb, 2))
    assert future.shape == (2, TINY.horizon, TINY.n_ant, TINY.n_rb, 2)
    assert logits.shape == (2, TINY.n_beams)


def test_the_weakest_head_goes_first() -> None:
    student = _student()
    attn = student.encoder.blocks[0].attn
    d = attn.head_dim
    with torch.no_grad():                                  # head 2 of layer 0 does almost nothing
        for lin in (attn.q, attn.k, attn.v):
            lin.weight[2 * d:3 * d] *= 1e-3
            lin.bias[2 * d:3 * d] = 0
        attn.out.weight[:, 2 * d:3 * d] *= 1e-3
    assert int(head_importance(attn).argmin()) == 2
    pruned = prune_student(student, PruneConfig(head_keep=0.75, mlp_keep=1.0))
    kept_q = pruned.encoder.blocks[0].attn.q.weight
    expected = torch.cat([attn.q.weight[:2 * d], attn.q.weight[3 * d:]])
    torch.testing.assert_close(kept_q, expected)


def test_bad_keep_fraction_is_rejected() -> None:
    with pytest.raises(ValueError, match="head_keep"):
        PruneConfig(head_keep=0.0)
