"""Each distillation loss pulls the student toward the teacher on a fixed batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from csi.presets import TINY
from csi.synthetic import synthetic_set
from distill.kd import (
    ImitationSchedule,
    StudentTrainConfig,
    TeacherView,
    sweep_temperature,
    teacher_view,
)
from distill.losses import (
    FeatureSelector,
    KdConfig,
    beam_kl,
    beam_loss,
    nmse_loss,
    relation_loss,
)
from distill.models.blocks import AttentionTrace
from distill.models.student import Student, student_config
from distill.models.teacher import Teacher, teacher_config
from distill.tensors import Batch, TaskData

STEPS = 40


@pytest.fixture(scope="module")
def batch() -> Batch:
    data = TaskData.from_set(synthetic_set(TINY, 32, snr_db=18.0, seed=3), TINY)
    return data.batch(torch.arange(32).numpy())


@pytest.fixture(scope="module")
def view(batch: Batch) -> TeacherView:
    """A fixed random teacher (heads randomised so it differs from outdated CSI)."""
    torch.manual_seed(1)
    teacher = Teacher(teacher_config(TINY), TINY)
    torch.nn.init.normal_(teacher.predict_head.weight, std=0.05)
    return teacher_view(teacher.eval(), batch.history, student_config(TINY).n_tokens)


def _student() -> Student:
    torch.manual_seed(0)
    return Student(student_config(TINY), TINY)


LossFn = Callable[[AttentionTrace, torch.Tensor, torch.Tensor], torch.Tensor]


def _pull(batch: Batch, loss_fn: LossFn,
          extra: list[torch.nn.Parameter] | None = None) -> tuple[float, float]:
    """Optimise ``loss_fn(trace, future, logits)`` alone for ``STEPS`` steps from a fresh student;
    return the (first, last) loss values."""
    student = _student()
    opt = torch.optim.Adam(list(student.parameters()) + (extra or []), lr=3e-3)
    values = []
    for _ in range(STEPS):
        trace = AttentionTrace()
        future, logits = student.forward_traced(batch.history, trace)
        loss = loss_fn(trace, future, logits)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert values[0] > 0
    return values[0], values[-1]


def test_task_loss_pulls_toward_ground_truth(batch: Batch) -> None:
    first, last = _pull(batch, lambda trace, future, logits: nmse_loss(future, batch.future))
    assert last < 0.7 * first


def test_output_distillation_pulls_toward_teacher_prediction(batch: Batch,
                                                             view: TeacherView) -> None:
    first, last = _pull(batch, lambda trace, future, logits: nmse_loss(future, view.future))
    assert last < 0.5 * first


def test_feature_distillation_pulls_toward_selected_teacher_features(batch: Batch,
                                                                     view: TeacherView) -> None:
    selector = FeatureSelector(student_dim=32, teacher_dim=64, student_layers=2,
                               teacher_layers=2)
    first, last = _pull(batch, lambda trace, future, logits: selector(trace.hidden, view.hidden),
                        list(selector.parameters()))
    assert last < 0.5 * first
    student_layers = [torch.zeros(1, 6, 32)] * 2
    for weights in selector.selection(student_layers, [h[:1] for h in view.hidden]):
        assert weights.shape == (1, 6, 2)           # a distribution over the 2 teacher layers
        torch.testing.assert_close(weights.sum(dim=-1), torch.ones(1, 6))


def test_relation_distillation_pulls_toward_teacher_relations(batch: Batch,
                                                              view: TeacherView) -> None:
    first, last = _pull(batch, lambda trace, future, logits: relation_loss(trace.qkv[-1],
                                                                           view.qkv, 4))
    assert last < 0.5 * first


def test_beam_kd_pulls_toward_teacher_distribution(batch: Batch, view: TeacherView) -> None:
    first, last = _pull(batch, lambda trace, future, logits: beam_loss(
        logits, batch.beam, view.logits, temperature=4.0, alpha=1.0))
    assert last < 0.5 * first


def test_beam_loss_mixes_kl_and_ce() -> None:
    logits, teacher = torch.randn(4, 8), torch.randn(4, 8)
    labels = torch.tensor([0, 1, 2, 3])
    ce = beam_loss(logits, labels, None, 4.0, 0.7)
    mixed = beam_loss(logits, labels, teacher, 4.0, 0.7)
    expected = 0.7 * 16 * beam_kl(logits, teacher, 4.0) + 0.3 * ce
    torch.testing.assert_close(mixed, expected)


def test_kd_config_needs_a_prediction_loss() -> None:
    with pytest.raises(ValueError, match="task and output"):
        KdConfig(task=False, output=False)
    assert not KdConfig.scratch().uses_teacher


def test_imitation_schedule_skips_teacher_when_student_caught_up() -> None:
    behind = ImitationSchedule(True, warmup_steps=2, seed=0)
    ahead = ImitationSchedule(True, warmup_steps=2, seed=0)
    for _ in range(200):
        behind.should_query()
        behind.update(student_db=-3.0, teacher_db=-12.0)
        ahead.should_query()
        ahead.update(student_db=-10.0, teacher_db=-9.0)
    assert behind.skipped == 0
    assert ahead.skipped > 150 and ahead.queried >= 2
    off = ImitationSchedule(False, warmup_steps=0)
    off.update(-10.0, -1.0)
    assert off.query_probability() == 1.0


def test_temperature_sweep_picks_the_lowest_validation_kl() -> None:
    data = TaskData.from_set(synthetic_set(TINY, 48, snr_db=18.0, seed=5), TINY)
    torch.manual_seed(2)
    teacher = Teacher(teacher_config(TINY), TINY).eval()
    best, results = sweep_temperature(lambda: Student(student_config(TINY), TINY), teacher,
                                      data, data, TINY, KdConfig(), StudentTrainConfig(epochs=1),
                                      [2.0, 8.0], progress=False)
    assert set(results) == {2.0, 8.0}
    assert results[best] == min(results.values())


def test_low_data_fraction_is_seeded_and_sized() -> None:
    data = TaskData.from_set(synthetic_set(TINY, 40, seed=6), TINY)
    tenth = data.fraction(0.1, seed=0)
    assert len(tenth) == 4
    np.testing.assert_array_equal(tenth.beam, data.fraction(0.1, seed=0).beam)
    with pytest.raises(ValueError, match="fraction"):
        data.fraction(0.0, seed=0)
