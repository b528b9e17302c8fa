"""Reports: images + records (+ inspection results, + footage events) → a report a person acts on.

``create_report`` observes the images with the vision models, runs the named inspection
model when there is one, reads and links the records, fetches the footage events to check
times against, and composes the report (``build.build_report``); ``render.write_report``
writes it as Markdown, HTML, PDF or JSON (``oculi.report/1``). Every statement points at its
evidence (``evidence.EvidenceRef``) and passes the grounding check (``grounding``).

Example:
    >>> from oculi import Engine
    >>> from oculi.tasks.report import create_report, write_report
    >>> rep = create_report(Engine(), ["sofa.jpg"], records="notes.md", kind="general")  # doctest: +SKIP
    >>> [c.status.value for c in rep.cross_checks]  # doctest: +SKIP
    ['conflict']
    >>> write_report(rep, "pdf", "report.pdf")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from datetime import date, timezone, tzinfo
from pathlib import Path
from typing import Any, Callable, Sequence

from oculi.core.errors import InputError, OculiError
from oculi.tasks.report.build import KINDS, REPORT_SCHEMA, Narrator, Report, ReportImage, build_report, event_dict
from oculi.tasks.report.evidence import CheckStatus, CrossCheck, EvidenceKind, EvidenceRef, Finding, Severity
from oculi.tasks.report.records import Records, link_records, parse_records, read_records
from oculi.tasks.report.render import FORMATS, write_report

__all__ = [
    "FORMATS", "KINDS", "REPORT_SCHEMA", "CheckStatus", "CrossCheck", "EvidenceKind", "EvidenceRef", "Finding",
    "Narrator", "Records", "Report", "ReportImage", "Severity", "build_report", "create_report", "event_dict",
    "parse_records", "read_records", "write_report",
]

log = logging.getLogger("oculi.report")
MAX_REPORT_IMAGES = 200

# progress(done, total, what)
ProgressFn = Callable[[int, int, str], None]
# inspect(paths, name, errors) -> results with .path/.score/.threshold/.passed/.regions/.heatmap/.finding/
# .to_dict(); an image it cannot use is appended to errors as (path, message)
InspectFn = Callable[[Sequence[str], str, list], Sequence[Any]]


def _inspection_dict(res: Any) -> dict[str, Any]:
    d = dict(res.to_dict()) if hasattr(res, "to_dict") else dict(res)
    d.pop("heatmap", None)
    if "pass" not in d and "passed" in d:
        d["pass"] = d.pop("passed")
    return d


def default_inspect(settings: Any) -> InspectFn:
    """The inspection task (``oculi.tasks.inspect.inspect_images``) bound to ``settings``; an
    image it cannot use (unreadable, shaped unlike the good parts) lands in ``errors``.

    Raises:
        ConfigError: this build has no inspection task.
    """
    def run(paths: Sequence[str], name: str, errors: list) -> Sequence[Any]:
        try:
            from oculi.tasks.inspect import inspect_images
        except ImportError:
            from oculi.core.errors import ConfigError

            raise ConfigError("--inspector needs the inspection task (oculi inspect), which this build does not have") from None
        return inspect_images(list(paths), name, settings=settings, errors=errors)

    run.settings = settings  # type: ignore[attr-defined]  # whose model card the report's limits quote
    return run


def inspector_notes(settings: Any, name: str) -> list[str]:
    """What the inspector's model card warns about (fitted on few images, a threshold from few
    held-out scores), for the report's limits; empty when it cannot be read."""
    try:
        from oculi.tasks.inspect import load_inspector

        card = load_inspector(name, settings).card
    except (ImportError, OculiError):
        return []
    return [f"Inspection model {name!r}: {w}" for w in getattr(card, "warnings", []) or []]


NARRATOR_PROMPT = (
    "You write the summary of a {kind} report. Rewrite the facts below as three or four plain sentences for a "
    "person who must act on them. Use only these facts: add no number, name, object or time that is not in them, "
    "and say nothing about what is not listed: no condition, cause, state or judgement the facts do not state. "
    "Sentences that bring in anything else are removed.")


def chat_narrator(engine: Any, model: str) -> Narrator:
    """A narrator that asks the configured chat model ``model`` to rewrite the report's facts
    as a summary (``engine.chat``); what it writes is grounded like every other sentence, and a
    model that fails leaves the template summary."""
    def narrate(rep: Report) -> str:
        from oculi.backends.base import ChatMessage, ChatOptions, ChatPart

        facts = list(rep.summary) + [f.text for im in rep.images for f in im.findings] + [c.text for c in rep.cross_checks]
        msgs = [ChatMessage("system", [ChatPart("text", text=NARRATOR_PROMPT.format(kind=rep.kind))]),
                ChatMessage("user", [ChatPart("text", text="\n".join(f"- {x}" for x in facts))])]
        try:
            return engine.chat(msgs, ChatOptions(max_tokens=300, temperature=0.0), model=model).text
        except OculiError as e:
            rep.warnings.append(f"the narrator model {model!r} failed ({e}); the summary is the template's")
            return ""

    narrate.model = model  # type: ignore[attr-defined]  # named in the report's ``narrator``
    return narrate


def create_report(
    vision: Any,
    images: Sequence[str | Path],
    *,
    kind: str = "general",
    records: str | Path | Records | None = None,
    records_encoding: str | None = None,
    inspector: str | None = None,
    inspect: InspectFn | None = None,
    events: Sequence[Any] = (),
    day: date | None = None,
    tz: tzinfo = timezone.utc,
    title: str | None = None,
    model: str | None = None,
    narrator: Narrator | None = None,
    ocr: bool = True,
    progress: ProgressFn | None = None,
) -> Report:
    """Observe ``images`` and compose the report.

    Args:
        vision: An ``Engine`` (anything with ``observe_many`` and ``settings``).
        images: Image files. A file that cannot be read is left out with a warning; none
            readable is an error.
        kind: ``inspection``, ``incident``, ``medical`` or ``general``.
        records: A records file (``.csv``, ``.json``, ``.md``) or parsed ``Records``.
        records_encoding: The records' encoding when it is not UTF-8.
        inspector: Name of a fitted inspection model (``oculi inspect fit --name``).
        inspect: How to run it (default: ``oculi.tasks.inspect.inspect_images``).
        events: Footage ``EventRecord``s to check record times against.
        day: The day of records that give only a time (``gate closed at 18:00``).
        tz: Time zone of footage times and of record times without an offset.
        title: Overrides the kind's title.
        model: The configured model (``--model``) the engine was built with: shown in the report,
            and when it chats it narrates the summary (``chat_narrator``), grounded like the rest.
        narrator: Optional prose writer for the summary (grounded like the rest).
        progress: ``(done, total, stage)`` callback.

    Raises:
        InputError: an unknown kind, no images, no readable image, or records that cannot be
            read or parsed.
    """
    from oculi.imageio import LoadedImage, load_image

    if kind not in KINDS:
        raise InputError(f"unknown report kind {kind!r}; use one of {', '.join(KINDS)}")
    paths = [str(p) for p in images]
    if not paths:
        raise InputError("a report needs at least one image (--images)")
    if len(paths) > MAX_REPORT_IMAGES:
        raise InputError(f"{len(paths)} images; a report takes at most {MAX_REPORT_IMAGES}")
    if kind == "inspection" and inspector is None:
        log.info("inspection report without an inspection model: objects and text only")
    recs = records if isinstance(records, Records) or records is None else read_records(records, encoding=records_encoding)
    settings = getattr(vision, "settings", None)
    warnings: list[str] = []
    notes: list[str] = []
    loaded: list[tuple[str, LoadedImage]] = []
    for p in paths:
        try:
            kw = {"max_bytes": settings.max_image_bytes, "max_pixels": settings.max_image_pixels} if settings else {}
            loaded.append((p, load_image(p, **kw)))
        except OculiError as e:
            warnings.append(f"image {p} left out: {e}")
    if not loaded:
        raise InputError("no readable image: " + "; ".join(warnings))
    total = len(loaded)
    ims: list[ReportImage] = []
    for k, ((p, li), (_, obs)) in enumerate(zip(loaded, vision.observe_many([li for _, li in loaded], ocr=ocr)), 1):
        if isinstance(obs, OculiError):
            warnings.append(f"image {p} left out: {obs}")
            continue
        caption = None
        if kind in ("general", "incident") and hasattr(vision, "describe_observation"):
            try:
                caption = vision.describe_observation(obs)
            except OculiError as e:  # a remote describe backend that fails costs the caption only
                warnings.append(f"no caption for {p}: {e}")
        ims.append(ReportImage(id=f"img{len(ims) + 1}", path=p, observation=obs, image=li.image, caption=caption))
        if progress:
            progress(k, total, "observe")
    if not ims:
        raise InputError("no image could be observed: " + "; ".join(warnings))
    if inspector:
        errors: list[tuple[str, str]] = []
        run = inspect or default_inspect(settings)
        results = list(run([im.path for im in ims], inspector, errors))
        refused = {str(p) for p, _ in errors}
        warnings += [f"{Path(p).name} not inspected: {msg.replace(str(p) + ': ', '')}" for p, msg in errors]
        by_path = {str(getattr(r, "path", None) or r.to_dict().get("path")): r for r in results}
        for im in ims:
            r = by_path.get(im.path)
            if r is None:
                if im.path not in refused:
                    warnings.append(f"the inspection model gave no result for {im.name}")
                continue
            im.inspection = _inspection_dict(r)
            im.heatmap = getattr(r, "heatmap", None)
            warnings += [f"{im.name}: {w}" for w in im.inspection.pop("warnings", None) or []]
        if progress:
            progress(total, total, "inspect")
        card_settings = getattr(run, "settings", None)
        if card_settings is not None:
            notes += inspector_notes(card_settings, inspector)
    if recs is not None:
        link_records(recs, {im.id: im.path for im in ims}, day=day, tz=tz)
    name = model or _model_name(vision)
    if narrator is None and model and _chats(vision, model):
        narrator = chat_narrator(vision, model)
    embed = getattr(vision, "embed_texts", None) if narrator is not None or any(im.caption for im in ims) else None
    return build_report(ims, kind=kind, records=recs, events=events, tz=tz, title=title, inspector=inspector, model=name,
                        warnings=warnings, narrator=narrator, notes=notes, embed=embed)


def _chats(vision: Any, model: str) -> bool:
    """Whether the configured model ``model`` chats (and so can narrate the summary)."""
    try:
        from oculi.backends.registry import capabilities_of

        return "chat" in capabilities_of(vision.model(model))
    except (AttributeError, ImportError, OculiError):
        return False


def _model_name(vision: Any) -> str | None:
    """The model that observed the images (``builtin`` unless configured otherwise)."""
    try:
        return str(vision.model_name_for("observe"))
    except (AttributeError, OculiError):
        return "builtin" if getattr(vision, "settings", None) is not None else None
