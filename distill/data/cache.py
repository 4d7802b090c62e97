"""The on-disk dataset cache: ``root/<preset>/<split>/`` holds one ``ChannelSet``.

A cached set is reused only when its stored recipe meta (``generate.recipe_meta``: preset geometry,
split recipe, n, seed, batch size, generator and Sionna versions) equals the requested one;
otherwise it is regenerated. Sets are written to a temporary sibling directory and renamed into
place, so an interrupted generation never leaves a half-written set that looks valid.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi.dataset import ChannelSet
from csi.presets import Preset
from distill.data.generate import generate_from_recipe, recipe_meta
from distill.data.recipes import default_seed, default_size, recipe_for

DEFAULT_ROOT: Path = Path(os.environ.get("KDRAN_DATA", "data"))


def set_dir(root: Path, preset: Preset, split: str) -> Path:
    """Directory of one cached set: ``root/<preset>/<split>``."""
    return Path(root) / preset.name / split


def _json_normalised(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples -> lists), for comparing with stored meta."""
    return json.loads(json.dumps(value))


def find_cached(preset: Preset, split: str, root: Path = DEFAULT_ROOT, *, n: int | None = None,
                k_factor_db: float | None = None) -> ChannelSet | None:
    """The cached set for this request if its stored recipe matches, else ``None``."""
    recipe = recipe_for(preset, split, k_factor_db=k_factor_db)
    size = default_size(preset, split) if n is None else n
    expected = _json_normalised(recipe_meta(preset, recipe, size, default_seed(preset, split)))
    directory = set_dir(root, preset, split)
    if not (directory / "meta.json").exists():
        return None
    cached = ChannelSet.load(directory)
    if any(cached.meta.get(key) != value for key, value in expected.items()):
        return None
    return cached


def store(channel_set: ChannelSet, directory: Path) -> ChannelSet:
    """Save ``channel_set`` atomically into ``directory`` and return it loaded from there."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    channel_set.save(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return ChannelSet.load(directory)


def load_or_generate(preset: Preset, split: str, root: Path = DEFAULT_ROOT, *,
                     n: int | None = None, progress: bool = True, force: bool = False,
                     k_factor_db: float | None = None) -> ChannelSet:
    """The set ``split`` of ``preset`` from ``root/<preset>/<split>/``, generated on a miss.

    Regenerates when nothing is cached, the stored recipe differs (another n, seed, preset geometry,
    generator or Sionna version) or ``force`` is set. Returns the set loaded from disk (``h``
    memory-mapped, ``meta["content_hash"]`` set).
    """
    cached = None if force else find_cached(preset, split, root, n=n, k_factor_db=k_factor_db)
    if cached is not None:
        return cached
    recipe = recipe_for(preset, split, k_factor_db=k_factor_db)
    generated = generate_from_recipe(
        preset, recipe, default_size(preset, split) if n is None else n,
        default_seed(preset, split), progress=progress)
    return store(generated, set_dir(root, preset, split))


@dataclass(frozen=True)
class CachedInfo:
    """One cached set as ``kdran data info`` lists it (speeds in km/h, size in bytes)."""

    preset: str
    split: str
    n: int
    shape: tuple[int, ...]
    scenarios: tuple[str, ...]
    speed_kmh: tuple[float, float]
    content_hash: str
    size_bytes: int
    path: Path


def list_cached(root: Path = DEFAULT_ROOT) -> list[CachedInfo]:
    """Every set under ``root`` (``<preset>/<split>/meta.json``), sorted by preset and split."""
    infos = []
    for meta_path in sorted(Path(root).glob("*/*/meta.json")):
        directory = meta_path.parent
        if directory.name.endswith(".tmp"):                     # a set still being written
            continue
        meta = json.loads(meta_path.read_text())
        with np.load(directory / "labels.npz") as labels:
            speeds = labels["speed_kmh"]
            scenarios = tuple(sorted({str(s) for s in labels["scenario"]}))
        infos.append(CachedInfo(
            preset=str(meta.get("preset", directory.parent.name)),
            split=str(meta.get("split", directory.name)),
            n=int(meta["n"]), shape=tuple(meta["shape"]), scenarios=scenarios,
            speed_kmh=(float(speeds.min()), float(speeds.max())),
            content_hash=str(meta["content_hash"]),
            size_bytes=sum(f.stat().st_size for f in directory.iterdir() if f.is_file()),
            path=directory))
    return infos
