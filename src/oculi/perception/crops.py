"""Fine names for detected objects: the classifier run on each object's own crop.

The detector names 80 COCO classes ("cat", "car", "person"); the classifier names 1000
ImageNet classes but sees the whole frame. Classifying each detection's crop gives the object
its own ImageNet labels: the cat in a scene with a cup of espresso is an *Egyptian cat*, a
person's crop shows what they wear (*suit*, *military uniform*, *lab coat*). Language decides
what a label means for the object (a kind of it, a garment on it, something in its hands);
perception only attaches the labels.

Cost is bounded: at most ``MAX_CROPS`` crops per image (``Settings.object_crops``; largest
boxes first), none for boxes
under ``MIN_CROP_SIDE`` pixels on a side or ``MIN_CROP_FRACTION`` of the frame, none for
faces, and every crop of a batch of images goes through the classifier in one call. A box
covering ``WHOLE_FRAME_FRACTION`` of the frame *is* the frame: it gets the image's labels
without another pass. ``benchmarks/bench_vocab.py`` measures it against the whole-image
classifier pass in the same run: about 0.8× of that pass per image on the 21 evaluation
images (14 detections), i.e. ~15 ms per image at the classifier's 17-20 ms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, Sequence

from oculi.core.types import DetectedObject, Label, ObjectSource

if TYPE_CHECKING:
    from PIL import Image

MAX_CROPS = 3  # per image, largest detections first
MIN_CROP_SIDE = 32  # pixels; smaller boxes are not classified
MIN_CROP_FRACTION = 0.01  # of the frame's area
WHOLE_FRAME_FRACTION = 0.8  # a box this large gets the whole image's labels
CROP_TOP_K = 5  # labels kept per object


class Classifier(Protocol):
    def classify(self, images: Sequence["Image.Image"], top_k: int = 5) -> list[list[Label]]: ...


@dataclass(frozen=True)
class _Crop:
    image: int
    obj: int
    box: tuple[int, int, int, int]


def plan_crops(
    objects: Sequence[DetectedObject], width: int, height: int, max_crops: int = MAX_CROPS
) -> tuple[list[int], list[int]]:
    """Which objects to classify on their own crop, and which take the whole image's labels.

    Returns:
        ``(crop, whole)``: indices into ``objects``.
    """
    area = float(width * height)
    crop: list[int] = []
    whole: list[int] = []
    order = sorted(range(len(objects)), key=lambda i: -objects[i].box.area)
    for i in order:
        o = objects[i]
        if o.source is not ObjectSource.DETECTOR:
            continue
        b = o.box.clip(width, height)
        if b.area >= WHOLE_FRAME_FRACTION * area:
            whole.append(i)
        elif len(crop) < max_crops and min(b.width, b.height) >= MIN_CROP_SIDE and b.area >= MIN_CROP_FRACTION * area:
            crop.append(i)
    return crop, whole


def label_objects(
    images: Sequence["Image.Image"],
    objects: Sequence[Sequence[DetectedObject]],
    classifier: Classifier,
    image_labels: Sequence[Sequence[Label]] | None = None,
    max_crops: int = MAX_CROPS,
) -> list[list[DetectedObject]]:
    """Attach each object's own classifier labels (``DetectedObject.labels``).

    Args:
        images: The frames, RGB.
        objects: The objects found in each frame.
        classifier: Anything with ``classify(images, top_k)`` (the built-in EfficientNet).
        image_labels: The frames' own labels, reused for boxes that fill the frame.
        max_crops: Crops per frame at most (0: none).

    Returns:
        The objects of each frame, in the same order; those not classified are unchanged.

    Example:
        >>> objs = label_objects([img], [detections], perceiver.classifier)  # doctest: +SKIP
        >>> objs[0][0].labels[0]  # doctest: +SKIP
        Label(name='Egyptian cat', score=0.64)
    """
    out = [list(objs) for objs in objects]
    crops: list[_Crop] = []
    for i, (img, objs) in enumerate(zip(images, objects)):
        w, h = img.size
        crop, whole = plan_crops(objs, w, h, max_crops)
        if image_labels is not None:
            for j in whole:
                out[i][j] = replace(objs[j], labels=tuple(image_labels[i][:CROP_TOP_K]))
        else:
            crop = (whole + crop)[:max_crops]
        for j in crop:
            b = objs[j].box.clip(w, h)
            crops.append(_Crop(i, j, (int(b.x1), int(b.y1), max(int(b.x1) + 1, int(round(b.x2))), max(int(b.y1) + 1, int(round(b.y2))))))
    if not crops:
        return out
    labels = classifier.classify([images[c.image].crop(c.box) for c in crops], top_k=CROP_TOP_K)
    for c, labs in zip(crops, labels):
        out[c.image][c.obj] = replace(out[c.image][c.obj], labels=tuple(labs))
    return out
