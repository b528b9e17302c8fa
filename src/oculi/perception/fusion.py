"""Reconciling the perception parts with each other.

The detector and the classifier sometimes disagree about the same subject: on a squashed
(not letterboxed) scikit-image ``chelsea`` photo CenterNet calls the cat a dog (0.47) while the
classifier is sure it is a cat (tiger cat 0.38 + Egyptian cat 0.37 + tabby 0.17). When the classifier's
labels, summed per COCO class, confidently name a COCO animal/object, and a large detection of the same family (animal, vehicle)
carries another label, the detection is relabelled to the classifier's class.
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


def reconcile(
    objects: list[DetectedObject], labels: list[Label], width: int, height: int
) -> list[DetectedObject]:
    """Relabel large detections that the confident classifier contradicts within one family.

    Returns:
        The objects, with at most the subject detections relabelled, sorted by score.
    """
    if not labels or not objects:
        return objects
    # ImageNet splits one COCO class into many (tiger cat, tabby, Egyptian cat): sum them.
    by_coco: dict[str, float] = {}
    for lab in labels:
        c = imagenet_to_coco(lab.name)
        if c is not None:
            by_coco[c] = by_coco.get(c, 0.0) + lab.score
    if not by_coco:
        return objects
    coco, score = max(by_coco.items(), key=lambda kv: kv[1])
    if score < CLASSIFIER_OVERRIDES_AT:
        return objects
    fam = _family(coco)
    if fam is None:
        return objects
    area = float(width * height)
    out = []
    for o in objects:
        if o.label != coco and _family(o.label) == fam and o.box.area / area >= LARGE_FRACTION and o.score < score:
            o = replace(o, label=coco, score=min(1.0, max(o.score, score)))
        out.append(o)
    return sorted(out, key=lambda o: -o.score)
