"""Per-sequence random draws and seed derivation for dataset generation (numpy only).

Every random number of a generated set derives from one integer seed: ``child_seed(seed, *keys)``
gives independent, stable sub-seeds (labels, each Sionna batch, the noise of the noisy estimate).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields

import numpy as np

from distill.data.recipes import Recipe


def child_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (strings are hashed with crc32)."""
    words = [int(seed)] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 32 | int(state[1])) >> 1


@dataclass(frozen=True)
class Draws:
    """Labels and channel parameters of each sequence (all ``[n]`` arrays).

    ``scenario`` str; ``speed_kmh`` UE speed (float32); ``snr_db`` SRS estimation SNR (float32);
    ``heading_rad`` direction of travel in the horizontal plane; ``delay_spread_s`` rms delay
    spread of link-level profiles; ``bs_yaw_rad`` / ``ut_yaw_rad`` rotations of the BS array and
    the UE about the vertical axis (link-level profiles).
    """

    scenario: np.ndarray
    speed_kmh: np.ndarray
    snr_db: np.ndarray
    heading_rad: np.ndarray
    delay_spread_s: np.ndarray
    bs_yaw_rad: np.ndarray
    ut_yaw_rad: np.ndarray

    def __len__(self) -> int:
        return len(self.scenario)

    def take(self, index: np.ndarray) -> Draws:
        """The draws of sequences ``index`` (integer indices or bool mask)."""
        return Draws(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def draw_sequences(recipe: Recipe, n: int, seed: int) -> Draws:
    """Scenarios split evenly over the ``n`` sequences (shuffled), uniform speeds and SNRs.

    Directions of travel and UE yaws are uniform on the circle; the BS yaw is uniform within the
    +/-60 degrees a sector of a three-sector site covers, so the profiles' dominant clusters
    (near the BS boresight in TR 38.901's CDL tables) stay in front of the array.
    """
    rng = np.random.default_rng(child_seed(seed, "draws"))
    scenarios = np.array(recipe.scenarios)[rng.permutation(np.arange(n) % len(recipe.scenarios))]
    return Draws(
        scenario=scenarios.astype("U16"),
        speed_kmh=rng.uniform(*recipe.speed_kmh, n).astype(np.float32),
        snr_db=rng.uniform(*recipe.snr_db, n).astype(np.float32),
        heading_rad=rng.uniform(-np.pi, np.pi, n),
        delay_spread_s=rng.uniform(*recipe.delay_spread_s, n),
        bs_yaw_rad=rng.uniform(-np.pi / 3, np.pi / 3, n),
        ut_yaw_rad=rng.uniform(-np.pi, np.pi, n),
    )
