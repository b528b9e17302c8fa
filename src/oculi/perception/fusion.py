"""Reconciling the perception parts with each other.

The detector and the classifier sometimes disagree about the same subject: on a squashed
(not letterboxed) scikit-image ``chelsea`` photo CenterNet calls the cat a dog (0.47) while the
classifier is sure it is a cat (tiger cat 0.38 + Egyptian cat 0.37 + tabby 0.17). When the classifier's
labels, summed per COCO class, confidently name a COCO animal/object, and a large detection of the same family (animal, vehicle)
carries another label, the detection is relabelled to the classifier's class. An object that
was classified on its own crop (``DetectedObject.labels``) is judged by its own labels instead,
whatever its size.
"""

from __future__ import annotations

from dataclasses import replace

from oculi.core.types import DetectedObject, Label
from oculi.core.labels import CATEGORY_MEMBERS, imagenet_to_coco

CLASSIFIER_OVERRIDES_AT = 0.4  # classifier score needed to overrule the detector
LARGE_FRACTION = 0.15  # a detection covering this much of the image is "the subject"


def _family(label: str) -> str | None:
    for fam, members in CATEGORY_MEMBERS.items():
        if label in members:
            return fam
    return None


def _coco_votes(labels: tuple[Label, ...] | list[Label]) -> tuple[str, float] | None:
    """The COCO class the labels name most, their scores summed (ImageNet splits one COCO
    class into many: tiger cat, tabby, Egyptian cat), or ``None``."""
    by_coco: dict[str, float] = {}
    for lab in labels:
        c = imagenet_to_coco(lab.name)
        if c is not None:
            by_coco[c] = by_coco.get(c, 0.0) + lab.score
    return max(by_coco.items(), key=lambda kv: kv[1]) if by_coco else None


def _relabel(o: DetectedObject, vote: tuple[str, float] | None) -> DetectedObject:
    if vote is None:
        return o
    coco, score = vote
    fam = _family(coco)
    if score >= CLASSIFIER_OVERRIDES_AT and fam is not None and o.label != coco and _family(o.label) == fam and o.score < score:
        return replace(o, label=coco, score=min(1.0, max(o.score, score)))
    return o


def reconcile(
    objects: list[DetectedObject], labels: list[Label], width: int, height: int
) -> list[DetectedObject]:
    """Relabel detections that the confident classifier contradicts within one family.

    Returns:
        The objects, with at most the subject detections (or those whose own crop's labels
        disagree) relabelled, sorted by score.
    """
    if not objects:
        return objects
    image_vote = _coco_votes(labels)
    area = float(width * height)
    out = []
    for o in objects:
        if o.labels:
            o = _relabel(o, _coco_votes(o.labels))
        elif o.box.area / area >= LARGE_FRACTION:
            o = _relabel(o, image_vote)
        out.append(o)
    return sorted(out, key=lambda o: -o.score)
