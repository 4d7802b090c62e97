"""TaskData batches: fresh SRS noise per batch, and site data with SRS-estimate labels."""

from __future__ import annotations

import numpy as np

from csi.presets import TINY
from csi.synthetic import synthetic_set
from distill.tensors import TaskData, to_complex


def _data() -> TaskData:
    return TaskData.from_set(synthetic_set(TINY, 6, snr_db=10.0, seed=3), TINY)


def test_fresh_noise_draws_new_estimates_at_each_rows_snr() -> None:
    data = _data()
    index = np.arange(6)
    fixed = data.batch(index)
    first = data.batch(index, np.random.default_rng(1))
    second = data.batch(index, np.random.default_rng(2))
    assert not np.allclose(first.history.numpy(), second.history.numpy())
    assert np.allclose(data.batch(index).history.numpy(), fixed.history.numpy())
    # the noise has the rows' SNR: 10 dB below the clean power, on the batch's own scale
    clean = to_complex(first.clean_seq.numpy())
    noise = to_complex(first.noisy_seq.numpy()) - clean
    ratio = np.mean(np.abs(noise) ** 2) / np.mean(np.abs(clean) ** 2)
    assert abs(10 * np.log10(ratio) + 10.0) < 0.5
    # targets stay the clean channel
    np.testing.assert_allclose(np.abs(to_complex(first.future.numpy())) > 0, True)


def test_noisy_labels_are_the_rows_own_estimates_and_disable_fresh_noise() -> None:
    data = _data()
    site = data.with_noisy_labels(TINY)
    assert site.noisy_labels and site.subset(np.arange(3)).noisy_labels
    batch = site.batch(np.arange(6), np.random.default_rng(5))
    np.testing.assert_allclose(batch.noisy_seq.numpy(), batch.clean_seq.numpy())
    np.testing.assert_allclose(batch.history.numpy(), data.batch(np.arange(6)).history.numpy())
