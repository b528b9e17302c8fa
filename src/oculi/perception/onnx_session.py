"""ONNX Runtime sessions configured for several small models sharing a few CPU cores.

By default each ORT session keeps its intra-op threads spinning after a run. The built-in
model runs five sessions back to back (classifier, detector, OCR probe/detector/recogniser),
so the spinning threads of one steal the cores from the next: measured on the 2-core target,
one full observation took 214 ms with spinning and 160 ms without (the models alone: 17, 48,
30 ms). Every session oculi creates goes through ``create_session``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def create_session(path: str | Path, threads: int = 0) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with spinning off.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; 0 leaves ORT's default (one per core).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads > 0:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def cached_session(path: Path, export: Callable[[Path], None], threads: int = 0, *, what: str = "model") -> Any:
    """A session over an ONNX graph exported once into a cache file.

    A cache file that ORT cannot open (truncated, stale) is deleted and exported again.

    Args:
        path: The cache file (keyed by the source weights' hash by the caller).
        export: Writes the graph to the path it is given (needs the ``onnx`` package).
        threads: As in ``create_session``.
        what: The model's name for log messages.

    Raises:
        RuntimeError: the ``onnx`` package, needed for the one-time export, is missing.
    """
    if path.is_file():
        try:
            return create_session(path, threads)
        except Exception as exc:  # a truncated or stale cache file: export it again
            log.warning("discarding unusable ONNX cache %s: %s", path, exc)
            path.unlink(missing_ok=True)
    if importlib.util.find_spec("onnx") is None:
        raise RuntimeError("the `onnx` package, needed once to export the graph, is not installed")
    log.info("exporting %s to ONNX at %s (once)", what, path)
    export(path)
    return create_session(path, threads)


def choose_runtime(requested: str, load_onnx: Callable[[], Any], load_torch: Callable[[], Any], *, what: str) -> tuple[Any, str]:
    """Build a model's runner on ONNX Runtime, falling back to torch where allowed.

    Args:
        requested: ``"auto"`` (ONNX, else torch), ``"onnx"`` (ONNX or fail) or ``"torch"``.
        load_onnx: Builds the ONNX runner.
        load_torch: Builds the torch runner.
        what: The model's name for messages.

    Returns:
        ``(runner, "onnx" | "torch")``.

    Raises:
        ModelAssetError: from either loader (a missing asset is never papered over).
        BackendError: ``requested="onnx"`` and the ONNX path failed.
    """
    from oculi.core.errors import BackendError, ModelAssetError

    if requested in ("auto", "onnx"):
        try:
            return load_onnx(), "onnx"
        except ModelAssetError:
            raise
        except Exception as exc:
            if requested == "onnx":
                raise BackendError(f"cannot run {what} with onnxruntime: {exc}") from exc
            log.info("%s runs on torch (onnxruntime path unavailable: %s)", what, exc)
    return load_torch(), "torch"
