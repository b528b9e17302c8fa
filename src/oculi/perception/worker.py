"""One perception worker: the built-in model's parts, each running on the calling thread only.

``PerceptionWorker`` is the unit that batch work scales out with: a ``PerceptionPool``
(``oculi.perception.pool``) runs N of them from one queue for indexing and footage, and a
Ray actor can wrap one as it is (its inputs and outputs pickle). Each worker owns its own
sessions (onnxruntime with one intra-op thread, OpenCV cascades, the OCR engine), so N
workers never share per-call state.

Why one thread per session: the built-in graphs are many small ops, and a second intra-op
thread buys little while costing a lot when the cores are busy anyway. Measured per
640×480 photo on this project's 2-core machine (CPU time): the classifier took 24 ms at two
threads against 17 ms at one, and NumPy's OpenBLAS, left at two threads, spent 374 ms of CPU
per single sentence embedded (spinning) against 15 ms at one. So ``single_thread_runtime``
pins OpenCV, torch and the BLAS libraries to one thread, and parallelism comes from running
workers side by side instead.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from oculi.config import Settings
from oculi.core.errors import OculiError
from oculi.core.types import DetectedObject, Observation

log = logging.getLogger(__name__)

#: The longer side a worker needs of a photo: the OCR detector works at <= 960 px, the detector
#: at 512 and the classifier at 256, so indexing decodes large JPEGs at the DCT reduction that
#: keeps 960 (``imageio`` draft mode): a 12 MP photo at 1/4, 1008x756, in 23 ms instead of 61.
#: OCR reads line crops from the image it is given; on 12 MP photos of a printed page and of a
#: sign (text 40-80 px high at full size, so 10-20 px at 1/4) it read the same words from the
#: 1/4 decode as from the full one (benchmarks/compare_outputs.py covers the rest).
DRAFT_LONG_SIDE = 960

_pinned_pid: int | None = None


def single_thread_runtime() -> None:
    """Make this process's numeric libraries compute on the calling thread only (idempotent).

    OpenCV (``cv2.setNumThreads(1)``), torch when it is already imported
    (``torch.set_num_threads(1)``; importing it just for this would cost a second) and the
    BLAS / OpenMP pools NumPy links (threadpoolctl). Process-wide by nature: call it where
    throughput comes from running several workers, not inside a latency-bound server
    thread.
    """
    global _pinned_pid
    if _pinned_pid == os.getpid():
        return
    import sys

    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    threadpool_limits(1)
    _pinned_pid = os.getpid()


def worker_settings(settings: Settings) -> Settings:
    """The settings a worker runs with: the caller's, with one intra-op thread per session."""
    return settings.model_copy(update={"threads": 1})


class PerceptionWorker:
    """The built-in perceiver with single-thread sessions, observing images one at a time.

    Not thread-safe: give each thread or process its own (``PerceptionPool`` does). At one
    thread per session, one image per call is as fast as batching: the classifier measured
    13.7 ms per image at batch 1 and 19.4 ms at batch 16 (its activations stop fitting in
    cache).

    Args:
        settings: Where the assets are and the thresholds; ``threads`` is forced to 1.

    Example:
        >>> w = PerceptionWorker(Settings())  # doctest: +SKIP
        >>> w.observe([engine.load_image("photo.jpg")])[0].counts()  # doctest: +SKIP
        {'person': 1}
    """

    def __init__(self, settings: Settings) -> None:
        from oculi.perception.pipeline import BuiltinPerceiver

        self.settings = worker_settings(settings)
        self.perceiver = BuiltinPerceiver(self.settings)

    def load(self) -> None:
        """Pin the runtime to one thread and load every part (idempotent).

        Raises:
            ModelAssetError: an asset is missing or corrupt (names the fix).
        """
        single_thread_runtime()
        self.perceiver.load()

    def observe(self, images: Sequence[Any], *, ocr: bool = True) -> list[Observation | OculiError]:
        """Observe each image; a failure is returned in its place and the others go on.

        Args:
            images: ``oculi.imageio.LoadedImage``s (the pixels and what is known about them).
            ocr: Read text too.

        Returns:
            One ``Observation`` or ``OculiError`` per image, in order.

        Raises:
            ModelAssetError: a model is missing; no image can be observed then.
        """
        from oculi.core.errors import BackendError, ModelAssetError

        self.load()
        out: list[Observation | OculiError] = []
        for li in images:
            try:
                out.append(self.perceiver.observe_batch([li.image], [li.info], ocr=ocr)[0])
            except ModelAssetError:
                raise
            except OculiError as exc:
                out.append(exc)
            except Exception as exc:  # noqa: BLE001 - one image that breaks a model never stops the rest
                log.debug("perception failed on %s", li.info.path, exc_info=True)
                out.append(BackendError(f"{li.info.path or 'image'}: perception failed ({type(exc).__name__}: {exc})"))
        return out

    def detect(self, images: Sequence[Any]) -> list[list[DetectedObject]]:
        """Detector objects (with colours and faces, as ``oculi detect`` gives) for each image.

        Args:
            images: PIL images (RGB), e.g. decoded video frames.
        """
        self.load()
        return [self.perceiver.detect_objects(im) for im in images]
