"""Channel datasets from Sionna 2.x (TR 38.901 UMa/UMi NLoS, CDL-A..E, Rician factory floor).

Every set is a ``csi.dataset.ChannelSet``: clean channels complex64
``[n, history + horizon, n_ant, n_rb]`` (each sequence at unit average power), labels per sequence
(scenario, UE speed km/h, carrier Hz, SRS SNR dB), a noise seed for the reproducible noisy SRS
estimate and ``meta`` (preset, split, seed, recipe, generator "sionna", Sionna version).

- ``generate(preset, split)``: one split in memory (``SPLITS``; plus the optional ``"rician"``).
- ``load_or_generate(preset, split, root)``: the same, cached under ``root/<preset>/<split>/`` and
  reused only while its stored recipe matches.
- ``recipe_for`` / ``Recipe`` / ``generate_from_recipe``: the split recipes, and custom ones.

Importing this package is cheap: Sionna and torch load on the first generation.
"""

from __future__ import annotations

from distill.data.cache import DEFAULT_ROOT, find_cached, list_cached, load_or_generate
from distill.data.generate import generate, generate_from_recipe
from distill.data.recipes import (
    ALL_SPLITS,
    RICIAN_SPLIT,
    SPLITS,
    Recipe,
    default_seed,
    default_size,
    recipe_for,
)

__all__ = [
    "ALL_SPLITS",
    "DEFAULT_ROOT",
    "RICIAN_SPLIT",
    "SPLITS",
    "Recipe",
    "default_seed",
    "default_size",
    "find_cached",
    "generate",
    "generate_from_recipe",
    "list_cached",
    "load_or_generate",
    "recipe_for",
]
