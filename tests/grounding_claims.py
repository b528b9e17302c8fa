"""The labelled sentences of ``tests/data/grounding_claims.json`` and the reports they are judged
against: real observations of scikit-image photos, records, an inspection result and footage
events. Shared by ``tests/unit/tasks/report/test_claims.py`` and ``benchmarks/eval_grounding_claims.py``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timezone
from pathlib import Path
from typing import Any

from oculi.tasks.report import ReportImage, build_report
from oculi.tasks.report.records import link_records, parse_records

UTC = timezone.utc
DATA = Path(__file__).parent / "data" / "grounding_claims.json"


@dataclass
class Scenario:
    name: str
    kwargs: dict[str, Any]
    sentences: list[dict[str, Any]]

    def report(self, narrator=None, embed=None):
        ims = [ReportImage(im.id, im.path, im.observation, inspection=dict(im.inspection) if im.inspection else None,
                           image=im.image) for im in self.kwargs["images"]]
        kw = dict(self.kwargs, images=ims)
        return build_report(kw.pop("images"), narrator=narrator, embed=embed, **kw)


def inspection_result(score: float, passed: bool) -> dict:
    return {"path": "", "score": score, "threshold": 0.55, "pass": passed, "finding": "" if passed else
            f"dark linear anomaly, upper left, 2.1 % of the area; score {score:.2f} vs threshold 0.55",
            "regions": [] if passed else [{"box": [40.0, 30.0, 120.0, 90.0], "area_fraction": 0.021, "peak": 0.97,
                                          "position": "upper left", "description": "dark linear anomaly"}]}


def load_scenarios(engine: Any, samples_dir: Path, events: list[Any]) -> list[Scenario]:
    """The scenarios of the labelled set, observed with ``engine``; ``events`` are footage
    ``EventRecord``s of the main gate (``tests.footage_records.fill_collection``)."""
    from oculi.imageio import load_image

    spec = json.loads(DATA.read_text())
    cache: dict[str, Any] = {}

    def image(i: int, name: str, as_name: str | None = None) -> ReportImage:
        p = str(samples_dir / f"{name}.png")
        if p not in cache:
            cache[p] = (engine.observe(p), load_image(p).image)
        obs, img = cache[p]
        return ReportImage(f"img{i}", str(Path(p).with_name(as_name)) if as_name else p, obs, image=img)

    out = []
    for sc in spec["scenarios"]:
        ims = [image(i, n, sc.get("rename", {}).get(n)) for i, n in enumerate(sc["images"], 1)]
        for im in ims:
            if im.name in sc.get("inspection", {}):
                score, passed = sc["inspection"][im.name]
                im.inspection = inspection_result(score, passed)
        kw: dict[str, Any] = {"images": ims, "kind": sc["kind"], "tz": UTC}
        if sc.get("inspection"):
            kw["inspector"] = "line-3"
        if sc.get("records"):
            recs = parse_records(sc["records"].encode(), "records.csv")
            link_records(recs, {im.id: im.path for im in ims}, day=date(2026, 11, 27), tz=UTC)
            kw["records"] = recs
        if sc.get("events"):
            kw["events"] = events
        out.append(Scenario(sc["name"], kw, sc["sentences"]))
    return out


def judge(scenario: Scenario, embed=None) -> list[tuple[str, bool, bool]]:
    """``(sentence, supported (label), kept (by the check))`` for each labelled sentence: each is
    written by a narrator on its own and kept when it becomes the report's summary."""
    out = []
    for s in scenario.sentences:
        rep = scenario.report(narrator=lambda rep, t=s["text"]: t, embed=embed)
        out.append((s["text"], bool(s["supported"]), rep.summary == [s["text"]]))
    return out


def precision_recall(results: list[tuple[str, bool, bool]]) -> dict[str, float]:
    """Of the check as a detector of unsupported sentences: precision = dropped and unsupported /
    dropped, recall = dropped and unsupported / unsupported; also the share of supported kept."""
    dropped_bad = sum(1 for _, sup, kept in results if not sup and not kept)
    dropped = sum(1 for _, _, kept in results if not kept)
    bad = sum(1 for _, sup, _ in results if not sup)
    good = sum(1 for _, sup, _ in results if sup)
    kept_good = sum(1 for _, sup, kept in results if sup and kept)
    return {"precision": dropped_bad / dropped if dropped else 1.0, "recall": dropped_bad / bad if bad else 1.0,
            "supported_kept": kept_good / good if good else 1.0, "n": len(results), "unsupported": bad}
