"""The `oculi` command on real photos with the real built-in model, and on bad input.

The quality checks are the ones a person would make: the coffee photo's caption mentions a
cup or coffee, chelsea's mentions a cat, the astronaut is one person, the rocket is a rocket,
the scanned page is read with >= 90% of its words, and absent things get "no" or "cannot
tell", never an invented answer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

import oculi.cli.common as cli_common
from oculi.cli.main import app

pytestmark = pytest.mark.slow

PAGE_WORDS = (
    "Region-based segmentation Let us first determine markers of the coins and the background. These markers "
    "are pixels that we can label unambiguously as either object or background. Here, the markers are found at "
    "the two extreme parts of the histogram of grey values: >>> markers = np.zeros_like(coins)"
).split()


def words_right(expected: list[str], got: str) -> float:
    """Fraction of expected words (case- and punctuation-insensitive) found in the OCR output, in multiset terms."""
    norm = lambda w: re.sub(r"[^a-z0-9_]", "", w.lower())  # noqa: E731
    pool: dict[str, int] = {}
    for w in got.split():
        pool[norm(w)] = pool.get(norm(w), 0) + 1
    hits = 0
    for w in expected:
        k = norm(w)
        if pool.get(k, 0) > 0:
            pool[k] -= 1
            hits += 1
    return hits / len(expected)


@pytest.fixture()
def cli(engine, monkeypatch):
    """Run CLI commands in-process against the session's loaded engine."""
    monkeypatch.setattr(cli_common, "_engine", engine)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return run


def _json(res) -> dict:
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_caption_coffee_mentions_cup_or_coffee(cli, samples_dir):
    doc = _json(cli("caption", samples_dir / "coffee.png", "--json"))
    assert re.search(r"\b(cup|coffee|espresso|mug)\b", doc["caption"].lower()), doc["caption"]
    assert doc["schema_version"] and doc["observation"]["image"]["width"] == 600


def test_caption_chelsea_mentions_cat(cli, samples_dir):
    doc = _json(cli("caption", samples_dir / "chelsea.png", "--json"))
    assert "cat" in doc["caption"].lower(), doc["caption"]
    assert "dog" not in doc["caption"].lower()


def test_astronaut_counts_one_person(cli, samples_dir):
    doc = _json(cli("ask", samples_dir / "astronaut.png", "How many people are in the photo?", "--json"))
    assert doc["answer"].startswith("1"), doc
    assert doc["kind"] == "count" and len(doc["evidence"]) == 1 and len(doc["evidence"][0]["box"]) == 4


def test_rocket_recognised(cli, samples_dir):
    cap = _json(cli("caption", samples_dir / "rocket.png", "--json"))["caption"].lower()
    assert "rocket" in cap or "space" in cap, cap
    ans = _json(cli("ask", samples_dir / "rocket.png", "Is there a rocket?", "--json"))
    assert ans["answer"].startswith("Yes"), ans


@pytest.mark.parametrize(
    "image,question",
    [("coffee", "Is there a dog?"), ("astronaut", "Is there a cat?"), ("chelsea", "How many cars are there?"),
     ("coffee", "Is there a giraffe?"), ("astronaut", "Is there a unicorn?"), ("camera", "What colour is the bus?")],
)
def test_absent_things_get_no_or_cannot_tell(cli, samples_dir, image, question):
    doc = _json(cli("ask", samples_dir / f"{image}.png", question, "--json"))
    a = doc["answer"]
    assert a.startswith(("No", "0", "I cannot tell", "Probably not")), a


def test_read_page_90_percent_of_words(cli, samples_dir):
    doc = _json(cli("read", samples_dir / "page.png", "--json"))
    assert words_right(PAGE_WORDS, doc["text"]) >= 0.9, doc["text"]
    ys = [line["box"][1] for line in doc["lines"]]
    assert ys[0] < ys[-1]  # reading order: top to bottom


def test_read_rendered_text_90_percent(cli, tmp_path):
    sentence = "Quality control passed for batch 2041 on line three"
    img = Image.new("RGB", (900, 160), "white")
    d = ImageDraw.Draw(img)
    d.text((20, 50), sentence, fill="black", font=ImageFont.load_default(size=36))
    p = tmp_path / "label.png"
    img.save(p)
    doc = _json(cli("read", p, "--json"))
    assert words_right(sentence.split(), doc["text"]) >= 0.9, doc["text"]


def test_detect_json_and_annotation(cli, samples_dir, tmp_path):
    out = tmp_path / "ann.png"
    doc = _json(cli("detect", samples_dir / "astronaut.png", "--json", "--annotate", out))
    people = [o for o in doc["objects"] if o["label"] == "person"]
    assert len(people) == 1
    x1, y1, x2, y2 = people[0]["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
    with Image.open(out) as im:
        assert im.size == (512, 512)


def test_classify_user_labels(cli, samples_dir):
    doc = _json(cli("classify", samples_dir / "chelsea.png", "--labels", "cat,car,building", "--json"))
    assert doc["label"] == "cat", doc
    doc = _json(cli("classify", samples_dir / "page.png", "--labels", "animal,document,vehicle", "--json"))
    assert doc["label"] == "document", doc


def test_batch_does_good_ones_and_reports_bad(cli, samples_dir, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    res = cli("caption", samples_dir / "coffee.png", bad, samples_dir / "chelsea.png", "--json")
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert len(doc["captions"]) == 2 and doc["errors"][0]["path"] == str(bad)


# --- bad input through the real process: one line on stderr, exit 2, no traceback ------------

def _oculi(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "oculi.cli.main", *map(str, args)], capture_output=True, text=True, env=e, timeout=120)


def _bomb_png(path: Path) -> Path:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("kind", ["missing", "directory", "text", "truncated", "bomb", "unsupported"])
def test_bad_input_exit_2_one_line(tmp_path, samples_dir, kind):
    if kind == "missing":
        target = tmp_path / "nope.jpg"
    elif kind == "directory":
        target = tmp_path
    elif kind == "text":
        target = tmp_path / "notes.jpg"
        target.write_text("just words")
    elif kind == "truncated":
        full = (samples_dir / "coffee.png").read_bytes()
        target = tmp_path / "cut.png"
        target.write_bytes(full[: len(full) // 3])
    elif kind == "bomb":
        target = _bomb_png(tmp_path / "bomb.png")
    else:
        target = tmp_path / "img.ppm"
        Image.new("RGB", (8, 8)).save(target, format="PPM")
    res = _oculi("caption", target)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error:"), res.stderr


def test_empty_question_exit_2(samples_dir):
    res = _oculi("ask", samples_dir / "coffee.png", "   ")
    assert res.returncode == 2 and "question is empty" in res.stderr and "Traceback" not in res.stderr


def test_missing_asset_names_pull_command(samples_dir, tmp_path):
    res = _oculi("detect", samples_dir / "coffee.png", env={"OCULI_ASSETS_DIR": str(tmp_path / "none"), "OCULI_HOME": str(tmp_path)})
    assert res.returncode == 3 and "oculi models pull" in res.stderr and "Traceback" not in res.stderr


def test_caption_of_a_16bit_photo_matches_the_8bit_one(cli, tmp_path: Path) -> None:
    """Microscopes and industrial cameras write 16-bit greyscale (often 12 bits used): it used to
    decode as solid white ("cannot identify")."""
    import numpy as np
    from skimage import data

    grey = np.asarray(Image.fromarray(data.chelsea()).convert("L"))
    Image.fromarray(grey).save(tmp_path / "cat8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "cat16.png")  # full 16-bit range
    Image.fromarray(grey.astype(np.uint16) * 16).save(tmp_path / "cat12.tif")  # a 12-bit sensor in a 16-bit TIFF
    caps = {}
    for name in ("cat8.png", "cat16.png", "cat12.tif"):
        r = cli("caption", tmp_path / name, "--json")
        assert r.exit_code == 0, r.output
        caps[name] = _json(r)["caption"]
    assert "cat" in caps["cat8.png"].lower()
    assert caps["cat16.png"] == caps["cat8.png"] == caps["cat12.tif"], caps
