"""Caption quality: BLEU-1..4 and CIDEr of any model's captions against reference captions.

The scorers are the COCO caption evaluation's own (``pycocoevalcap``'s ``Bleu`` and
``Cider``, pure Python). Its tokeniser, ``PTBTokenizer``, runs the Stanford CoreNLP jar on
Java; oculi tokenises in Python instead — lower case, split words from punctuation, drop the
punctuation tokens that ``PTBTokenizer`` drops — so no Java is needed. Scores on captions
without unusual punctuation agree with the Java path; CIDEr's document frequencies come from
the references of the evaluated images, so CIDEr means most on a few hundred images or more.

References come from a CSV (``image,caption``: several rows per image allowed) or a
COCO-captions JSON (``oculi.tasks.train.data.read_pairs``).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from oculi.core.errors import Interrupted, OculiError
from oculi.core.types import SCHEMA_VERSION
from oculi.tasks.train.progress import ProgressFn, StopFn, TrainProgress

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_DROP = {"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", "(", ")", "[", "]", "{", "}", '"'}


def tokenize(text: str) -> str:
    """Lower-cased, space-separated tokens without punctuation (as COCO's evaluation feeds its scorers).

    Example:
        >>> tokenize("A red circle, on a WHITE background.")
        'a red circle on a white background'
    """
    return " ".join(t for t in _TOKEN.findall(text.lower()) if t not in _DROP)


def caption_scores(references: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float]:
    """``bleu_1``..``bleu_4`` and ``cider`` (corpus level) of one prediction per image.

    Raises:
        OculiError: pycocoevalcap is not installed (named with the fix).
    """
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        raise OculiError("caption metrics need pycocoevalcap: pip install 'oculi[eval]' (or pycocoevalcap==1.2)") from None
    keys = [k for k in references if k in predictions]
    gts = {k: [tokenize(r) for r in references[k]] for k in keys}
    res = {k: [tokenize(predictions[k]) or "empty"] for k in keys}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    out = {f"bleu_{i + 1}": round(float(b), 4) for i, b in enumerate(bleu)}
    out["cider"] = round(float(cider), 4)
    return out


@dataclass
class CaptionEvaluation:
    model: str
    scores: dict[str, float]
    captions: dict[str, str]
    references: dict[str, list[str]]
    errors: dict[str, str]
    seconds: float
    problems: list[str] = field(default_factory=list)

    def to_dict(self, *, with_results: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "task": "captions", "model": self.model,
                             "n_images": len(self.captions), **self.scores, "errors": len(self.errors),
                             "seconds": round(self.seconds, 2), "problems": self.problems}
        if with_results:
            d["results"] = [{"image": k, "caption": v, "references": self.references[k]} for k, v in self.captions.items()]
            d["failed"] = [{"image": k, "error": e} for k, e in self.errors.items()]
        return d


def evaluate_captions(
    images: Sequence[str],
    captions: Sequence[str],
    caption: Callable[[str], str],
    *,
    model: str = "builtin",
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    problems: Sequence[str] = (),
) -> CaptionEvaluation:
    """Caption every distinct image with ``caption`` and score against its reference captions.

    Args:
        images, captions: Reference pairs (an image may have several captions).
        caption: Writes a caption for an image path (``lambda p: engine.caption(p).caption``);
            an ``OculiError`` it raises is recorded and the image left out of the scores.
    """
    refs: "OrderedDict[str, list[str]]" = OrderedDict()
    for im, cap in zip(images, captions):
        refs.setdefault(im, []).append(cap)
    t0 = time.perf_counter()
    preds: dict[str, str] = {}
    errors: dict[str, str] = {}
    for n, im in enumerate(refs):
        if should_stop and should_stop():
            raise Interrupted(f"evaluation interrupted after {n} of {len(refs)} images")
        try:
            preds[im] = caption(im)
        except OculiError as e:
            errors[im] = str(e)
        if progress:
            progress(TrainProgress("evaluating", n + 1, len(refs)))
    scores = caption_scores(dict(refs), preds) if preds else {}
    return CaptionEvaluation(model, scores, preds, dict(refs), errors, time.perf_counter() - t0, list(problems))
