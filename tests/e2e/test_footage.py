"""Footage end to end with the real models, on footage the test writes with PyAV.

The gate scene (``oculi.tasks.footage.synth.gate_scene``, 36 s, 640x360): the cameraman cut
out of ``skimage.data.camera()`` lingers in the gate zone; the same cut-out walks behind a wall;
the astronaut, tinted red, passes through; a drawn car arrives and parks. The script is the
ground truth: events must match it within a second, the loiterer must be flagged and the passer
not, the occluded walker must be one track, and the questions of the issue must be answered
from them. A killed watcher must resume without duplicating anything.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

import oculi.cli.common as cli_common
from oculi.cli.main import app
from oculi.core.types import SCHEMA_VERSION
from oculi.library import Library
from oculi.store import open_store
from oculi.store.records import RecordTable
from oculi.tasks.footage.synth import GATE_ZONE, Actor, Scene, gate_scene, write_scene
from oculi.tasks.footage.watch import WatchOptions
from oculi.tasks.footage.zones import parse_instant

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
UTC = timezone.utc
GATE_START = "2026-11-27T16:59:40"
DOOR_START = "2026-11-27T09:30:00"
NOW = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)
ZONE = " ".join(f"{x:g},{y:g}" for x, y in GATE_ZONE)
GATE_ARGS = ["--camera", "main gate", "--start", GATE_START, "--tz", "UTC", "--zone", ZONE, "--zone-name", "gate",
             "--loiter-after", "8s"]


def door_scene() -> Scene:
    """12 s at the front door: the astronaut walks across."""
    return Scene(duration=12.0, actors=[Actor("person", "astronaut", [(1, -70, 340), (11, 720, 340)])])


def gate_options(**kw) -> WatchOptions:
    base = dict(camera="main gate", start=parse_instant(GATE_START, UTC), zones=[ZONE], zone_names=["gate"], loiter_after=8.0)
    return WatchOptions(**{**base, **kw})


@pytest.fixture(scope="module")
def footage(engine, tmp_path_factory):
    """The gate and door clips, watched once into a fresh store."""
    d = tmp_path_factory.mktemp("footage")
    gate, door = d / "gate.mp4", d / "door.mkv"
    write_scene(gate_scene(), gate)
    write_scene(door_scene(), door)
    store = open_store(engine.settings.model_copy(update={"home": d / "home"}))
    lib = Library(engine, store)
    rep = lib.watch(str(gate), gate_options())
    rep_door = lib.watch(str(door), WatchOptions(camera="front door", start=parse_instant(DOOR_START, UTC)))
    return {"lib": lib, "dir": d, "gate": gate, "door": door, "report": rep, "door_report": rep_door,
            "t0": parse_instant(GATE_START, UTC), "truth": gate_scene().truth()}


def gate_events(lib):
    return [e for e in lib.events("default", camera="main gate")]


def test_events_match_the_script(footage) -> None:
    lib, t0, truth = footage["lib"], footage["t0"], footage["truth"]
    rep = footage["report"]
    assert rep.source["status"] == "done" and not rep.problems and rep.keyframes >= 4
    tracks = lib.open("default").query_records(RecordTable.TRACKS, order_by="start_time")
    gate_tracks = [t for t in tracks if t.camera == "main gate"]
    assert [t.label for t in gate_tracks] == ["person", "person", "person", "car"]
    loiterer, walker, passer, car = gate_tracks
    # each track spans its actor's visible time, within a second at both ends
    for tr, actor in ((loiterer, truth[0]), (passer, truth[2]), (car, truth[3])):
        first, last = actor["visible"][0][0], actor["visible"][-1][1]
        assert abs(tr.start_time - t0 - first) <= 1.0, (tr, first)
        if not tr.ongoing:
            assert abs(tr.end_time - t0 - last) <= 1.0, (tr, last)
    # the occluded walker is ONE track across the wall (visible 4.5-7.4 s and 9.5-12.1 s)
    assert walker.start_time - t0 <= 5.5 and walker.end_time - t0 >= 11.1
    assert sum(1 for t in gate_tracks if t.label == "person") == 3
    events = gate_events(lib)
    loiter = [e for e in events if e.type == "loitering"]
    assert [e.track_id for e in loiter] == [loiterer.track_id]  # the loiterer is flagged, nobody else
    zone_truth = truth[0]["zones"]["gate"][0]
    assert abs(loiter[0].start_time - t0 - zone_truth[0]) <= 1.0 and abs(loiter[0].end_time - t0 - zone_truth[1]) <= 1.0
    passer_dwell = [e for e in events if e.type == "dwell" and e.track_id == passer.track_id]
    assert len(passer_dwell) == 1 and passer_dwell[0].value < 8.0  # through the zone, not loitering
    leaves = {e.track_id: e.start_time - t0 for e in events if e.type == "leave"}
    assert set(leaves) == {loiterer.track_id, walker.track_id, passer.track_id}  # the parked car did not leave
    assert car.ongoing == 1 and passer.colour == "red" and car.start_time > parse_instant("2026-11-27T17:00:00", UTC)
    assert all(e.keyframe for e in events) and len({e.id for e in events}) == len(events)


def test_the_issue_questions_are_answered_from_the_events(footage) -> None:
    lib = footage["lib"]

    def ask(q):
        return lib.ask_footage("default", q, now=NOW, tz=UTC)

    a = ask("Was anyone loitering at the main gate today?")
    assert a.kind == "yes" and len(a.evidence) == 1 and a.evidence[0].thumbnail and "16:59:4" in a.answer
    assert ask("How many people came to the main gate today?").value == 3
    cars = ask("How many cars came in after 5 pm?")
    assert cars.value == 1 and cars.evidence[0].label == "car"
    red = ask("When did the person in red leave?")
    assert red.kind == "when" and "left at 17:00:0" in red.answer
    door = ask("Show me everyone near the door between 9 and 10")
    assert door.kind == "list" and door.value == 1 and door.evidence[0].camera == "front door"
    none = ask("Was anyone at the main gate before 9 am?")
    assert none.kind == "no_footage" and "No footage" in none.answer


def test_watching_again_is_idempotent(footage) -> None:
    lib = footage["lib"]
    before = {e.id: e for e in gate_events(lib)}
    again = lib.watch(str(footage["gate"]), gate_options())
    assert again.already_done and again.events == len(before)
    redo = lib.watch(str(footage["gate"]), gate_options(reprocess=True))
    assert not redo.already_done and redo.events == len(before)
    assert {e.id: e for e in gate_events(lib)} == before  # the same ids, nothing doubled
    # a copy of the file is the same source (by content), not a second one
    copy = footage["dir"] / "gate-copy.mp4"
    copy.write_bytes(footage["gate"].read_bytes())
    assert lib.watch(str(copy), gate_options()).already_done
    # other settings replace the source's records rather than adding to them
    other = lib.watch(str(footage["gate"]), gate_options(loiter_after=60.0))
    evs = gate_events(lib)
    assert other.events == len(evs) and not [e for e in evs if e.type == "loitering"]
    lib.watch(str(footage["gate"]), gate_options())  # back to the module's settings
    assert {e.id for e in gate_events(lib)} == set(before)


def test_interrupted_watch_resumes_without_duplicates(footage, engine, tmp_path: Path) -> None:
    lib = Library(engine, open_store(engine.settings.model_copy(update={"home": tmp_path / "home"})))
    n = [0]

    def stop() -> bool:  # "Ctrl-C" after 30 frames, i.e. 15 s into the footage
        n[0] += 1
        return n[0] >= 30

    first = lib.watch(str(footage["gate"]), gate_options(checkpoint_every=5.0), should_stop=stop)
    assert first.interrupted and first.source["status"] == "interrupted" and 14 <= first.source["processed_until"] <= 16
    second = lib.watch(str(footage["gate"]), gate_options(checkpoint_every=5.0))
    assert second.resumed_from == first.source["processed_until"] and second.source["status"] == "done"
    want = {(e.id, e.type, e.start_time, e.end_time, e.track_id) for e in gate_events(footage["lib"])}
    got = {(e.id, e.type, e.start_time, e.end_time, e.track_id) for e in lib.events("default")}
    assert got == want


def test_killed_watch_resumes_without_duplicates(footage, tmp_path: Path) -> None:
    env = dict(os.environ, OCULI_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO / "src"),
               OCULI_ASSETS_DIR=str(footage["lib"].settings.assets_dir))
    cmd = [sys.executable, "-m", "oculi", "watch", str(footage["gate"]), *GATE_ARGS, "--checkpoint", "4s", "--json"]
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = open_store(footage["lib"].settings.model_copy(update={"home": tmp_path / "home"}))
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and p.poll() is None:
        try:
            srcs = store.open_collection("default").query_records(RecordTable.SOURCES)
        except Exception:  # noqa: BLE001 - not created yet
            srcs = []
        if srcs and 8 <= srcs[0].processed_until < 30 and srcs[0].status == "running":
            p.send_signal(signal.SIGKILL)
            killed_at = srcs[0].processed_until
            break
        time.sleep(0.2)
    _, err = p.communicate(timeout=30)
    assert killed_at is not None, f"the watcher ended before it could be killed mid-way: {err.decode()[-500:]}"
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["resumed_from"] is not None and doc["resumed_from"] >= killed_at and doc["source"]["status"] == "done"
    want = {(e.id, e.type, e.start_time, e.end_time, e.track_id) for e in gate_events(footage["lib"])}
    coll = open_store(footage["lib"].settings.model_copy(update={"home": tmp_path / "home"})).open_collection("default")
    got = coll.query_records(RecordTable.EVENTS)
    assert {(e.id, e.type, e.start_time, e.end_time, e.track_id) for e in got} == want and len(got) == len(want)


def test_keyframes_are_searchable_with_time_filters(footage) -> None:
    lib = footage["lib"]
    res = lib.search("default", text="car", top_k=5, where="kind=frame", after="2026-11-27T17:00:00", before="2026-11-28")
    assert res.results and res.results[0].fields["camera"] == "main gate"
    assert "car" in res.results[0].fields["objects"]
    none = lib.search("default", text="car", top_k=5, where="kind=frame", after="2026-11-28")
    assert not none.results


def test_cli_json_outputs(footage, engine, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli_common, "_engine", engine)
    monkeypatch.setenv("OCULI_HOME", str(footage["dir"] / "home"))
    monkeypatch.setenv("OCULI_ASSETS_DIR", str(engine.settings.assets_dir))
    run = CliRunner().invoke
    res = run(app, ["events", "--camera", "main gate", "--type", "loitering", "--tz", "UTC", "--json",
                    "--thumbnails", str(tmp_path / "th")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema_version"] == SCHEMA_VERSION and len(doc["events"]) == 1
    ev = doc["events"][0]
    assert {"type", "camera", "start", "end", "track_id", "label", "zone", "thumbnail"} <= set(ev)
    assert ev["start"].startswith("2026-11-27T16:59:4") and Path(ev["thumbnail"]).is_file()
    res = run(app, ["ask-footage", "How many cars came in after 5 pm?", "--now", "2026-11-27T18:30:00", "--tz", "UTC", "--json"])
    assert res.exit_code == 0, res.output
    ans = json.loads(res.stdout)
    assert ans["value"] == 1 and ans["evidence"][0]["label"] == "car" and ans["query"]["labels"] == ["car"]
    for fmt in ("json", "md", "html"):
        out = tmp_path / f"report.{fmt}"
        res = run(app, ["report", "footage", "--camera", "main gate", "--day", "2026-11-27", "--tz", "UTC",
                        "--format", fmt, "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert {"title", "scene", "summary", "confidence", "threat_level", "events"} <= set(rep)
    assert rep["threat_level"] == "medium" and rep["counts"]["loitering"] == 1 and rep["counts"]["vehicles"] == 1
    res = run(app, ["events", "--type", "teleport"])
    assert res.exit_code == 2 and "unknown event type" in res.output
    res = run(app, ["watch", str(tmp_path / "missing.mp4"), "--camera", "x"])
    assert res.exit_code == 2 and "no such file" in res.output


def test_a_corrupt_stretch_is_skipped_and_reported_by_watch(footage, engine, monkeypatch, tmp_path: Path) -> None:
    bad = tmp_path / "door-damaged.ts"
    write_scene(door_scene(), bad)
    data = bytearray(bad.read_bytes())
    n = len(data)
    data[int(n * 0.45):int(n * 0.6)] = bytes(int(n * 0.6) - int(n * 0.45))
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(cli_common, "_engine", engine)
    monkeypatch.setenv("OCULI_HOME", str(tmp_path / "home"))
    res = CliRunner().invoke(app, ["watch", str(bad), "--camera", "door", "--start", DOOR_START, "--tz", "UTC", "--json"])
    assert res.exit_code == 2, res.output
    doc = json.loads(res.stdout)
    assert doc["problems"] and doc["source"]["status"] == "done" and doc["footage_seconds"] > 9
    assert "skipped" in res.stderr


def test_server_watches_an_upload_and_answers(footage, engine, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from oculi.server.app import create_app

    settings = engine.settings.model_copy(update={"home": tmp_path / "home"})
    app_ = create_app(settings, engine, auth=False, warmup=False)
    with TestClient(app_, base_url="http://127.0.0.1") as c:
        with open(footage["door"], "rb") as f:
            r = c.post("/api/v1/collections/cams/footage", files={"video": ("door.mkv", f, "video/x-matroska")},
                       data={"camera": "front door", "start": DOOR_START, "tz": "UTC"})
        assert r.status_code == 202, r.text
        job = r.json()
        deadline = time.time() + 240
        while job["state"] in ("queued", "running") and time.time() < deadline:
            time.sleep(0.5)
            job = c.get(f"/api/v1/footage/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        evs = c.get("/api/v1/collections/cams/events", params={"tz": "UTC"}).json()["events"]
        assert [e["type"] for e in evs][:1] == ["appear"] and evs[0]["start"].startswith("2026-11-27T09:30:0")
        ans = c.post("/api/v1/collections/cams/footage/ask",
                     json={"question": "Who was at the front door between 9 and 10?", "now": "2026-11-27T12:00:00", "tz": "UTC"}).json()
        assert ans["value"] == 1 and ans["evidence"][0]["track_id"] == evs[0]["track_id"]
        src = c.get("/api/v1/collections/cams/sources").json()["sources"][0]
        assert src["uri"].endswith(".mkv") and "/" not in src["uri"]  # no server path leaks
        tl = c.get(f"/api/v1/collections/cams/sources/{src['id']}/timeline").json()
        assert len(tl["events"]) == len(evs) and tl["keyframes"]
        kf = c.get(f"/api/v1/collections/cams/items/{tl['keyframes'][0]['id']}/thumbnail")
        assert kf.status_code == 200 and kf.headers["content-type"] == "image/jpeg"
        html = c.get("/api/v1/collections/cams/footage/report", params={"camera": "front door", "day": "2026-11-27",
                                                                      "format": "html", "tz": "UTC"})
        assert html.status_code == 200 and "front door" in html.text
        bad = c.post("/api/v1/collections/cams/footage", files={"video": ("x.mp4", b"not a video at all", "video/mp4")},
                     data={"camera": "x"})
        assert bad.status_code == 415
        r = c.post("/api/v1/collections/cams/footage", json={"camera": "x"})
        assert r.status_code == 400


class _Camera(http.server.BaseHTTPRequestHandler):
    """A live camera over HTTP (an MPEG-TS without length) that goes away after one session."""

    data = b""
    requests = 0

    def do_GET(self) -> None:  # noqa: N802
        type(self).requests += 1
        if type(self).requests > 2:  # the probe and one session
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        try:
            self.wfile.write(type(self).data)
        except OSError:
            pass

    def log_message(self, *a: object) -> None:
        pass


def test_a_stream_session_is_a_source_and_sessions_accumulate(footage, engine, tmp_path: Path) -> None:
    clip = write_scene(door_scene(), tmp_path / "door.ts")
    _Camera.data = clip.read_bytes()
    lib = Library(engine, open_store(engine.settings.model_copy(update={"home": tmp_path / "home"})))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Camera)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://viewer:secret@127.0.0.1:{srv.server_address[1]}/live"
    try:
        reps = []
        for start in ("2026-11-27T09:30:00", "2026-11-27T11:00:00"):
            _Camera.requests = 0
            reps.append(lib.watch(url, WatchOptions(camera="front door", start=parse_instant(start, UTC), max_reconnects=0)))
    finally:
        srv.shutdown()
    srcs = lib.sources("default")
    assert [s.kind for s in srcs] == ["stream", "stream"] and all("secret" not in s.uri for s in srcs)
    assert len({s.id for s in srcs}) == 2 and all(r.events >= 2 for r in reps)
    evs = lib.events("default", types=["appear"])
    assert sorted(round(e.start_time - parse_instant("2026-11-27T09:30:00", UTC)) // 3600 for e in evs) == [0, 1]
    assert "secret" not in json.dumps([r.to_dict() for r in reps])
