"""`oculi report` end to end: the CLI on real photos and records, and the server's report jobs
(real app, loopback TestClient or uvicorn): upload → job → download the PDF and look at its
pages; a configured chat model narrating the summary, through the claim check, on both."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import oculi.cli.common as cli_common
from oculi.cli.main import app

runner = CliRunner()


@pytest.fixture()
def cli(engine, monkeypatch):
    monkeypatch.setattr(cli_common, "_engine", engine)
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_cli_writes_every_format_and_refuses_bad_input(cli, samples_dir: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Visit log\n- chelsea.png: the dog is asleep on the sofa\n- ![](gone.png) all fine\n")
    r = cli("report", "--images", samples_dir / "chelsea.png", "-i", samples_dir / "coffee.png", "--records", notes,
            "--kind", "general", "-o", tmp_path / "r.json", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    assert doc["schema"] == "oculi.report/1" and [i["name"] for i in doc["images"]] == ["chelsea.png", "coffee.png"]
    assert any(c["status"] == "conflict" and c["claim"] == "dog" for c in doc["cross_checks"])
    assert any("'gone.png', which is not among" in w for w in doc["warnings"])
    assert json.loads((tmp_path / "r.json").read_text())["schema"] == "oculi.report/1"
    for fmt in ("md", "html", "pdf"):
        r = cli("report", "-i", samples_dir / "chelsea.png", "--kind", "incident", "-o", tmp_path / f"x.{fmt}")
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"x.{fmt}").stat().st_size > 500
    assert (tmp_path / "x.pdf").read_bytes()[:4] == b"%PDF"
    # a folder of images
    r = cli("report", "-i", samples_dir, "-o", tmp_path / "all.json")
    assert r.exit_code == 0 and len(json.loads((tmp_path / "all.json").read_text())["images"]) == 11
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2,3\n")
    latin = tmp_path / "latin.md"
    latin.write_bytes("Prüfer: Katze auf dem Sofa".encode("cp1252"))
    cases = [
        (["--records", bad_csv], "line 2: more cells than the header"),
        (["--records", latin], "not UTF-8"),
        (["--records", latin, "--records-encoding", "ebcdic-martian"], "unknown encoding"),
        (["--records", tmp_path / "none.csv"], "no records file"),
        (["--kind", "horoscope"], "unknown report kind 'horoscope'"),
        (["--format", "docx"], "unknown report format 'docx'"),
        (["--template", tmp_path / "no-such-dir"], "is not a folder of templates"),
    ]
    for extra, message in cases:
        r = cli("report", "-i", samples_dir / "chelsea.png", "-o", tmp_path / "y.md", *extra)
        assert r.exit_code == 2, (extra, r.output)
        assert message in r.output, (extra, r.output)
    r = cli("report", "-i", samples_dir / "chelsea.png", "-o", tmp_path / "y.md", "--model", "nosuchmodel")
    assert r.exit_code == 4 and "no model named 'nosuchmodel'" in r.output
    r = cli("report", "-i", tmp_path / "missing.png", "-o", tmp_path / "y.md")
    assert r.exit_code == 2 and "no readable image" in r.output
    assert not (tmp_path / "y.md").exists()
    # records that now decode are used
    r = cli("report", "-i", samples_dir / "chelsea.png", "--records", latin, "--records-encoding", "cp1252", "-o", tmp_path / "l.json")
    assert r.exit_code == 0 and "Prüfer" in (tmp_path / "l.json").read_text()


def test_server_report_job_to_pdf(engine, samples_dir: Path, tmp_path: Path) -> None:
    import numpy as np
    import pypdfium2 as pdfium
    from fastapi.testclient import TestClient

    from oculi.server.app import create_app

    settings = engine.settings.model_copy(update={"home": tmp_path / "home"})
    app_ = create_app(settings, engine, auth=False, warmup=False)
    with TestClient(app_, base_url="http://127.0.0.1") as c:
        with open(samples_dir / "chelsea.png", "rb") as f1, open(samples_dir / "coffee.png", "rb") as f2:
            files = [("images", ("chelsea.png", f1.read(), "image/png")), ("images", ("coffee.png", f2.read(), "image/png")),
                     ("records", ("notes.csv", b"image,text\nchelsea.png,The dog is asleep on the sofa\n", "text/csv"))]
        r = c.post("/api/v1/reports", files=files, data={"kind": "general", "format": "pdf"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/api/v1/reports/{job['id']}" and job["images"] == 2
        deadline = time.time() + 120
        while job["state"] in ("queued", "running") and time.time() < deadline:
            time.sleep(0.3)
            job = c.get(f"/api/v1/reports/{job['id']}").json()
        assert job["state"] == "done", job
        assert job["result"]["conflicts"] == 1 and job["result"]["images"] == 2
        assert job["model"] is None and job["result"]["narrator"] is None  # no model: the template's summary
        pdf = c.get(job["download"])
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        doc = pdfium.PdfDocument(pdf.content)
        pages = [np.asarray(doc[i].render(scale=0.5).to_pil().convert("L")) for i in range(len(doc))]
        # every page has ink above the footer (a page holding only "page n of m" would be blank)
        assert len(pages) >= 2 and all((p[: int(p.shape[0] * 0.9)] < 200).mean() > 0.001 for p in pages)
        text = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
        assert "chelsea.png" in text and "conflict" in text and str(tmp_path) not in text
        # Markdown comes as a zip with its pictures
        with open(samples_dir / "chelsea.png", "rb") as f1:
            r = c.post("/api/v1/reports", files=[("images", ("a/../chelsea.png", f1.read(), "image/png"))], data={"format": "md"})
        job = r.json()
        while job["state"] in ("queued", "running"):
            time.sleep(0.3)
            job = c.get(f"/api/v1/reports/{job['id']}").json()
        z = zipfile.ZipFile(io.BytesIO(c.get(job["download"]).content))
        assert sorted(z.namelist()) == ["report.md", "report_files/img1-chelsea.jpg"]
        # bad input: 4xx at once, nothing queued
        n_jobs = len(c.get("/api/v1/reports").json()["jobs"])
        png = (samples_dir / "chelsea.png").read_bytes()
        bad = [
            ({"files": [("images", ("x.png", png, "image/png")), ("records", ("r.json", b"[{", "application/json"))]}, 400, "not valid JSON"),
            ({"files": [("images", ("x.png", png, "image/png")), ("records", ("r.md", "Sofa: Hund".encode("utf-16-le"), "text/plain"))]}, 400, "text in another encoding"),
            ({"files": [("images", ("x.png", b"not an image", "image/png"))]}, 415, "not an image"),
            ({"files": [("images", ("x.png", png, "image/png"))], "data": {"kind": "tarot"}}, 400, "unknown report kind"),
            ({"files": [("images", ("x.png", png, "image/png"))], "data": {"collection": "nope"}}, 404, "no collection"),
            ({"data": {"kind": "general"}, "files": [("records", ("r.csv", b"text\nx\n", "text/csv"))]}, 400, "no images"),
        ]
        for kw, status, message in bad:
            r = c.post("/api/v1/reports", **kw)
            assert r.status_code == status and message in r.text, (kw.get("data"), r.status_code, r.text)
        assert len(c.get("/api/v1/reports").json()["jobs"]) == n_jobs
        assert c.get("/api/v1/reports/0123456789abcdef").status_code == 404
        assert c.get("/api/v1/reports/../../etc").status_code == 404
        # the footage report prints to PDF through the same renderer
        from oculi.store import open_store
        from tests.footage_records import fill_collection

        fill_collection(open_store(settings).create_collection("cams"))
        r = c.get("/api/v1/collections/cams/footage/report", params={"camera": "main gate", "day": "2026-11-27",
                                                                    "format": "pdf", "tz": "UTC"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content[:4] == b"%PDF"


# A narrator with wording of its own: one sentence the evidence carries, one about an object
# that nothing in the image showed (no detector label, so only the claim check can catch it).
NARRATION = "A feline is visible in the middle of the picture. A wooden ladder leans against the wall."


def test_server_report_job_narrated_by_a_configured_model(engine, samples_dir: Path, tmp_path: Path) -> None:
    """The report job's ``model`` is the CLI's ``--model``: a real uvicorn server, a chat model
    behind a real OpenAI-compatible server on loopback, its invented sentence removed."""
    import httpx

    from oculi.server.app import create_app
    from tests.chat_server import ChatServer, engine_with_models, openai_model_toml
    from tests.serverutil import ServerThread

    png = (samples_dir / "chelsea.png").read_bytes()
    with ChatServer(lambda body: NARRATION) as chat:
        eng = engine_with_models(engine, tmp_path / "home", openai_model_toml("story", chat.url, "storyteller"))
        app_ = create_app(eng.settings, eng, auth=False, warmup=False)
        with ServerThread(app_) as url, httpx.Client(base_url=url, timeout=60) as c:
            r = c.post("/api/v1/reports", files=[("images", ("chelsea.png", png, "image/png"))],
                       data={"format": "json", "model": "story"})
            assert r.status_code == 202, r.text
            job = r.json()
            assert job["model"] == "story"
            deadline = time.time() + 120
            while job["state"] in ("queued", "running") and time.time() < deadline:
                time.sleep(0.3)
                job = c.get(f"/api/v1/reports/{job['id']}").json()
            assert job["state"] == "done", job
            assert job["result"]["model"] == "story" and job["result"]["narrator"] == "story"
            assert job["result"]["rejected_sentences"] == 1
            doc = c.get(job["download"]).json()
            assert chat.bodies and chat.bodies[0]["model"] == "storyteller"  # the configured model was asked
            assert doc["summary"] == ["A feline is visible in the middle of the picture."] and doc["narrator"] == "story"
            reasons = {x["sentence"]: " ".join(x["reasons"]) for x in doc["grounding"]["rejected"]}
            assert "'ladder'" in reasons["A wooden ladder leans against the wall."]
            assert "ladder" not in " ".join(doc["summary"] + doc["recommendations"])
            # a model the server does not have (or one that does not chat): 400 at once, naming the chat models
            n_jobs = len(c.get("/api/v1/reports").json()["jobs"])
            for name in ("nosuchmodel", "builtin"):
                r = c.post("/api/v1/reports", files=[("images", ("chelsea.png", png, "image/png"))], data={"model": name})
                assert r.status_code == 400, r.text
                msg = r.json()["error"]["message"]
                assert f"model {name!r} is not a configured chat model" in msg and "configured chat models: story" in msg
            assert len(c.get("/api/v1/reports").json()["jobs"]) == n_jobs
            assert len(chat.bodies) == 1


def test_cli_incident_report_against_stored_footage_and_footage_pdf(cli, engine, samples_dir: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:
    from oculi.config import Settings
    from oculi.store import open_store
    from tests.footage_records import fill_collection

    home = tmp_path / "home"
    monkeypatch.setenv("OCULI_HOME", str(home))
    monkeypatch.setenv("OCULI_ASSETS_DIR", str(engine.settings.assets_dir))
    fill_collection(open_store(Settings()).create_collection("cams"))
    log = tmp_path / "guard.csv"
    log.write_text("time,text\n16:55,Main gate closed and locked\n")
    r = cli("report", "-i", samples_dir / "chelsea.png", "--records", log, "--kind", "incident", "-c", "cams",
            "--camera", "main gate", "--day", "2026-11-27", "--tz", "UTC", "-o", tmp_path / "incident.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "incident.json").read_text())
    gate = [c for c in doc["cross_checks"] if c["claim"] == "closed at 16:55"][0]
    assert gate["status"] == "conflict" and "person at 16:59" in gate["text"] and doc["severity"] == "high"
    assert doc["events"] and all(e["camera"] == "main gate" and e["date"] == "2026-11-27" for e in doc["events"])
    r = cli("report", "footage", "--camera", "main gate", "--day", "2026-11-27", "--tz", "UTC", "-c", "cams",
            "--format", "pdf", "-o", tmp_path / "gate.pdf")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "gate.pdf").read_bytes()[:4] == b"%PDF"
    r = cli("report", "-i", samples_dir / "chelsea.png", "-c", "nope", "-o", tmp_path / "n.json")
    assert r.exit_code == 2 and "nope" in r.output


def test_python_api_report_writes_the_file(engine, samples_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import oculi
    import oculi.engine as engine_mod
    from oculi.config import Settings

    eng = oculi.Engine(Settings(home=tmp_path / "home", assets_dir=engine.settings.assets_dir))
    eng._backends = engine._backends  # share the already-loaded models
    monkeypatch.setattr(engine_mod, "_default", eng)
    notes = tmp_path / "notes.json"
    notes.write_text(json.dumps([{"image": "chelsea.png", "text": "A dog on the sofa"}]))
    rep = oculi.report(samples_dir / "chelsea.png", records=notes, output=tmp_path / "r.html")
    assert [c.status.value for c in rep.cross_checks] == ["unverifiable", "conflict"]  # couch not detected; dog is a cat
    html = (tmp_path / "r.html").read_text()
    assert "data:image/jpeg;base64," in html and "The record mentions a dog, but the images show a cat" in html


def test_a_configured_chat_model_narrates_but_cannot_add_facts(cli, engine, samples_dir: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    from oculi.backends.base import Backend, BackendOptions, Capability, ChatResult
    from oculi.backends.registry import register_backend

    class Embellisher(Backend):
        """A chat model that reads the facts it is given and then embellishes, as models do."""

        type_name = "embellisher"

        class Options(BackendOptions):
            api_key_env: str | None = None

        capabilities = frozenset({Capability.CHAT})
        seen: list = []

        def chat(self, messages, options):
            type(self).seen.append(messages[-1].text)
            return ChatResult("The photo shows one cat. A dog sleeps on the sofa beside it. "
                              "Nurse Ratched saw 3 intruders at 18:40. The record says a dog is on the sofa, but no dog "
                              "is detected.")

    register_backend("embellisher", Embellisher)
    (tmp_path / "oculi.toml").write_text('[models.story]\nbackend = "embellisher"\n')
    monkeypatch.setenv("OCULI_CONFIG", str(tmp_path / "oculi.toml"))
    monkeypatch.setenv("OCULI_ASSETS_DIR", str(engine.settings.assets_dir))
    monkeypatch.setenv("OCULI_HOME", str(tmp_path / "home"))
    notes = tmp_path / "notes.csv"
    notes.write_text("image,text\nchelsea.png,The dog is asleep on the sofa\n")
    r = cli("report", "-i", samples_dir / "chelsea.png", "--records", notes, "--model", "story", "-o", tmp_path / "n.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "n.json").read_text())
    assert "cat" in Embellisher.seen[0] and "The record mentions a dog" in Embellisher.seen[0]  # it was given the facts
    assert doc["summary"] == ["The photo shows one cat. The record says a dog is on the sofa, but no dog is detected."]
    reasons = {x["sentence"]: " ".join(x["reasons"]) for x in doc["grounding"]["rejected"]}
    assert "label 'dog' was not seen" in reasons["A dog sleeps on the sofa beside it."]
    assert "name 'Ratched'" in reasons["Nurse Ratched saw 3 intruders at 18:40."]
    assert doc["model"] == "story" and doc["narrator"] == "story"
