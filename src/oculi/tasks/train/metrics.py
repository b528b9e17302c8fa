"""Classification and retrieval metrics, and the confusion-matrix picture."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``[C, C]`` counts: row = true class, column = predicted class.

    Example:
        >>> confusion_matrix([0, 0, 1], [0, 1, 1], 2).tolist()
        [[1, 1], [0, 1]]
    """
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        m[int(t), int(p)] += 1
    return m


def per_class_scores(cm: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    out = {}
    for i, c in enumerate(classes):
        tp = float(cm[i, i])
        pred = float(cm[:, i].sum())
        true = float(cm[i, :].sum())
        p = tp / pred if pred else 0.0
        r = tp / true if true else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out[c] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "support": int(true)}
    return out


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """``accuracy``, ``macro_f1``, ``per_class`` and the ``confusion`` matrix (as lists)."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    per = per_class_scores(cm, classes)
    n = int(cm.sum())
    return {
        "accuracy": round(float(np.trace(cm)) / n, 4) if n else 0.0,
        "macro_f1": round(float(np.mean([v["f1"] for v in per.values()])), 4) if per else 0.0,
        "n": n,
        "per_class": per,
        "confusion": cm.tolist(),
    }


def retrieval_scores(sim: np.ndarray, relevant: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@K and MRR of ranking the columns of ``sim`` (``[Q, N]``) for each query row, when
    query ``q``'s one relevant column is ``relevant[q]``.

    Example:
        >>> retrieval_scores(np.array([[0.9, 0.1], [0.8, 0.2]]), [0, 1], ks=(1,))
        {'recall@1': 0.5, 'mrr': 0.75}
    """
    rel = np.asarray(relevant)
    target = sim[np.arange(len(rel)), rel][:, None]  # [Q, 1]
    ranks = (sim > target).sum(axis=1) + 1  # 1-based rank of the relevant column
    out = {f"recall@{k}": round(float((ranks <= k).mean()), 4) for k in ks}
    out["mrr"] = round(float((1.0 / ranks).mean()), 4)
    return out


def confusion_png(cm: np.ndarray, classes: Sequence[str], title: str = "") -> bytes:
    """A confusion matrix drawn as a PNG: rows true, columns predicted, darker = more, counts written in."""
    from PIL import Image, ImageDraw

    from oculi.tasks.evaluate import _font  # noqa: PLC2701 - the one font lookup

    n = len(classes)
    cell = max(28, min(64, 640 // max(n, 1)))
    font = _font(max(10, cell // 4))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = int(max(probe.textlength(c[:24], font=font) for c in classes)) + 12
    top = label_w + (30 if title else 8)
    w = max(label_w + n * cell + 10, int(probe.textlength(title, font=font)) + 16 if title else 0)
    h = top + n * cell + 26
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    if title:
        d.text((8, 6), title, fill=(0, 0, 0), font=font)
    d.text((8, top + n * cell + 6), "rows: true class; columns: predicted", fill=(90, 90, 90), font=font)
    rows = cm.sum(axis=1, keepdims=True).astype(float)
    frac = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    for i in range(n):
        d.text((4, top + i * cell + cell // 3), classes[i][:24], fill=(0, 0, 0), font=font)
        for j in range(n):
            shade = int(255 - 200 * frac[i, j])
            fill = (shade, shade, 255) if i != j else (shade, 255, shade)
            x0, y0 = label_w + j * cell, top + i * cell
            d.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=fill, outline=(200, 200, 200))
            d.text((x0 + 4, y0 + cell // 3), str(int(cm[i, j])), fill=(0, 0, 0), font=font)
    col = Image.new("RGB", (label_w, n * cell), (255, 255, 255))  # predicted-class names, rotated
    cd = ImageDraw.Draw(col)
    for j in range(n):
        cd.text((4, j * cell + cell // 3), classes[j][:24], fill=(0, 0, 0), font=font)
    img.paste(col.rotate(90, expand=True), (label_w, top - label_w))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
