"""Writing study results: indented JSON and matplotlib figures (parent folders created)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class HasAsDict(Protocol):
    """A result that serialises itself (``as_dict`` -> JSON-ready dict)."""

    def as_dict(self) -> dict[str, Any]:
        ...


def write_json(result: HasAsDict, path: Path) -> Path:
    """Write ``result.as_dict()`` as indented JSON to ``path``; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write (PNG by suffix) and close the matplotlib figure ``fig``; return ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
