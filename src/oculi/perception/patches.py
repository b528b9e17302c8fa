"""Fine patch features from EfficientNet-Lite0, for anomaly detection (``oculi inspect``).

PatchCore (Roth et al., 2022) compares each patch of a new image with a memory bank of patch
features from defect-free images, taken from the middle of an ImageNet backbone (ResNet
``layer2`` + ``layer3``, each averaged over a 3x3 neighbourhood). The only backbone that can be
installed offline here is the classifier's EfficientNet-Lite0 (``oculi.perception.classifier``).
Its features are taken earlier than PatchCore's: the outputs of stage 2 (``_blocks[2]``,
24 channels, stride 4, averaged over 2x2 cells onto the stride-8 grid) and of stage 3
(``_blocks[4]``, 40 channels, stride 8), concatenated unpooled: ``[N, 28, 28, 64]`` for the
224 x 224 image. The network runs only up to stage 3 (a third of its cost).

The image is mirrored outwards by 16 pixels (two cells) before the network and those cells are
cut off again, so border patches see real surface instead of the convolutions' zero padding:
with zero padding the border patches were the most "anomalous" of every good image.

Measured on the texture benchmark (``benchmarks/bench_inspect.py``, 6 textures x 5 defect
types x 3 sizes, 40 good images in the bank, image AUROC, mean over textures):

| features | pooling | map smoothing sigma | image AUROC | small defects |
|---|---|---|---|---|
| stage 3 + stage 5 (PatchCore's depths) | 3x3 | 4 px | 0.817 | 0.639 |
| stage 3 + stage 5 | stage 3 unpooled | 4 px | 0.897 | 0.784 |
| stage 3 + stage 5 | stage 3 unpooled | 1 px | 0.925 | 0.844 |
| stage 3 alone | none | 1 px | 0.942 | 0.874 |
| stage 2 + stage 3 (kept) | none | 1 px | 0.956 | 0.908 |

Since then the bank's distances are measured in a whitened space (``oculi.tasks.inspect.whiten``),
which took these features from 0.948 to 0.966 in the same harness on a larger test set.

The 3x3 averaging and the stride-16 stage dilute a defect a few pixels wide into the
surrounding surface; earlier, unpooled features keep it. Earlier tried and rejected: the wider
expanded activations inside stages 4 and 6 (912-d), a 448-pixel input (0.898 at 8x the cost),
stride-4 maps (0.843), keeping 25 % of the patches in the coreset instead of 10 %.

The weights are the classifier asset's; the network runs truncated (stages 1-3) on ONNX Runtime
when the one-time export works, else on torch eager.
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

from oculi.config import Settings
from oculi.core.errors import BackendError

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

INPUT_SIZE = 224  # the whole image is resized to this square (no crop: defects sit at edges too)
STRIDE = 8  # input pixels per feature-map cell
PAD = 16  # mirrored border, cut off again after the network (2 cells of 8 px)
DIM = 24 + 40
MAX_BATCH = 16


def preprocess(image: "Image.Image", size: int = INPUT_SIZE) -> np.ndarray:
    """The whole image resized to ``size x size`` (bicubic), scaled to [-1, 1] and mirrored outwards
    by ``PAD``: ``[3, size + 2 PAD, size + 2 PAD]``."""
    from PIL import Image

    if image.mode != "RGB":
        image = image.convert("RGB")
    arr = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0), dtype=np.float32)
    arr = arr * (1.0 / 127.5) - 1.0
    arr = np.pad(arr, ((PAD, PAD), (PAD, PAD), (0, 0)), mode="reflect")
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # [3, size + 2 PAD, size + 2 PAD]


def _build_patch_module(weights: Path) -> Any:
    """The classifier network truncated to the two feature maps, as a torch module.

    ``forward(x [B, 3, H, W])`` (mirrored by ``PAD``) returns ``[B, 64, (H - 2 PAD)/8, (W - 2 PAD)/8]``.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    from oculi.perception.classifier import _load_torch_model

    full = _load_torch_model(weights)

    class PatchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = full._conv_stem
            self.bn0 = full._bn0
            self.blocks = nn.ModuleList(full._blocks[:5])  # stages 1-3

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu6(self.bn0(self.stem(F.pad(x, (0, 1, 0, 1)))))  # TF "SAME" pad of the 3x3 stride-2 stem
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i == 2:
                    f4 = x  # [B, 24, H/4, W/4]
            f8 = x  # [B, 40, H/8, W/8]
            f4 = F.avg_pool2d(f4, 2)  # onto the stride-8 grid: [B, 24, H/8, W/8]
            c = PAD // STRIDE
            return torch.cat([f4, f8], dim=1)[:, :, c:-c, c:-c]  # [B, 64, (H - 2 PAD)/8, (W - 2 PAD)/8]

    return PatchNet().eval()


class _TorchRunner:
    def __init__(self, weights: Path) -> None:
        self.model = _build_patch_module(weights)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(batch)).numpy()


class _OrtRunner:
    def __init__(self, session: Any) -> None:
        self.session = session

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(["patches"], {"pixels": batch})[0]


def _export_onnx(weights: Path, target: Path) -> None:
    import torch

    model = _build_patch_module(weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.part", dir=target.parent)
    os.close(fd)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.zeros(1, 3, INPUT_SIZE + 2 * PAD, INPUT_SIZE + 2 * PAD),), tmp, input_names=["pixels"],
                              output_names=["patches"], dynamic_axes={"pixels": {0: "batch"}, "patches": {0: "batch"}},
                              opset_version=17, dynamo=False)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class PatchFeatureExtractor:
    """Patch features ``[N, 28, 28, 64]`` for anomaly detection (see the module docstring).

    Args:
        settings: Where assets and the ONNX cache live, and the thread count.
        runtime: ``"auto"`` (onnxruntime, falling back to torch), ``"onnx"`` or ``"torch"``.

    Example:
        >>> ex = PatchFeatureExtractor(Settings())  # doctest: +SKIP
        >>> ex.patch_features([img]).shape  # doctest: +SKIP
        (1, 28, 28, 64)
    """

    name = "efficientnet-lite0-s2s3-mirror16"  # stored in each inspector: a different extractor cannot use its bank
    dim = DIM
    stride = STRIDE
    input_size = INPUT_SIZE

    def __init__(self, settings: Settings, runtime: str = "auto") -> None:
        self.settings = settings
        self.requested_runtime = runtime
        self.runtime: str | None = None
        self._runner: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Verify the classifier asset and build the runtime (idempotent, thread-safe)."""
        if self._runner is not None:
            return
        with self._lock:
            if self._runner is not None:
                return
            from oculi.assets.catalog import get_asset
            from oculi.assets.manager import require_asset
            from oculi.perception.classifier import WEIGHTS_FILE
            from oculi.perception.onnx_session import cached_session, choose_runtime

            weights = require_asset("classifier", self.settings) / WEIGHTS_FILE
            sha = next(f.sha256 for f in get_asset("classifier").files if f.path == WEIGHTS_FILE)
            cache = self.settings.home / "cache" / f"efficientnet-lite0-patches-s2s3-p{PAD}-{sha[:16]}.onnx"
            self._runner, self.runtime = choose_runtime(
                self.requested_runtime,
                lambda: _OrtRunner(cached_session(cache, lambda t: _export_onnx(weights, t), self.settings.threads,
                                                  what="EfficientNet-Lite0 patches")),
                lambda: _TorchRunner(weights), what="EfficientNet-Lite0 patches")

    def patch_features(self, images: Sequence["Image.Image"]) -> np.ndarray:
        """Patch features of each image: ``[N, 28, 28, 64]`` float32 (each image resized to 224 x 224)."""
        side = INPUT_SIZE // STRIDE
        if len(images) == 0:
            return np.zeros((0, side, side, DIM), dtype=np.float32)
        self.load()
        parts = []
        for start in range(0, len(images), MAX_BATCH):
            chunk = images[start : start + MAX_BATCH]
            batch = np.stack([preprocess(im) for im in chunk])  # [B, 3, 256, 256]
            try:
                out = self._runner(batch)  # [B, 64, 28, 28]
            except Exception as exc:
                raise BackendError(f"EfficientNet-Lite0 patch features failed on a batch of {len(chunk)}: {exc}") from exc
            parts.append(np.ascontiguousarray(np.asarray(out, dtype=np.float32).transpose(0, 2, 3, 1)))
        return np.concatenate(parts)  # [N, 28, 28, 64]


_SHARED: dict[tuple[str, str, int], PatchFeatureExtractor] = {}
_SHARED_LOCK = threading.Lock()


def shared_extractor(settings: Settings) -> PatchFeatureExtractor:
    """One extractor per home, asset folder and thread count, shared by callers (loaded once)."""
    key = (str(settings.home), str(settings.assets_dir), int(settings.threads))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = PatchFeatureExtractor(settings)
        return _SHARED[key]
