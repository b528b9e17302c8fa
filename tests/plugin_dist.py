"""Make the example plugin (examples/oculi-plugin-example) discoverable without pip.

``write_distribution(dir)`` writes the ``dist-info`` folder pip would write for it (METADATA
and an ``entry_points.txt`` built from the example's own ``pyproject.toml``), so
``importlib.metadata`` finds its ``oculi.backends`` entry point once ``dir`` and the example's
``src`` are on ``sys.path`` (or ``PYTHONPATH`` for a subprocess).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "oculi-plugin-example"
EXAMPLE_SRC = EXAMPLE / "src"


def example_entry_points() -> dict[str, dict[str, str]]:
    """The ``[project.entry-points]`` tables of the example's pyproject.toml."""
    with open(EXAMPLE / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    return project["entry-points"]


def write_distribution(site: Path) -> Path:
    """A ``dist-info`` for the example plugin under ``site``; returns ``site``."""
    with open(EXAMPLE / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
                                   encoding="utf-8")
    lines = []
    for group, eps in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in eps.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return site
