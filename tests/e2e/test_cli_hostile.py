"""The real `oculi` process on hostile folders and pipes (fake perceiver; tests/search_fakes.py).

A FIFO or a device link named like an image is reported, never opened; file names with
newlines, escape sequences or undecodable bytes never split or colour an output line; a
folder that vanished can be pruned; a reader that closes the pipe early ends the run quietly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.search_fakes import fake_env, write_png

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")


def oculi(home: Path, *args: object, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.run_cli_with_fakes", *map(str, args)], cwd=REPO,
                          env=fake_env(home), capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "photos"
    write_png(root / "plain.png", "blue", objects=[{"label": "car", "colour": "blue"}], pattern=1)
    write_png(root / "two\nlines.png", "red", objects=[{"label": "car", "colour": "red"}], pattern=2)
    write_png(root / "esc\x1b[31mred.png", "red", objects=[{"label": "car", "colour": "red"}], pattern=3)
    (root / "bad\nfile.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    os.mkfifo(root / "x.jpg")  # opening it for reading would block forever
    os.symlink("/dev/zero", root / "zero.jpg")  # reading it would never end
    os.symlink(root / "missing.png", root / "broken.png")
    return tmp_path / "home", root


def test_special_files_are_reported_never_opened(hostile) -> None:
    home, root = hostile
    r = oculi(home, "index", root, "-c", "h", "--json")  # a blocked open would hit the timeout
    assert r.returncode == 2, r.stderr  # the corrupt JPEG failed; the rest is indexed
    rep = json.loads(r.stdout)
    problems = {Path(p["path"]).name: p["problem"] for p in rep["problems"]}
    assert "FIFO" in problems["x.jpg"] and "not a regular file" in problems["x.jpg"]
    assert "character device" in problems["zero.jpg"] and "not a regular file" in problems["zero.jpg"]
    assert problems["broken.png"] == "broken symlink; skipped"
    assert rep["added"] == 3 and [Path(f["path"]).name for f in rep["failed"]] == ["bad\nfile.jpg"]
    # the same in the human report, one line each
    r = oculi(home, "index", root, "-c", "h2")
    lines = r.stderr.splitlines()
    assert any("x.jpg: is a FIFO (named pipe), not a regular file" in ln for ln in lines), r.stderr
    assert any("zero.jpg: is a character device, not a regular file" in ln for ln in lines), r.stderr
    assert any("broken.png: broken symlink" in ln for ln in lines), r.stderr
    # captioning a FIFO directly is refused at once too
    r = oculi(home, "caption", root / "x.jpg")
    assert r.returncode == 2 and "not a regular file" in r.stderr and "Traceback" not in r.stderr


def test_control_characters_in_names_are_printed_escaped(hostile) -> None:
    home, root = hostile
    r = oculi(home, "index", root, "-c", "h")
    assert r.returncode == 2
    assert "bad\\nfile.jpg" in r.stderr and "bad\nfile" not in r.stderr
    outputs = [r.stdout + r.stderr]
    for args in (["search", "car", "-c", "h"], ["duplicates", "-c", "h", "--threshold", "0.01"],
                 ["caption", root / "two\nlines.png"], ["collections", "show", "h"]):
        res = oculi(home, *args)
        assert "Traceback" not in res.stderr, (args, res.stderr)
        outputs.append(res.stdout + res.stderr)
    search_out = outputs[1]
    assert "two\\nlines.png" in search_out and "esc\\x1b[31mred.png" in search_out
    dup_out = outputs[2]
    assert "two\\nlines.png" in dup_out
    assert "two\\nlines.png" in outputs[3]  # an error or a caption: either way escaped
    for out in outputs:
        assert "\x1b" not in out
        for line in out.splitlines():  # no line starts with the tail of a split name
            assert not line.startswith(("lines.png", "file.jpg")), line
    # JSON keeps the real names (escaped the JSON way)
    doc = json.loads(oculi(home, "search", "car", "-c", "h", "--json").stdout)
    assert {"two\nlines.png", "esc\x1b[31mred.png"} <= {Path(x["path"]).name for x in doc["results"]}


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses undecodable file names")
def test_undecodable_file_names_print_and_serialise(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    write_png(root / "ok.png", "red", pattern=1)
    raw = os.fsencode(root) + b"/caf\xe9.png"  # Latin-1, not UTF-8
    shutil.copy(root / "ok.png", raw)
    os.mkdir(os.fsencode(root) + b"/d\xe9j\xe0")  # a folder too
    shutil.copy(root / "ok.png", os.fsencode(root) + b"/d\xe9j\xe0/inside.png")
    home = tmp_path / "home"
    r = oculi(home, "index", root, "-c", "u", "--json")  # the store keeps UTF-8 paths: reported, skipped
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)  # valid JSON: the undecodable byte is a \udcXX escape
    assert rep["added"] == 1 and list(rep["ids"]) == [str(root / "ok.png")]
    problems = {p["path"]: p["problem"] for p in rep["problems"]}
    assert os.fsencode(str(root) + "/caf\udce9.png") == raw and "not valid UTF-8" in problems[str(root) + "/caf\udce9.png"]
    assert "not valid UTF-8" in problems[str(root) + "/d\udce9j\udce0"]
    r = oculi(home, "index", root, "-c", "u")
    assert r.returncode == 0 and "caf\\udce9.png: name is not valid UTF-8" in r.stderr, r.stderr


def test_prune_a_folder_that_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for i in range(3):
        write_png(root / "trip" / f"{i}.png", (40 * i, 90, 160), pattern=i + 1)
    write_png(root / "keep.png", "green", pattern=9)
    home = tmp_path / "home"
    assert oculi(home, "index", root, "-c", "p").returncode == 0
    shutil.rmtree(root / "trip")
    r = oculi(home, "index", root / "trip", "-c", "p")  # without --prune a missing path is an error
    assert r.returncode == 2 and "no such file" in r.stderr
    r = oculi(home, "index", root / "trip", "-c", "p", "--prune", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["removed"] == 3 and rep["items_removed"] == 3 and rep["items_total"] == 1
    r = oculi(home, "index", tmp_path / "never-was", "-c", "p", "--prune")
    assert r.returncode == 2 and "has no files under it to prune" in r.stderr and "Traceback" not in r.stderr
    doc = json.loads(oculi(home, "collections", "show", "p", "--json").stdout)
    assert doc["items"] == 1 and doc["files"] == 1


def test_a_closed_output_pipe_ends_quietly(hostile) -> None:
    home, root = hostile
    oculi(home, "index", root, "-c", "h")
    for args in (["search", "car", "-c", "h"], ["search", "car", "-c", "h", "--json"], ["collections"]):
        p = subprocess.Popen([sys.executable, "-m", "tests.run_cli_with_fakes", *args], cwd=REPO, env=fake_env(home),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()  # the reader is gone before the first byte (as `| head -0` would be)
        err = p.stderr.read().decode()
        p.stderr.close()
        assert p.wait(timeout=60) == 141, args
        assert err == "", (args, err)  # no traceback, no "Exception ignored", no error line
