"""Make a trained model visible to the model registry: ``$OCULI_HOME/models/NAME/model.toml``.

The model configuration reads every ``models/*/model.toml`` as a ``[models.NAME]`` table before
``oculi.toml``, so a classifier head or answer model then appears in ``oculi models``, can be
named in ``[tasks]`` and with ``--model``. The table names the ``trained`` backend type; it is
written only where that type is registered, so an oculi without it is never handed a table it
cannot read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from oculi.store.trained import Trained, TrainedKind

log = logging.getLogger(__name__)

MODEL_FILE = "model.toml"
_SERVED = {TrainedKind.CLASSIFIER, TrainedKind.VQA}  # what the trained backend serves (classify, answer)


def _trained_type_registered() -> bool:
    try:
        from oculi.backends.registry import get_backend_type  # type: ignore[attr-defined]

        get_backend_type("trained")
        return True
    except Exception:  # noqa: BLE001 - no model registry, or no trained type in it
        return False


def publish(trained: Trained, base: str = "builtin") -> Path | None:
    """Write the model table beside a trained model's versions; the path, or None when not written."""
    if trained.kind not in _SERVED or not _trained_type_registered():
        return None
    from oculi.backends.trained_backend import model_table

    path = trained.path.parent / MODEL_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(model_table(str(trained.kind), base), encoding="utf-8")
    os.replace(tmp, path)
    log.info("published %s as model %r", path, trained.name)
    return path
