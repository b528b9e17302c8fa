"""The searchable document of an observation: caption, keyword document, embedded summary.

Built from an ``Observation`` alone (no pixels), so ``refresh_documents`` can rewrite every
stored document after a change of this builder or of the sentence encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from oculi.core.types import Observation
from oculi.language.describe import LABEL_HEDGED, describe
from oculi.language.kinds import fine_name
from oculi.language.vocab import gloss, label_words, number_word, plural

LABEL_KEEP = 0.05  # classifier labels kept in the ``labels`` column (the top one always)
LABEL_DOC = 0.10  # classifier labels written into the searchable document (the top one always)
MAX_DOC_TEXT = 2000  # OCR characters kept in the document
MAX_EMBED_TEXT = 300  # OCR characters in the embedded summary


@dataclass(frozen=True)
class Document:
    """What is stored for search about one observation."""

    caption: str
    doc: str  # full-text document: caption, objects, labels with synonyms, colours, OCR text
    summary: str  # the shorter text that is embedded with the sentence encoder
    labels: tuple[str, ...]
    objects: tuple[str, ...]
    object_terms: tuple[str, ...]
    colours: tuple[str, ...]
    text: str
    track_ids: tuple[int, ...]


def observation_document(obs: Observation, caption: str | None = None) -> Document:
    """Build the stored caption, keyword document and embedded summary from an observation.

    Example:
        >>> from oculi.core.types import ImageInfo, Label
        >>> d = observation_document(Observation(ImageInfo(64, 64), labels=(Label("espresso", 0.8),)))
        >>> "coffee" in d.doc and "espresso" in d.summary
        True
    """
    cap = caption if caption is not None else describe(obs)
    labels = tuple(lab.name for i, lab in enumerate(obs.labels) if i == 0 or lab.score >= LABEL_KEEP)
    label_phrases = [", ".join(label_words(lab.name)) for i, lab in enumerate(obs.labels) if i == 0 or lab.score >= LABEL_DOC]
    counts = obs.counts()
    objects = tuple(counts)
    terms: list[str] = []
    phrases: list[str] = []
    for lab, n in counts.items():
        terms.append(lab)
        colours = sorted({o.colour for o in obs.objects_of(lab) if o.colour})
        for c in colours:
            terms.append(f"{c} {lab}")
        fines = sorted({gloss(f.name) for o in obs.objects_of(lab) if (f := fine_name(o)) and f.score >= LABEL_HEDGED})
        details = (colours if lab not in ("person", "face") else []) + fines  # "brown, Egyptian cat"
        col = f" ({', '.join(details)})" if details else ""
        phrases.append(f"{number_word(n)} {plural(lab, n)}{col}")
    colours_img = tuple(c.name for c in obs.colours)
    text = obs.full_text
    n_words = len(text.split())
    text_kind = ("A document or page with printed text." if len(obs.text) >= 3 or n_words >= 12
                 else "Contains text." if text else "")
    track_ids = tuple(sorted({o.track_id for o in obs.objects if o.track_id is not None}))
    parts = [cap]
    if phrases:
        parts.append("Objects: " + ", ".join(phrases) + ".")
    if label_phrases:
        parts.append("Labels: " + "; ".join(label_phrases) + ".")
    attrs = "; ".join(a.phrase for a in obs.attributes)  # trained heads: "defect type: crack"
    if attrs:
        parts.append(f"Attributes: {attrs}.")
    if colours_img:
        parts.append("Colours: " + ", ".join(colours_img) + ".")
    if text:
        parts.append(text_kind + " Text: " + text[:MAX_DOC_TEXT])
    summary_parts = [cap]
    if attrs and attrs not in cap:
        summary_parts.append(attrs + ".")
    if label_phrases:
        summary_parts.append("; ".join(label_phrases[:3]) + ".")
    if colours_img:
        summary_parts.append("Colours: " + ", ".join(colours_img) + ".")
    if text:
        summary_parts.append(text_kind)
        if text[:MAX_EMBED_TEXT] not in cap:
            summary_parts.append("Text: " + text[:MAX_EMBED_TEXT])
    return Document(
        caption=cap,
        doc="\n".join(parts),
        summary=" ".join(summary_parts),
        labels=labels,
        objects=objects,
        object_terms=tuple(dict.fromkeys(terms)),
        colours=colours_img,
        text=text,
        track_ids=track_ids,
    )
