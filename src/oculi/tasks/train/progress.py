"""How training reports progress and is asked to stop (the CLI draws it with Rich)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class TrainProgress:
    """One progress report.

    Attributes:
        phase: ``features`` (reading images), ``texts`` (embedding texts), ``training``
            (``done``/``total`` in steps), ``evaluating``.
        done: Units done in this phase.
        total: Units in this phase (0 when unknown).
        detail: A short note (``epoch 3/20, loss 0.41``).
    """

    phase: str
    done: int
    total: int
    detail: str = ""


ProgressFn = Callable[[TrainProgress], None]
StopFn = Callable[[], bool]
