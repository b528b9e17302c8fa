"""``oculi train adapter``: text → image retrieval learnt from the user's image-caption pairs.

oculi has no CLIP: out of the box, a text query meets an image only through what perception
wrote about it (the caption document). An adapter learns a linear projection ``W`` from the
sentence encoder's space (384-d) into the visual feature space (1280-d) with a symmetric
InfoNCE loss over in-batch negatives (each caption against the batch's distinct images, each
image against one caption of each), with a learnt temperature. Its score of a query ``t`` and
an image ``x`` is ``normalise(W t) · x``.

How a collection uses it: **re-projection at query time**. The projected query is a vector
of the image space, so ``oculi search "..." --adapter NAME`` searches the image vectors the
collection already stores (the ANN index of ``image_vec``) — no third vector, no re-index, and
any collection indexed with the same image embedder can use any adapter trained on it (a
mismatch is refused). The adapter's similarity joins the hybrid score (``ADAPTER_WEIGHT``).

Recall@1/5/10 and MRR of text → image on held-out images (no image of the held-out split is
trained on) are measured before (oculi's built-in route: the caption document's sentence
embedding) and after (the adapter).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oculi.core.errors import InputError
from oculi.core.types import SCHEMA_VERSION
from oculi.store.trained import TrainedKind, TrainedStore, validate_name
from oculi.tasks.train.data import read_pairs, split_by_image
from oculi.tasks.train.features import (
    FeatureCache,
    default_extractors,
    embed_texts_unique,
    extract_image_features,
    image_space,
    text_space,
)
from oculi.tasks.train.loop import FitConfig, clear_checkpoint, fit
from oculi.tasks.train.metrics import retrieval_scores
from oculi.tasks.train.progress import ProgressFn, StopFn, TrainProgress

WEIGHTS = "projection.safetensors"
DEFAULT_CONFIG = FitConfig(epochs=60, lr=3e-3, batch_size=64, weight_decay=1e-4)
MAX_BASELINE_IMAGES = 500  # held-out images perceived for the "before" figure


@dataclass
class AdapterReport:
    name: str
    version: int
    path: str
    n_train_pairs: int
    n_test_images: int
    n_test_queries: int
    before: dict[str, float]
    after: dict[str, float]
    losses: list[float]
    problems: list[str] = field(default_factory=list)
    resumed_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": "adapter", "name": self.name, "version": self.version,
                "path": self.path, "n_train_pairs": self.n_train_pairs, "n_test_images": self.n_test_images,
                "n_test_queries": self.n_test_queries, "before": self.before, "after": self.after,
                "losses": [round(x, 5) for x in self.losses], "resumed_from": self.resumed_from, "problems": self.problems}


def train_adapter(
    engine: Any,
    pairs_path: str | Path,
    name: str,
    *,
    images_dir: str | Path | None = None,
    config: FitConfig = DEFAULT_CONFIG,
    test_fraction: float = 0.2,
    baseline: bool = True,
    resume: bool = False,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> AdapterReport:
    """Train a retrieval adapter on image-caption pairs and store it as trained model ``name``.

    Args:
        engine: An ``oculi.Engine`` (image and text embedders, perception for the baseline).
        pairs_path: A CSV (``image,caption``) or COCO-captions JSON.
        images_dir: Where the images are (default: the file's folder).
        config: Epochs, learning rate, batch size, weight decay, seed.
        test_fraction: Share of the images held out for Recall@K.
        baseline: Also measure oculi's built-in route on the held-out images (perceives them).
        resume: Continue an interrupted run.

    Example:
        >>> rep = train_adapter(Engine(), "pairs.csv", "parts-search")  # doctest: +SKIP
        >>> rep.before["recall@1"], rep.after["recall@1"]  # doctest: +SKIP
        (0.21, 0.64)
    """
    name = validate_name(name)
    data = read_pairs(pairs_path, images_dir=images_dir)
    uniq = sorted(set(data.images))
    feats = extract_image_features(engine, uniq, default_extractors(engine),
                                   cache=FeatureCache(engine.settings.home / "cache" / "features"),
                                   progress=progress, should_stop=should_stop)
    problems = data.problems + feats.problems
    row = {uniq[i]: k for k, i in enumerate(feats.ok)}
    keep = [n for n, im in enumerate(data.images) if im in row]
    images = [data.images[n] for n in keep]
    captions = [data.captions[n] for n in keep]
    if len(set(images)) < 4:
        raise InputError(f"{pairs_path}: {len(set(images))} readable image(s); an adapter needs at least 4 (some to train on, some to test on)")
    x_img = feats.arrays["image"]  # [N_img, Dv]
    img_idx = np.asarray([row[im] for im in images])  # pair → image row
    t_vec = embed_texts_unique(engine, captions, progress=progress, should_stop=should_stop)  # [N_pairs, Dt]
    tr, te = split_by_image(images, test_fraction, seed=config.seed)

    import torch
    from torch import nn

    from oculi.tasks.train.models import Projection

    torch.manual_seed(config.seed)
    model = Projection(t_vec.shape[1], x_img.shape[1])
    t_all, x_all = torch.from_numpy(t_vec), torch.from_numpy(x_img)
    tr_t = torch.as_tensor(tr)
    ce = nn.CrossEntropyLoss()

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        pairs = tr_t[idx]
        imgs = img_idx[pairs.numpy()]
        cols, inverse = np.unique(imgs, return_inverse=True)  # the batch's distinct images
        logits = model.logits(t_all[pairs], x_all[torch.as_tensor(cols)])  # [B, U]
        target = torch.as_tensor(inverse)
        first = torch.as_tensor([int(np.flatnonzero(inverse == u)[0]) for u in range(len(cols))])  # one caption per image
        return 0.5 * (ce(logits, target) + ce(logits[first].T, torch.arange(len(cols))))

    store = TrainedStore.for_home(engine.settings.home)
    ispace, tspace = image_space(engine), text_space(engine)
    fingerprint = hashlib.sha256(json.dumps({"images": images, "captions": captions, "spaces": [ispace, tspace],
                                             "cfg": config.__dict__, "tf": test_fraction}).encode()).hexdigest()
    work = store.work_dir(name)
    res = fit(model, loss_fn, len(tr), config, work_dir=work, fingerprint=fingerprint, resume=resume,
              progress=progress, should_stop=should_stop, threads=1)
    problems += res.notes

    # held-out retrieval: every held-out caption against every held-out image
    test_imgs = sorted({images[i] for i in te})
    random.Random(config.seed).shuffle(test_imgs)
    test_imgs = sorted(test_imgs[:MAX_BASELINE_IMAGES])
    col = {im: j for j, im in enumerate(test_imgs)}
    queries = [i for i in te if images[i] in col]
    rel = [col[images[i]] for i in queries]
    x_test = x_img[[row[im] for im in test_imgs]]  # [M, Dv]
    w = model.proj.weight.detach().numpy()  # [Dv, Dt]
    after = retrieval_scores(_project(t_vec[queries], w) @ x_test.T, rel)
    before: dict[str, float] = {}
    if baseline:
        if progress:
            progress(TrainProgress("evaluating", 0, len(test_imgs), "perceiving held-out images for the baseline"))
        before = retrieval_scores(t_vec[queries] @ _document_vectors(engine, test_imgs).T, rel)
    from safetensors.numpy import save as save_tensors

    t = store.save(name, TrainedKind.ADAPTER, {WEIGHTS: save_tensors({"proj.weight": w.astype(np.float32)})}, {
        "feature_space": ispace, "text_space": tspace,
        "data": {"source": str(Path(pairs_path).resolve()), "n_pairs": len(images), "n_images": len(set(images))},
        "training": {**config.__dict__, "test_fraction": test_fraction},
        "metrics": {**{f"before_{k}": v for k, v in before.items()}, **after, "n_test_queries": len(queries)},
    })
    clear_checkpoint(work)
    return AdapterReport(t.name, t.version, str(t.path), len(tr), len(test_imgs), len(queries), before, after,
                         res.losses, problems, res.resumed_from)


def _project(t: np.ndarray, w: np.ndarray) -> np.ndarray:
    q = t @ w.T  # [Q, Dv]
    return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)


def _document_vectors(engine: Any, paths: list[str]) -> np.ndarray:
    """The sentence embedding of each image's search summary: what ``oculi search`` compares a
    text query with out of the box."""
    from oculi.tasks.index.document import observation_document

    docs = {src: observation_document(obs).summary for src, obs in engine.observe_many(paths, ocr=engine.settings.ocr)
            if not isinstance(obs, Exception)}
    summaries = [docs.get(p, "") for p in paths]
    return np.asarray(engine.embed_texts(summaries), dtype=np.float32)


class Adapter:
    """A trained retrieval adapter at query time: text vectors → image-space query vectors."""

    def __init__(self, trained: Any) -> None:
        from safetensors.numpy import load_file

        if trained.kind is not TrainedKind.ADAPTER:
            raise InputError(f"trained model {trained.name!r} is a {trained.kind} model, not a retrieval adapter")
        self.name = trained.name
        self.feature_space = dict(trained.manifest["feature_space"])
        self.text_space = dict(trained.manifest["text_space"])
        self.w = load_file(str(trained.file(WEIGHTS)))["proj.weight"]  # [Dv, Dt]

    def project(self, text_vectors: np.ndarray) -> np.ndarray:
        """``[N, Dt]`` text vectors → ``[N, Dv]`` L2-normalised image-space query vectors."""
        return _project(np.asarray(text_vectors, dtype=np.float32), self.w)
