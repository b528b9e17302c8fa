"""Capability protocols: what a task may ask of a model.

A task depends on one of these, never on which backend is behind it. The built-in backend
implements them from the registry-shipped perception models; a user-supplied VLM (transformers,
an OpenAI-compatible server) implements the same protocols later.

Images cross these seams as ``PIL.Image.Image`` in RGB mode, already validated by
``oculi.imageio.load_image``.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image

from oculi.core.types import Answer, DetectedObject, ImageInfo, Observation, TextLine


@runtime_checkable
class Perceiver(Protocol):
    """Turns an image into an ``Observation`` (objects, labels, text, colours, embedding)."""

    def observe(self, image: Image.Image, info: ImageInfo, *, ocr: bool = True) -> Observation: ...


@runtime_checkable
class Describer(Protocol):
    """Writes a caption for an image."""

    def describe(self, image: Image.Image, observation: Observation, *, detailed: bool = False) -> str: ...


@runtime_checkable
class Answerer(Protocol):
    """Answers a question about an image."""

    def answer(self, image: Image.Image, observation: Observation, question: str) -> Answer: ...


@runtime_checkable
class Detector(Protocol):
    """Finds objects: label, score, box."""

    def detect(self, image: Image.Image) -> list[DetectedObject]: ...


@runtime_checkable
class FrameDetector(Protocol):
    """Finds objects in video frames: the detector alone (no colours, no face finder), down to
    ``min_score`` so a tracker can continue tracks on weak detections. Footage calls this."""

    def detect_frames(self, images: Sequence[Image.Image], *, min_score: float) -> list[list[DetectedObject]]: ...


@runtime_checkable
class Reader(Protocol):
    """Reads text (OCR): lines in reading order."""

    def read(self, image: Image.Image) -> list[TextLine]: ...


@runtime_checkable
class ImageEmbedder(Protocol):
    """Embeds images into an L2-normalised vector space: returns ``[N, D]`` float32."""

    dim: int

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Embeds texts into an L2-normalised vector space: returns ``[N, D]`` float32."""

    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class PatchEmbedder(Protocol):
    """Mid-level patch features for anomaly detection (``oculi inspect``): ``[N, h, w, C]``
    float32, one C-vector per cell of a grid over each whole image (not normalised)."""

    def patch_features(self, images: Sequence[Image.Image]) -> np.ndarray: ...
