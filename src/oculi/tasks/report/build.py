"""Building a report from observations, inspection results, footage events and records.

``build_report`` is pure: it takes what perception (and the inspection model) already found,
the parsed records and the footage events, and writes the report's data: per-image findings
with evidence references, cross-checks of each record against the images and the footage,
recommendations, limits, and a summary. Every sentence is composed from those facts and then
passes the grounding check (``grounding.py``); ``create_report`` in ``__init__`` runs the
models first.

Severity rules: an inspection failure is ``high`` when the anomaly score is at least 1.5 × the
threshold, else ``medium``; a record contradicted by the images is ``high`` when it concerns a
pass/fail verdict or a time (a closed gate with a person after closing), ``medium`` when a
different object of the same kind is seen instead; ``low`` when the object a record names was
not detected; everything else ``info``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Callable, Sequence

from oculi.core.labels import CATEGORY_MEMBERS, imagenet_to_coco
from oculi.core.types import SCHEMA_VERSION, Box, Observation
from oculi.language.describe import LABEL_HEDGED
from oculi.language.vocab import number_word, plural
from oculi.tasks.report.evidence import (
    SEVERITY_ORDER,
    CheckStatus,
    CrossCheck,
    EvidenceKind,
    EvidenceRef,
    Finding,
    Severity,
)
from oculi.tasks.report.claims import ClaimEvidence, EmbedFn, add_image_verdict, claim_problems, evidence_from_vocabulary
from oculi.tasks.report.grounding import (
    Rejection,
    Vocabulary,
    ground_text,
    label_table,
    labels_in,
    split_sentences,
    vocabulary_from,
)
from oculi.tasks.report.records import Record, Records

REPORT_SCHEMA = "oculi.report/1"
KINDS = ("inspection", "incident", "medical", "general")
MIN_OBJECT_SCORE = 0.3
HIGH_RATIO = 1.5
_CLOSED = re.compile(r"\b(closed|locked|shut|secured|no one|nobody|empty|vacant|cleared|left the site)\b", re.I)
_NEGATED = re.compile(r"\b(no|not|without|never|nor)\s+(a\s+|an\s+|any\s+)?$", re.I)

TITLES = {
    "inspection": "Inspection report",
    "incident": "Incident report",
    "medical": "Preliminary imaging report — not a diagnosis",
    "general": "Image report",
}

MEDICAL_NOTICE = ("This is a preliminary, machine-generated summary of what general-purpose image models detected. "
                  "It is not a diagnosis and must be reviewed by a clinician before any decision.")

# A narrator rewrites the summary in better prose (a configured VLM/LLM); its text is grounded
# like everything else and its claims checked (claims.py), so it can only drop facts, never add them.
# A narrator may carry the name of its model as ``.model`` (``chat_narrator`` does): the report
# names it in ``narrator`` when its prose became the summary.
Narrator = Callable[["Report"], str]


@dataclass
class ReportImage:
    """One image of the report: its observation, its inspection result and its findings."""

    id: str
    path: str
    observation: Observation
    inspection: dict[str, Any] | None = None
    heatmap: Any = None  # HxW float32 0..1, drawn on the annotated image
    findings: list[Finding] = field(default_factory=list)
    image: Any = None  # the decoded PIL image, for annotation; not serialised
    caption: str | None = None  # the describe backend's caption of the observation (grounded like the rest)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def severity(self) -> Severity:
        return min((f.severity for f in self.findings), key=SEVERITY_ORDER.__getitem__, default=Severity.NONE)

    def to_dict(self) -> dict[str, Any]:
        obs = self.observation.to_dict()
        d: dict[str, Any] = {
            "id": self.id, "path": self.path, "name": self.name, "width": self.observation.image.width,
            "height": self.observation.image.height, "sha256": self.observation.image.sha256,
            "severity": self.severity.value, "caption": self.caption,
            "observation": {k: obs[k] for k in ("objects", "counts", "labels", "text", "colours", "models")},
            "inspection": self.inspection, "findings": [f.to_dict() for f in self.findings],
        }
        if "attributes" in obs:
            d["observation"]["attributes"] = obs["attributes"]
        return d


@dataclass
class Report:
    """A report's data; ``to_dict`` is the ``oculi.report/1`` JSON form (docs/SCHEMAS.md)."""

    kind: str
    title: str
    created: str
    summary: list[str]
    images: list[ReportImage]
    cross_checks: list[CrossCheck]
    recommendations: list[str]
    limits: list[str]
    records: Records | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    inspector: str | None = None
    model: str | None = None
    warnings: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    notice: str | None = None
    narrator: str | None = None  # the model whose prose is the summary; None: the template's summary
    evidence_vocabulary: Vocabulary | None = field(default=None, repr=False)  # what the grounding check read; not serialised

    @property
    def severity(self) -> Severity:
        levels = [i.severity for i in self.images] + [c.severity for c in self.cross_checks]
        return min(levels, key=SEVERITY_ORDER.__getitem__, default=Severity.NONE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA, "schema_version": SCHEMA_VERSION, "kind": self.kind, "title": self.title, "created": self.created,
            "severity": self.severity.value, "notice": self.notice, "inspector": self.inspector, "model": self.model,
            "narrator": self.narrator,
            "summary": list(self.summary), "images": [i.to_dict() for i in self.images],
            "records": self.records.to_dict() if self.records else None,
            "events": list(self.events),
            "cross_checks": [c.to_dict() for c in self.cross_checks],
            "recommendations": list(self.recommendations), "limits": list(self.limits),
            "warnings": list(self.warnings),
            "grounding": {"checked": True, "rejected": [r.to_dict() for r in self.rejected]},
        }


# --- findings ----------------------------------------------------------------------------------
def _where(box: Box, w: int, h: int) -> str:
    cx, cy = box.center
    col = "left" if cx < w / 3 else "right" if cx > 2 * w / 3 else "centre"
    row = "upper" if cy < h / 3 else "lower" if cy > 2 * h / 3 else "middle"
    return "centre" if (row, col) == ("middle", "centre") else f"{row} {col}"


def _object_findings(im: ReportImage, kind: str) -> list[Finding]:
    obs = im.observation
    out = []
    by_label: dict[str, list[Any]] = {}
    for o in obs.objects:
        if o.score >= MIN_OBJECT_SCORE:
            by_label.setdefault(o.label, []).append(o)
    for label, objs in sorted(by_label.items(), key=lambda kv: -max(o.score for o in kv[1])):
        n = len(objs)
        noun = ("person" if n == 1 else "people") if label == "person" else plural(label, n)
        places = ", ".join(f"{_where(o.box, obs.image.width, obs.image.height)} (score {o.score:.2f})" for o in objs[:4])
        text = f"{number_word(n).capitalize()} {noun} detected: {places}."
        sev = Severity.INFO
        ev = tuple(EvidenceRef(EvidenceKind.OBJECT, f"{o.label} {o.score:.2f}", image=im.id, region=o.box, score=o.score)
                   for o in objs)
        out.append(Finding(f"{im.id}-f{len(out) + 1}", im.id, EvidenceKind.OBJECT, text, sev, ev))
    if obs.text:
        lines = [t for t in obs.text if t.text.strip()]
        if lines:
            quoted = "; ".join(f"\u201c{t.text.strip()}\u201d" for t in lines[:6])
            more = f" (and {len(lines) - 6} more lines)" if len(lines) > 6 else ""
            ev = tuple(EvidenceRef(EvidenceKind.TEXT, t.text.strip()[:80], image=im.id, region=t.box, text_line=i, score=t.score)
                       for i, t in enumerate(obs.text) if t.text.strip())
            out.append(Finding(f"{im.id}-f{len(out) + 1}", im.id, EvidenceKind.TEXT, f"Text read: {quoted}{more}.",
                               Severity.INFO, ev))
    if obs.labels and kind not in ("medical", "inspection") and obs.labels[0].score >= MIN_OBJECT_SCORE:
        top = obs.labels[0]
        out.append(Finding(f"{im.id}-f{len(out) + 1}", im.id, EvidenceKind.LABEL,
                           f"Best whole-image label: {top.name} (score {top.score:.2f}).", Severity.INFO,
                           (EvidenceRef(EvidenceKind.LABEL, top.name, image=im.id, score=top.score),)))
    for a in obs.attributes:
        out.append(Finding(f"{im.id}-f{len(out) + 1}", im.id, EvidenceKind.LABEL,
                           f"Trained head {a.head}: {a.value} (score {a.score:.2f}).", Severity.INFO,
                           (EvidenceRef(EvidenceKind.LABEL, f"{a.head}: {a.value}", image=im.id, score=a.score),)))
    return out


def _inspection_findings(im: ReportImage, kind: str) -> list[Finding]:
    ins = im.inspection
    if not ins:
        return []
    score, thr = float(ins["score"]), float(ins["threshold"])
    passed = bool(ins.get("pass", ins.get("passed")))
    regions = ins.get("regions") or []
    ev = [EvidenceRef(EvidenceKind.ANOMALY, f"score {score:.2f} vs threshold {thr:.2f}", image=im.id, score=score)]
    for k, r in enumerate(regions, 1):
        ev.append(EvidenceRef(EvidenceKind.ANOMALY, f"region #{k}: {r.get('description') or r.get('position') or 'anomaly'}",
                              image=im.id, region=Box.from_list(r["box"]), score=r.get("peak")))
    typ = f" (inspected as {ins['class']})" if ins.get("class") else ""  # an inspector of several product types
    if passed:
        text = f"Passed{typ}: anomaly score {score:.2f} is below the threshold {thr:.2f}."
        sev = Severity.NONE
    else:
        # the inspector's one-liner without its own "; score x vs threshold y" (said just before)
        finding = re.sub(r";?\s*score [0-9.]+ vs threshold [0-9.]+\s*$", "", (ins.get("finding") or "").strip().rstrip("."))
        noun = "differs from the reference set" if kind == "medical" else "failed inspection"
        text = f"The image {noun}{typ}: anomaly score {score:.2f} against the threshold {thr:.2f}" + (
            f"; {finding}." if finding else ".")
        sev = Severity.HIGH if score >= HIGH_RATIO * thr else Severity.MEDIUM
        if kind == "medical":
            sev = Severity.MEDIUM
    return [Finding(f"{im.id}-a1", im.id, EvidenceKind.ANOMALY, text, sev, tuple(ev))]


# --- cross-checks ------------------------------------------------------------------------------
def _quote(r: Record, n: int = 120) -> str:
    t = " ".join(r.text.split())
    return "\u201c" + (t if len(t) <= n else t[: n - 1] + "\u2026") + "\u201d"


def _category(label: str) -> str | None:
    return next((c for c, members in CATEGORY_MEMBERS.items() if label in members), None)


def _seen(im: ReportImage) -> set[str]:
    s = {o.label for o in im.observation.objects if o.score >= MIN_OBJECT_SCORE}
    for lab in im.observation.labels[:3]:
        c = imagenet_to_coco(lab.name)
        if c and lab.score >= MIN_OBJECT_SCORE:
            s.add(c)
    return s


def _obj_refs(im: ReportImage, label: str) -> tuple[EvidenceRef, ...]:
    return tuple(EvidenceRef(EvidenceKind.OBJECT, f"{o.label} {o.score:.2f}", image=im.id, region=o.box, score=o.score)
                 for o in im.observation.objects if o.label == label and o.score >= MIN_OBJECT_SCORE)


def _names(label: str, n: int = 1) -> str:
    return ("person" if n == 1 else "people") if label == "person" else plural(label, n)


def _check_status(r: Record, ims: list[ReportImage], rec_ref: EvidenceRef) -> list[CrossCheck]:
    out = []
    for im in ims:
        ins = im.inspection
        if not ins or r.status is None:
            continue
        passed = bool(ins.get("pass", ins.get("passed")))
        score, thr = float(ins["score"]), float(ins["threshold"])
        ev = (rec_ref, EvidenceRef(EvidenceKind.ANOMALY, f"anomaly score {score:.2f} vs threshold {thr:.2f}", image=im.id,
                                   score=score))
        ev += tuple(EvidenceRef(EvidenceKind.ANOMALY, f"region #{k}", image=im.id, region=Box.from_list(x["box"]))
                    for k, x in enumerate(ins.get("regions") or [], 1))
        if r.status == "passed" and not passed:
            out.append(CrossCheck(r.id, CheckStatus.CONFLICT, f"The record says {_quote(r)}, but {im.name} shows an anomaly "
                                  f"(score {score:.2f} against the threshold {thr:.2f}).", "passed", (im.id,), ev, Severity.HIGH))
        elif r.status == "failed" and passed:
            out.append(CrossCheck(r.id, CheckStatus.CONFLICT, f"The record says {_quote(r)}, but the anomaly model found "
                                  f"nothing above the threshold in {im.name} (score {score:.2f} against {thr:.2f}).",
                                  "failed", (im.id,), ev, Severity.MEDIUM))
        else:
            out.append(CrossCheck(r.id, CheckStatus.CONSISTENT, f"The record says {_quote(r)}; the inspection of {im.name} "
                                  f"agrees (score {score:.2f} against the threshold {thr:.2f}).", r.status, (im.id,), ev,
                                  Severity.INFO))
    return out


def _check_objects(r: Record, ims: list[ReportImage], rec_ref: EvidenceRef) -> list[CrossCheck]:
    out = []
    text = r.text
    for label in sorted(labels_in(text)):
        negated = _negated(text, label)
        present = [im for im in ims if label in _seen(im)]
        names = ", ".join(im.name for im in ims)
        if negated:
            if present:
                ev = (rec_ref,) + tuple(e for im in present for e in _obj_refs(im, label))
                out.append(CrossCheck(r.id, CheckStatus.CONFLICT, f"The record says {_quote(r)}, but a {label} is detected in "
                                      f"{', '.join(im.name for im in present)}.", f"no {label}",
                                      tuple(im.id for im in present), ev, Severity.MEDIUM))
            else:
                out.append(CrossCheck(r.id, CheckStatus.CONSISTENT, f"The record says {_quote(r)}; no {label} is detected in "
                                      f"{names}.", f"no {label}", tuple(im.id for im in ims), (rec_ref,), Severity.INFO))
            continue
        if present:
            ev = (rec_ref,) + tuple(e for im in present for e in _obj_refs(im, label))
            said = _count(text, label)
            seen_n = sum(len(_obj_refs(im, label)) for im in present)
            where = ", ".join(im.name for im in present)
            if said is not None and seen_n and said != seen_n:
                status, sev = (CheckStatus.CONFLICT, Severity.MEDIUM) if seen_n > said else (CheckStatus.UNVERIFIABLE, Severity.LOW)
                out.append(CrossCheck(r.id, status, f"The record says {_quote(r)}, but {number_word(seen_n)} "
                                      f"{_names(label, seen_n)} {'is' if seen_n == 1 else 'are'} detected in {where}.",
                                      f"{said} {label}", tuple(im.id for im in present), ev, sev, counts=(seen_n, said)))
                continue
            out.append(CrossCheck(r.id, CheckStatus.CONSISTENT, f"The record mentions a {label}; one is detected in "
                                  f"{where}.", label, tuple(im.id for im in present), ev, Severity.INFO))
            continue
        cat = _category(label)
        instead = sorted({(im.id, s) for im in ims for s in _seen(im) if cat and s != label and _category(s) == cat})
        if instead:
            by_id = {im.id: im for im in ims}
            shown = ", ".join(f"a {s} in {by_id[i].name}" for i, s in instead)
            ev = (rec_ref,) + tuple(e for i, s in instead for e in _obj_refs(by_id[i], s))
            out.append(CrossCheck(r.id, CheckStatus.CONFLICT, f"The record mentions a {label}, but the images show {shown} "
                                  f"and no {label}.", label, tuple(i for i, _ in instead), ev, Severity.MEDIUM))
        else:
            out.append(CrossCheck(r.id, CheckStatus.UNVERIFIABLE, f"The record mentions a {label}; no {label} is detected in "
                                  f"{names}.", label, tuple(im.id for im in ims), (rec_ref,), Severity.LOW))
    return out


_RECORD_QUOTE = re.compile(r"[\"“]([^\"“”]{2,80})[\"”]")


def _check_text(r: Record, ims: list[ReportImage], rec_ref: EvidenceRef) -> list[CrossCheck]:
    """A quoted text in a record (``label reads "SN 4711-B"``) against the text the images read."""
    out = []
    for q in _RECORD_QUOTE.findall(r.text):
        want = " ".join(q.lower().split())
        hits = [(im, i, t) for im in ims for i, t in enumerate(im.observation.text) if want in " ".join(t.text.lower().split())]
        if hits:
            ev = (rec_ref,) + tuple(EvidenceRef(EvidenceKind.TEXT, t.text.strip()[:80], image=im.id, region=t.box, text_line=i,
                                                score=t.score) for im, i, t in hits)
            out.append(CrossCheck(r.id, CheckStatus.CONSISTENT, f"The record quotes \u201c{q}\u201d; the same text is read in "
                                  f"{', '.join(dict.fromkeys(im.name for im, _, _ in hits))}.", "text",
                                  tuple(dict.fromkeys(im.id for im, _, _ in hits)), ev, Severity.INFO))
        elif any(im.observation.text for im in ims):
            out.append(CrossCheck(r.id, CheckStatus.CONFLICT, f"The record quotes \u201c{q}\u201d, but the text read in "
                                  f"{', '.join(im.name for im in ims if im.observation.text)} does not contain it.", "text",
                                  tuple(im.id for im in ims if im.observation.text), (rec_ref,), Severity.MEDIUM))
        else:
            out.append(CrossCheck(r.id, CheckStatus.UNVERIFIABLE, f"The record quotes \u201c{q}\u201d; no text is read in "
                                  f"{', '.join(im.name for im in ims)}.", "text", tuple(im.id for im in ims), (rec_ref,),
                                  Severity.LOW))
    return out


_COUNT_WORDS = {w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                             "ten", "eleven", "twelve"))}


def _count(text: str, label: str) -> int | None:
    """The number a record puts before a word for ``label`` (``two people`` → 2), if any."""
    low = text.lower()
    for w in (w for w, c in label_table().items() if c == label):
        m = re.search(rf"\b(\d+|{'|'.join(_COUNT_WORDS)})\s+(?:\w+\s+)?{re.escape(w)}\b", low)
        if m:
            g = m.group(1)
            return int(g) if g.isdigit() else _COUNT_WORDS[g]
    return None


def _negated(text: str, label: str) -> bool:
    low = text.lower()
    for w in (w for w, c in label_table().items() if c == label):
        for m in re.finditer(rf"\b{re.escape(w)}\b", low):
            if _NEGATED.search(low[: m.start()]):
                return True
    return False


def _check_time(r: Record, events: list[dict[str, Any]], tz: tzinfo, rec_ref: EvidenceRef) -> list[CrossCheck]:
    if r.time is None or not _CLOSED.search(r.text) or not events:
        return []
    day_end = datetime.fromtimestamp(r.time, tz).replace(hour=23, minute=59, second=59).timestamp()
    after = [e for e in events if e["label"] == "person" and r.time < e["start_time"] <= day_end
             and e["type"] in ("appear", "zone_enter", "loitering", "dwell")]
    if not after:
        return [CrossCheck(r.id, CheckStatus.CONSISTENT, f"The record says {_quote(r)}; no person appears in the footage "
                           f"after {r.time_text}.", f"closed at {r.time_text}", (), (rec_ref,), Severity.INFO)]
    first = after[0]
    ev = (rec_ref,) + tuple(EvidenceRef(EvidenceKind.EVENT, f"{e['type']} {e['label']} at {e['time']}",
                                        region=Box.from_list(e["box"]) if e.get("box") else None,
                                        frame={"camera": e["camera"], "source_id": e["source_id"], "time": e["time"],
                                               "keyframe": e.get("keyframe")}) for e in after[:5])
    more = f" ({len(after)} such events in all)" if len(after) > 1 else ""
    return [CrossCheck(r.id, CheckStatus.CONFLICT, f"The record says {_quote(r)}, but footage from {first['camera']} shows a "
                       f"person at {first['time']} (track {first['track_id']}){more}.", f"closed at {r.time_text}", (), ev,
                       Severity.HIGH, counts=(len(after),))]


def event_dict(e: Any, tz: tzinfo) -> dict[str, Any]:
    """A footage ``EventRecord`` as the report shows it (time as ``HH:MM`` in ``tz``)."""
    t = datetime.fromtimestamp(e.start_time, tz)
    return {"id": e.id, "camera": e.camera, "source_id": e.source_id, "type": e.type, "label": e.label,
            "track_id": e.track_id, "zone": e.zone, "start_time": e.start_time, "end_time": e.end_time,
            "time": t.strftime("%H:%M"), "date": t.date().isoformat(), "keyframe": e.keyframe, "box": e.box}


# --- the report --------------------------------------------------------------------------------
def build_report(
    images: Sequence[ReportImage],
    *,
    kind: str = "general",
    records: Records | None = None,
    events: Sequence[Any] = (),
    tz: tzinfo = timezone.utc,
    title: str | None = None,
    inspector: str | None = None,
    model: str | None = None,
    warnings: Sequence[str] = (),
    narrator: Narrator | None = None,
    created: datetime | None = None,
    notes: Sequence[str] = (),
    embed: EmbedFn | None = None,
) -> Report:
    """Compose a report from images already observed (and inspected).

    Args:
        images: The images with their observations (and inspection results); ids ``img1``...
        kind: ``inspection``, ``incident``, ``medical`` or ``general``.
        records: Parsed and linked records (``records.link_records``), or ``None``.
        events: Footage ``EventRecord``s (or dicts from ``event_dict``) to check times against.
        tz: Time zone for footage times.
        title: Overrides the kind's default title.
        inspector: The inspection model's name, when one ran.
        model: The perception model's name (shown in the report).
        warnings: Problems met before building (bad images, unmatched records).
        narrator: Optional prose writer for the summary; its text is grounded like the rest.
        notes: More limits (what the inspection model's card warns about).
        embed: A sentence encoder (``Engine.embed_texts``) for the claim check of the narrator's
            prose (``claims.py``); without one only its words are checked.

    Returns:
        The ``Report``; sentences that failed the grounding check are in ``report.rejected``.
    """
    if kind not in KINDS:
        from oculi.core.errors import InputError

        raise InputError(f"unknown report kind {kind!r}; use one of {', '.join(KINDS)}")
    ims = list(images)
    evs = [e if isinstance(e, dict) else event_dict(e, tz) for e in events]
    recs = records.records if records else []
    all_warnings = list(warnings) + (list(records.warnings) if records else [])
    for im in ims:
        im.findings = _inspection_findings(im, kind) + _object_findings(im, kind)
    by_id = {im.id: im for im in ims}
    checks: list[CrossCheck] = []
    for r in recs:
        rec_ref = EvidenceRef(EvidenceKind.RECORD, f"line {r.line}", record=r.id)
        linked = [by_id[i] for i in r.images if i in by_id]
        if r.image_refs and not linked:
            checks.append(CrossCheck(r.id, CheckStatus.UNVERIFIABLE, f"The record {_quote(r)} refers to an image that is not "
                                     f"in this report.", "image", (), (rec_ref,), Severity.LOW))
            continue
        targets = linked or ims
        if r.time is None and r.time_text and evs and _CLOSED.search(r.text):
            all_warnings.append(f"record {r.id} (line {r.line}) gives the time {r.time_text} without a date; name the day "
                                f"(--day YYYY-MM-DD) to check it against the footage")
        found = (_check_status(r, targets, rec_ref) + _check_objects(r, targets, rec_ref) + _check_text(r, targets, rec_ref)
                 + _check_time(r, evs, tz, rec_ref))
        checks += found
    rejected: list[Rejection] = []
    vocab = vocabulary_from([im.observation for im in ims], [im.inspection for im in ims if im.inspection], recs, evs,
                            [im.name for im in ims] + [im.path for im in ims] + [inspector or "", model or ""],
                            seen_labels={s for im in ims for s in _seen(im)})
    vocab.add_count(len(ims))
    vocab.add_count(len(recs))
    for lab in {o.label for im in ims for o in im.observation.objects}:  # images a label was seen in
        vocab.add_count(sum(1 for im in ims if any(o.label == lab and o.score >= MIN_OBJECT_SCORE for o in im.observation.objects)))
    for im in ims:  # objects of a label above the report's score floor
        for lab in {o.label for o in im.observation.objects}:
            vocab.add_count(sum(1 for o in im.observation.objects if o.label == lab and o.score >= MIN_OBJECT_SCORE))
    for c in checks:
        for n in c.counts:
            vocab.add_count(n)
    for im in ims:
        if im.caption:
            im.caption = ground_text(im.caption, vocab, f"caption of {im.id}", rejected) or None
        im.findings = [f for f in im.findings if _keep(f.text, vocab, f"finding {f.id}", rejected)]
    checks = [c for c in checks if _keep(c.text, vocab, f"cross-check of {c.record}", rejected)]
    for c in (CheckStatus.CONFLICT, CheckStatus.CONSISTENT, CheckStatus.UNVERIFIABLE):
        vocab.add_count(sum(1 for x in checks if x.status == c))
    failed = [im for im in ims if im.inspection and not bool(im.inspection.get("pass", im.inspection.get("passed")))]
    vocab.add_count(len(failed))
    vocab.add_count(sum(1 for im in ims if im.inspection))
    recommendations = [s for s in _recommendations(kind, ims, checks, failed) if _keep(s, vocab, "recommendation", rejected)]
    limits = _limits(kind, ims, recs, checks, inspector) + list(notes)
    summary = [s for s in _summary(kind, ims, recs, checks, failed, evs) if _keep(s, vocab, "summary", rejected)]
    rep = Report(kind=kind, title=title or TITLES[kind], created=(created or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
                 summary=summary, images=ims, cross_checks=checks, recommendations=recommendations, limits=limits,
                 records=records, events=evs, inspector=inspector, model=model, warnings=all_warnings, rejected=rejected,
                 notice=MEDICAL_NOTICE if kind == "medical" else None, evidence_vocabulary=vocab)
    _check_captions(rep, vocab, embed)
    if narrator is not None:
        _narrate(rep, narrator, vocab, embed)
    return rep


def report_verdicts(rep: Report) -> set[str]:
    """The verdicts ``rep`` reaches: its cross-checks' statuses and ``passed``/``failed`` inspections."""
    return {c.status.value for c in rep.cross_checks} | {
        "passed" if bool(im.inspection.get("pass", im.inspection.get("passed"))) else "failed" for im in rep.images if im.inspection}


def report_claim_evidence(rep: Report, vocab: Vocabulary, embed: EmbedFn | None = None, *,
                          captions: bool = True, statements: bool = True) -> ClaimEvidence:
    """What a model writing about ``rep`` may claim: the words of what perception found (not of
    the records: their words may be used only when attributed to a record), the seen labels,
    the report's vocabulary for what it covers, and its grounded statements (summary, findings,
    cross-checks, recommendations, limits, and the captions unless ``captions=False``; none with
    ``statements=False``) for the words and the similarity test."""
    recs = rep.records.records if rep.records else []
    names = [im.name for im in rep.images] + [im.path for im in rep.images] + [rep.inspector or "", rep.model or ""]
    seen = vocabulary_from([im.observation for im in rep.images], [im.inspection for im in rep.images if im.inspection], [],
                           rep.events, names, seen_labels=vocab.seen_labels)
    said = [r.text for r in recs] + [str(v) for r in recs for v in r.fields.values()] + [x for r in recs for x in r.image_refs]
    facts = (list(rep.summary) + [f.text for im in rep.images for f in im.findings]
             + ([im.caption for im in rep.images if im.caption] if captions else []) + [c.text for c in rep.cross_checks]
             + list(rep.recommendations) + list(rep.limits) + ([rep.notice] if rep.notice else [])) if statements else []
    ev = evidence_from_vocabulary(seen, facts, said_text=said, said_labels=vocab.said_labels - vocab.seen_labels,
                                  said_statements=[r.text for r in recs] if statements else [],
                                  inspection=any(im.inspection for im in rep.images),
                                  footage=bool(rep.events) or any(r.time_text for r in recs),
                                  medical=rep.kind == "medical", embed=embed)
    ev.verdicts = report_verdicts(rep)
    for im in rep.images:
        if im.inspection:
            add_image_verdict(ev, im.name, bool(im.inspection.get("pass", im.inspection.get("passed"))),
                              float(im.inspection["score"]) if im.inspection.get("score") is not None else None)
    for im in rep.images:  # what the classifier's labels are kinds of (the captions hedge with them)
        for lab in im.observation.labels[:3]:
            if lab.score >= LABEL_HEDGED:
                ev.add_kinds(lab.name)
    return ev


def _check_captions(rep: Report, vocab: Vocabulary, embed: EmbedFn | None) -> None:
    """The describe backend's captions (a configured VLM's, when one describes) pass the claim
    check too, against the evidence and the report's other statements (no caption supports
    another); the number left out goes into the limits."""
    if not any(im.caption for im in rep.images):
        return
    ev = report_claim_evidence(rep, vocab, embed, captions=False)
    left_out = 0
    for im in rep.images:
        if not im.caption:
            continue
        kept = []
        for s in split_sentences(im.caption):
            problems = claim_problems(s, ev)
            if problems:
                rep.rejected.append(Rejection(s, tuple(problems), f"caption of {im.id}"))
                left_out += 1
            else:
                kept.append(s)
        im.caption = " ".join(kept) or None
    if ev.embed_error:
        rep.warnings.append(f"the sentence encoder failed ({ev.embed_error}); captions were checked word by word only")
    if left_out:
        rep.limits.append(f"{left_out} {plural('sentence', left_out)} of the image captions {'was' if left_out == 1 else 'were'} "
                          f"left out: not supported by the evidence (listed under grounding.rejected in the JSON form).")


def _narrate(rep: Report, narrator: Narrator, vocab: Vocabulary, embed: EmbedFn | None) -> None:
    """Replace the summary with the narrator's prose, keeping only sentences that pass both the
    grounding check and the claim check; the number left out goes into the limits."""
    before = len(rep.rejected)
    prose = ground_text(narrator(rep), vocab, "narrator", rep.rejected)
    if prose:
        ev = report_claim_evidence(rep, vocab, embed)
        kept = []
        for s in split_sentences(prose):
            problems = claim_problems(s, ev)
            if problems:
                rep.rejected.append(Rejection(s, tuple(problems), "narrator"))
            else:
                kept.append(s)
        prose = " ".join(dict.fromkeys(kept))  # a small model repeats itself
        if ev.embed_error:
            rep.warnings.append(f"the sentence encoder failed ({ev.embed_error}); the narrator's sentences were checked "
                                f"word by word only")
    if prose:
        rep.summary = [prose]
        rep.narrator = str(getattr(narrator, "model", None) or "custom")
    left_out = len(rep.rejected) - before
    if left_out:
        rep.limits.append(f"{left_out} {plural('sentence', left_out)} of the narrator model {'was' if left_out == 1 else 'were'} "
                          f"left out: not supported by the evidence (listed under grounding.rejected in the JSON form)"
                          + ("." if prose else "; the summary is the template's."))


def _keep(text: str, vocab: Vocabulary, where: str, rejected: list[Rejection]) -> bool:
    before = len(rejected)
    ground_text(text, vocab, where, rejected)
    return len(rejected) == before


def _summary(kind: str, ims: list[ReportImage], recs: list[Record], checks: list[CrossCheck],
             failed: list[ReportImage], evs: list[dict[str, Any]]) -> list[str]:
    out = []
    n = len(ims)
    what = f"{number_word(n)} {plural('image', n)}"
    if recs:
        what += f" and {number_word(len(recs))} {plural('record', len(recs))}"
    out.append(f"This report covers {what}.")
    inspected = [im for im in ims if im.inspection]
    if inspected:
        out.append(f"{number_word(len(failed)).capitalize()} of {number_word(len(inspected))} inspected "
                   f"{plural('image', len(inspected))} {'differ' if kind == 'medical' else 'failed'}"
                   f"{' from the reference set' if kind == 'medical' else ' inspection'}." if failed else
                   f"All {number_word(len(inspected))} inspected {plural('image', len(inspected))} passed.")
    seen: dict[str, int] = {}
    for im in ims:
        for lab in sorted({o.label for o in im.observation.objects if o.score >= MIN_OBJECT_SCORE}):
            seen[lab] = seen.get(lab, 0) + 1
    if seen and kind != "medical":
        parts = [f"{_names(lab)} in {number_word(k)} {plural('image', k)}" for lab, k in sorted(seen.items(), key=lambda kv: -kv[1])[:6]]
        out.append("Detected: " + ", ".join(parts) + ".")
    conflicts = [c for c in checks if c.status == CheckStatus.CONFLICT]
    if recs:
        out.append(f"{number_word(len(conflicts)).capitalize()} {plural('record', len(conflicts))} "
                   f"{'is' if len(conflicts) == 1 else 'are'} contradicted by the images or footage." if conflicts else
                   "No record is contradicted by the images or footage.")
    if kind == "medical":
        out.append("No clinical finding is made: the models are not trained on medical images.")
    return out


def _recommendations(kind: str, ims: list[ReportImage], checks: list[CrossCheck], failed: list[ReportImage]) -> list[str]:
    out = []
    for c in checks:
        if c.status != CheckStatus.CONFLICT:
            continue
        if c.claim == "passed":
            out.append(f"Hold the part shown in {', '.join(_name(ims, i) for i in c.images)} and re-inspect it: "
                       f"its record says it passed.")
        elif c.claim.startswith("closed at"):
            out.append("Review the footage events after closing time and the gate log together.")
        else:
            out.append(f"Correct or confirm the record on {', '.join(_name(ims, i) for i in c.images) or 'the footage'}.")
    for im in failed:
        if kind == "medical":
            out.append(f"Have a clinician look at the highlighted regions of {im.name}.")
        elif not any(c.claim == "passed" and im.id in c.images for c in checks):
            out.append(f"Check the part shown in {im.name} by hand: the marked regions are where it differs from good parts.")
    if kind == "medical":
        out.append("Have a clinician review every image before any decision.")
    if not out:
        out.append("No action needed from what the images and records show.")
    return list(dict.fromkeys(out))


def _name(ims: list[ReportImage], iid: str) -> str:
    return next((im.name for im in ims if im.id == iid), iid)


def _limits(kind: str, ims: list[ReportImage], recs: list[Record], checks: list[CrossCheck], inspector: str | None) -> list[str]:
    out = ["Objects come from a detector that knows 80 everyday object classes; whole-image labels from a classifier "
           "of 1000 ImageNet classes; text from OCR. Anything outside those is not reported, and a missed detection "
           "is possible: the absence of a detection is weaker evidence than a detection."]
    if kind == "inspection" and not inspector:
        out.append("No inspection model was named (--inspector), so no image was scored for defects.")
    if inspector:
        out.append(f"Anomaly scores come from the inspection model {inspector!r}, which learnt only what good parts look "
                   f"like; its threshold was calibrated on good images, so it flags any difference, not a defect type.")
    unver = sum(1 for c in checks if c.status == CheckStatus.UNVERIFIABLE)
    if unver:
        out.append(f"{unver} record claim(s) could not be checked against the images.")
    if recs and not checks:
        out.append("No record named anything the models can check (an object class, a pass/fail verdict, or a time "
                   "with footage).")
    if kind == "medical":
        out.append(MEDICAL_NOTICE)
        out.append("General-purpose models cannot recognise anatomy, lesions or disease; this report states only what "
                   "they detected.")
    if kind == "incident":
        out.append("Times come from the footage and the records as written; clocks that disagree shift every comparison.")
    return out
